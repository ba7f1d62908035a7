// Who wants live statistics, and what the core is asked for: each view holds a claim (every
// running VM, or some VMs by id) and the connection's one watchStats set is their union. The
// core keeps one set per connection and each watchStats call replaces it, so views must not
// call it themselves. Pure (no Vue): unit-tested in Node.
import type { StatsSample } from '../../../core/common/stats.ts';

/** What one view wants: every running VM, or these VMs (ids or names). */
export type StatsWant = 'all' | readonly string[];

/** What watchStats takes: null = every running VM, [] = none. */
export type WatchSet = string[] | null;

export class StatsClaims {
  private readonly claims = new Map<number, StatsWant>();
  private seq = 0;

  /** Adds a claim; the returned handle changes or drops it. */
  add(want: StatsWant): number {
    const id = ++this.seq;
    this.claims.set(id, want);
    return id;
  }

  update(id: number, want: StatsWant): void {
    if (this.claims.has(id)) this.claims.set(id, want);
  }

  remove(id: number): void {
    this.claims.delete(id);
  }

  get size(): number {
    return this.claims.size;
  }

  /** The union: null as soon as one claim wants every VM, else the refs wanted (sorted, once each). */
  union(): WatchSet {
    const refs = new Set<string>();
    for (const w of this.claims.values()) {
      if (w === 'all') return null;
      for (const r of w) refs.add(r);
    }
    return [...refs].sort();
  }
}

export function sameWatchSet(a: WatchSet, b: WatchSet): boolean {
  if (a === null || b === null) return a === b;
  return a.length === b.length && a.every((r, i) => r === b[i]);
}

/** Whether every VM `inner` asks for is in `outer` too (null = every VM). */
export function coveredBy(inner: WatchSet, outer: WatchSet): boolean {
  if (outer === null) return true;
  if (inner === null) return false;
  return inner.every((r) => outer.includes(r));
}

/** How many CPU figures the list's sparkline keeps per VM (a minute at the core's 1 s). */
export const CPU_SERIES_POINTS = 60;

/** The series with the sample's CPU figure appended (a new array), unless the sample is not newer than the last one. */
export function appendCpu(series: readonly number[] | undefined, lastT: number | undefined, s: StatsSample, max = CPU_SERIES_POINTS): number[] | null {
  if (lastT !== undefined && s.t <= lastT) return null;
  return [...(series ?? []), s.cpuPercent].slice(-max);
}
