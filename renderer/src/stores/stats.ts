// Live statistics for every view in one place. Views claim what they show (the list: every
// running VM; the Performance tab: its VM) and this store asks the core for the union with one
// watchStats per change (the core keeps ONE set per connection and each call replaces it), asks
// again after a reconnect, and keeps the newest sample and a short CPU series per VM from the
// statsSample pushes, seeded from statsLatest when the watched VMs grow (the list: once per
// connection). Figures of VMs nobody watches any more are dropped. Keyed by VM id (names change).
//
// Plain .ts (no .vue imports) so tests drive it in Node against the fake core.
import { defineStore } from 'pinia';
import { onBeforeUnmount, shallowReactive, shallowRef, watch } from 'vue';
import type { WatchSource } from 'vue';
import type { HostSummary, StatsSample } from '../../../core/common/stats.ts';
import { isActive } from '../../../core/common/state.ts';
import { StatsClaims, appendCpu, coveredBy, sameWatchSet } from '../performance/stats-subscriptions.ts';
import type { StatsWant, WatchSet } from '../performance/stats-subscriptions.ts';
import { unsupportedIn, useConnectionStore } from './connection.ts';

export const useStatsStore = defineStore('stats', () => {
  const conn = useConnectionStore();
  const claims = new StatsClaims();
  /** VM id -> its newest sample. */
  const latest = shallowReactive(new Map<string, StatsSample>());
  /** VM id -> its last CPU figures (% of one core), oldest first. */
  const cpu = shallowReactive(new Map<string, readonly number[]>());
  /** The host's CPU and memory (hostSummary once per connection, then the hostStats pushes). */
  const host = shallowRef<HostSummary | null>(null);
  /** Calls made (diagnostics and tests). */
  const calls = { watchStats: 0, statsLatest: 0, hostSummary: 0 };
  /** Views showing the host summary. The core pushes hostStats only while the watch set is not
   * empty: the list page, where the summary sits, claims every VM. */
  let hostViews = 0;
  let hostSeeded = false;

  /** What the current connection watches (a new connection watches nothing). */
  let sent: WatchSet = [];
  let sending = false;
  /** Something changed while a watchStats call was in flight: look again when it ends. */
  let again = false;
  /** Bumped per connection: an answer from an older connection says nothing about this one. */
  let generation = 0;
  /** What the last statsLatest seeded on this connection (null = every VM; [] = nothing yet). */
  let seededFor: WatchSet = [];

  function ingest(s: StatsSample): void {
    // A push can still arrive for a VM just left (before the core has the new set).
    const want = claims.union();
    if (want !== null && !want.includes(s.vmId) && !want.includes(s.name)) return;
    const prev = latest.get(s.vmId);
    const next = appendCpu(cpu.get(s.vmId), prev?.t, s);
    if (!next) return;
    latest.set(s.vmId, s);
    cpu.set(s.vmId, next);
  }

  async function sync(): Promise<void> {
    if (sending) { again = true; return; }
    sending = true;
    try {
      for (;;) {
        again = false;
        if (conn.status !== 'connected' || unsupportedIn(conn.capabilities, 'watchStats')) return;
        const want = claims.union();
        if (sameWatchSet(want, sent)) return;
        const gen = generation;
        try {
          calls.watchStats++;
          await conn.api.watchStats(want);
          if (gen === generation) sent = want;
        } catch (e) {
          // E.g. a claimed VM was deleted: try again at the next change, not in a loop.
          if (gen === generation && !again) { console.warn('watchStats failed:', e); return; }
        }
      }
    } finally {
      sending = false;
    }
  }

  /** The newest samples when the watched VMs grow (once per connection for the list), so the views show figures before the first push. */
  async function seed(): Promise<void> {
    const want = claims.union();
    if ((want !== null && !want.length) || coveredBy(want, seededFor) || conn.status !== 'connected' || unsupportedIn(conn.capabilities, 'statsLatest')) return;
    const before = seededFor;
    seededFor = want;
    const gen = generation;
    try {
      calls.statsLatest++;
      const samples = await conn.api.statsLatest();
      if (gen === generation) for (const s of samples) ingest(s);
    } catch {
      if (gen === generation) seededFor = before; // an older core without statistics, or the link dropped
    }
  }

  /** VMs nobody watches any more get no pushes: their figures go (coming back starts a fresh series, not one across a gap). */
  function prune(): void {
    const want = claims.union();
    if (want === null) return;
    for (const [id, s] of latest) {
      if (!want.includes(id) && !want.includes(s.name)) {
        latest.delete(id);
        cpu.delete(id);
      }
    }
    if (!coveredBy(seededFor, want)) seededFor = want;
  }

  async function seedHost(): Promise<void> {
    if (hostSeeded || !hostViews || conn.status !== 'connected' || unsupportedIn(conn.capabilities, 'hostSummary')) return;
    hostSeeded = true;
    const gen = generation;
    try {
      calls.hostSummary++;
      const h = await conn.api.hostSummary();
      if (gen === generation && (!host.value || h.t >= host.value.t)) host.value = h;
    } catch {
      if (gen === generation) hostSeeded = false;
    }
  }

  function changed(): void {
    prune();
    void sync();
    void seed();
    void seedHost();
  }

  conn.onConnected(() => {
    generation++;
    sent = [];
    seededFor = [];
    hostSeeded = false;
    again = true;
    changed();
  });
  // Another connection's figures must not show beside this one's VMs (a new connection watches nothing yet).
  conn.onSwitching(() => {
    generation++;
    sent = [];
    seededFor = [];
    hostSeeded = false;
    latest.clear();
    cpu.clear();
    host.value = null;
  });
  conn.onEvent('statsSample', (s) => ingest(s));
  conn.onEvent('hostStats', (h) => { if (!host.value || h.t >= host.value.t) host.value = h; });
  // A stopped VM sends no more samples: its figures go (a new run starts a new series).
  conn.onEvent('vmChanged', (e) => {
    if (!isActive(e.state) || e.state === 'stopping') {
      latest.delete(e.id);
      cpu.delete(e.id);
    }
  });

  /** Claims live samples; the returned function drops the claim. */
  function claim(want: StatsWant): { update(want: StatsWant): void; release(): void } {
    const id = claims.add(want);
    changed();
    return {
      update(w) { claims.update(id, w); changed(); },
      release() { claims.remove(id); changed(); },
    };
  }

  /** Shows the host summary; the returned function stops. */
  function claimHost(): () => void {
    hostViews++;
    void seedHost();
    let done = false;
    return () => { if (!done) { done = true; hostViews--; } };
  }

  /** The union asked for now (tests). */
  function watching(): WatchSet {
    return sent;
  }

  return { latest, cpu, host, calls, claim, claimHost, watching, ingest };
});

/** In a component: claims what `want` says while the component lives (follows its changes). */
export function useStatsClaim(want: WatchSource<StatsWant>): void {
  const stats = useStatsStore();
  const c = stats.claim([]);
  const stop = watch(want, (w) => c.update(w), { immediate: true });
  onBeforeUnmount(() => { stop(); c.release(); });
}
