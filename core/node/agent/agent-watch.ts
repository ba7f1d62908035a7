// What the list shows of each running VM's guest (agent up, addresses, OS, hostname), learned by
// polling qemu-ga in the background: every fast period until the agent answers, then every slow
// period (6x the fast one), back to fast when it stops answering. One poll at a time per VM (the
// next is scheduled when one ends), background sessions that give way to any other agent use
// (client.ts), and no polls while the guest is not running (paused, shutting down): polling never
// piles up nor delays a lifecycle operation.
import type { AgentInfo, GuestSummary } from '../../common/guest-agent.ts';
import { guestAddresses } from '../../common/guest-agent.ts';
import { isHangarError } from '../../common/errors.ts';
import { isActive } from '../../common/state.ts';
import type { VmState } from '../../common/state.ts';

export const DEFAULT_AGENT_POLL_MS = 5000;
/** Once the agent answers, polls are this many times further apart (5 s -> 30 s). */
export const SLOW_POLL_FACTOR = 6;

/** HANGAR_AGENT_POLL_MS (100 ms .. 60 s) for tests; the default otherwise. */
export function agentPollFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env.HANGAR_AGENT_POLL_MS);
  return Number.isFinite(v) && v >= 100 && v <= 60_000 ? Math.round(v) : DEFAULT_AGENT_POLL_MS;
}

/** What the watcher needs of a VM (VmInstance gives it). */
export interface WatchedVm {
  id: string;
  state: VmState;
  pid: number | undefined;
  /** The running VM's agent channel socket; null without the channel. */
  agentSocket(): string | null;
}

/** The list's view of an agent answer (or of no answer). */
export function guestSummaryOf(info: AgentInfo, at: number): GuestSummary {
  if (!info.available) return { agent: false, addresses: [], at };
  const g: GuestSummary = { agent: true, addresses: guestAddresses(info), at };
  const os = info.os?.prettyName ?? ([info.os?.name, info.os?.version].filter(Boolean).join(' ') || undefined);
  if (os) g.os = os;
  if (info.hostname) g.hostname = info.hostname;
  return g;
}

/** Whether the list would show something different (the poll time alone is no change). */
export function guestDiffers(a: GuestSummary | undefined, b: GuestSummary | undefined): boolean {
  if (!a || !b) return a !== b;
  return a.agent !== b.agent || a.os !== b.os || a.hostname !== b.hostname || a.addresses.join(' ') !== b.addresses.join(' ');
}

interface Entry {
  vm: WatchedVm;
  pid: number;
  socket: string;
  timer: NodeJS.Timeout | null;
  polling: boolean;
  summary?: GuestSummary;
}

export interface AgentWatchOptions {
  fastMs: number;
  /** One background query (withAgent background); throws 'busy' when it gave way or the channel was in use. */
  query: (socket: string) => Promise<AgentInfo>;
  /** The list's view of a VM changed: clients re-fetch (vmChanged). */
  changed: (id: string) => void;
  now?: () => number;
}

export class AgentWatch {
  private readonly entries = new Map<string, Entry>();
  private closed = false;

  constructor(private readonly o: AgentWatchOptions) {}

  get slowMs(): number {
    return this.o.fastMs * SLOW_POLL_FACTOR;
  }

  /** Call on every state change: starts polling a VM that runs with the channel, forgets one that stopped. */
  track(vm: WatchedVm): void {
    if (this.closed) return;
    const e = this.entries.get(vm.id);
    if (!isActive(vm.state) || vm.pid === undefined) {
      if (e) this.drop(vm.id);
      return;
    }
    if (e && e.pid === vm.pid) {
      e.vm = vm;
      return;
    }
    if (e) this.drop(vm.id);
    // Until the guest first runs, no poll: its agent cannot answer yet.
    if (vm.state !== 'running') return;
    const socket = vm.agentSocket();
    if (!socket) return;
    const entry: Entry = { vm, pid: vm.pid, socket, timer: null, polling: false };
    this.entries.set(vm.id, entry);
    this.schedule(entry, this.o.fastMs);
  }

  /** The cached summary of a VM with a QEMU and the channel, once a first poll finished. */
  summary(id: string): GuestSummary | undefined {
    return this.entries.get(id)?.summary;
  }

  /** An explicit agentInfo call's answer refreshes the cache (same QEMU run only). */
  record(id: string, pid: number | undefined, info: AgentInfo): void {
    const e = this.entries.get(id);
    if (!e || e.pid !== pid) return;
    this.store(e, guestSummaryOf(info, this.now()));
  }

  forget(id: string): void {
    this.drop(id);
  }

  close(): void {
    this.closed = true;
    for (const id of [...this.entries.keys()]) this.drop(id);
  }

  private now(): number {
    return this.o.now?.() ?? Date.now();
  }

  private drop(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    if (e.timer) clearTimeout(e.timer);
    e.timer = null;
    this.entries.delete(id);
  }

  private schedule(e: Entry, ms: number): void {
    if (e.timer) clearTimeout(e.timer);
    e.timer = setTimeout(() => { e.timer = null; void this.poll(e); }, ms);
    e.timer.unref();
  }

  private async poll(e: Entry): Promise<void> {
    if (this.entries.get(e.vm.id) !== e || e.polling) return;
    // Paused or on its way down: the agent cannot (or must not be asked to) answer; look again later.
    if (e.vm.state !== 'running') { this.schedule(e, this.o.fastMs); return; }
    e.polling = true;
    let next = this.o.fastMs;
    try {
      const info = await this.o.query(e.socket);
      if (this.entries.get(e.vm.id) !== e) return;
      this.store(e, guestSummaryOf(info, this.now()));
      next = this.slowMs;
    } catch (err) {
      if (this.entries.get(e.vm.id) !== e) return;
      // 'busy': someone else used the agent meanwhile; their call says nothing about our cache.
      if (!(isHangarError(err) && err.code === 'busy') && e.vm.state === 'running') {
        this.store(e, { agent: false, addresses: [], at: this.now() });
      } else if (e.summary?.agent) {
        next = this.slowMs;
      }
    } finally {
      e.polling = false;
      if (this.entries.get(e.vm.id) === e) this.schedule(e, next);
    }
  }

  private store(e: Entry, g: GuestSummary): void {
    const changed = guestDiffers(e.summary, g);
    e.summary = g;
    if (changed) this.o.changed(e.vm.id);
  }
}
