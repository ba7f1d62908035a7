// Samples every running VM on one timer and keeps each VM's history: an hour at the sampling
// interval and a day of per-minute averages, in fixed-size typed-array rings. History is kept
// whether or not anyone watches; a VM that stops is no longer sampled (its history stays until
// the VM is deleted, so a restart continues the same graphs).
import type { StatsHistory, StatsSample } from '../../common/stats.ts';
import { sampleSeries } from '../../common/stats.ts';
import { HostCpuMeter } from './host-stats.ts';
import { SeriesRing, WindowAverage } from './series-ring.ts';
import { VmSampler } from './vm-sampler.ts';
import type { StatsTarget } from './vm-sampler.ts';

export const DEFAULT_STATS_INTERVAL_MS = 1000;
const HOUR_SEC = 3600;
const DAY_MINUTES = 1440;

/** HANGAR_STATS_INTERVAL_MS, within 100 ms .. 60 s; the default otherwise. */
export function statsIntervalFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env.HANGAR_STATS_INTERVAL_MS);
  return Number.isFinite(v) && v >= 100 && v <= 60_000 ? Math.round(v) : DEFAULT_STATS_INTERVAL_MS;
}

class VmHistory {
  readonly fine: SeriesRing;
  readonly minutes = new SeriesRing(DAY_MINUTES);
  private readonly avg = new WindowAverage(60);
  latest: StatsSample | undefined;

  constructor(intervalMs: number) {
    this.fine = new SeriesRing(Math.ceil((HOUR_SEC * 1000) / intervalMs));
  }

  add(s: StatsSample): void {
    const sec = Math.floor(s.t / 1000);
    const values = sampleSeries(s);
    this.fine.push(sec, values);
    const minute = this.avg.add(sec, values);
    if (minute) this.minutes.push(minute.timeSec, minute.values);
    this.latest = s;
  }
}

export interface StatsHubOptions {
  intervalMs?: number;
  /** The running VMs right now. */
  targets: () => StatsTarget[];
  onSample?: (s: StatsSample) => void;
  /** After each round (with or without running VMs): the host's CPU figure is fresh (hostCpu). */
  onRound?: () => void;
  now?: () => number;
}

export class StatsHub {
  readonly intervalMs: number;
  private readonly samplers = new Map<string, { pid: number; sampler: VmSampler }>();
  private readonly histories = new Map<string, VmHistory>();
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;
  /** Host CPU busy between the last two rounds: one /proc/stat read per round, so a cold hostSummary has a figure. */
  readonly hostCpu = new HostCpuMeter();

  constructor(private readonly opts: StatsHubOptions) {
    this.intervalMs = opts.intervalMs ?? DEFAULT_STATS_INTERVAL_MS;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => { void this.tick(); }, this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One round over the running VMs (a round still busy, e.g. a stalled monitor, makes the next one wait). */
  async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      this.hostCpu.read();
      const targets = this.opts.targets();
      const live = new Set(targets.map((t) => t.id));
      // Stopped VMs: no more sampling; a new QEMU (new pid) starts its rates afresh.
      for (const id of this.samplers.keys()) if (!live.has(id)) this.samplers.delete(id);
      await Promise.all(targets.map(async (t) => {
        let entry = this.samplers.get(t.id);
        if (!entry || entry.pid !== t.pid) {
          entry = { pid: t.pid, sampler: new VmSampler() };
          this.samplers.set(t.id, entry);
        }
        const s = await entry.sampler.sample(t, this.opts.now?.() ?? Date.now()).catch(() => null);
        if (!s) return;
        this.record(s);
        this.opts.onSample?.(s);
      }));
      this.opts.onRound?.();
    } finally {
      this.ticking = false;
    }
  }

  /** Keeps a sample in its VM's history. */
  record(s: StatsSample): void {
    let h = this.histories.get(s.vmId);
    if (!h) {
      h = new VmHistory(this.intervalMs);
      this.histories.set(s.vmId, h);
    }
    // The first sample of a run has no rates: kept as the latest, not drawn as a dip to 0.
    if (s.intervalMs > 0) h.add(s); else h.latest = s;
  }

  /** The newest sample of a running VM. */
  latest(id: string): StatsSample | undefined {
    return this.samplers.has(id) ? this.histories.get(id)?.latest : undefined;
  }

  /** History of the last rangeSec seconds: 1 s points up to an hour, minute averages beyond. */
  history(id: string, name: string, rangeSec: number, unavailable: StatsHistory['unavailable']): StatsHistory {
    const h = this.histories.get(id);
    const now = Math.floor((this.opts.now?.() ?? Date.now()) / 1000);
    const fine = rangeSec <= HOUR_SEC;
    const read = h ? (fine ? h.fine : h.minutes).read(now - rangeSec) : { t: [], series: {} };
    const latest = this.latest(id);
    return { vmId: id, name, stepSeconds: fine ? this.intervalMs / 1000 : 60, ...read, unavailable, ...(latest ? { latest } : {}) };
  }

  /** Forgets a deleted VM. */
  forget(id: string): void {
    this.samplers.delete(id);
    this.histories.delete(id);
  }

  /** Bytes of history held for a VM: the hour at the sampling interval and the day of minutes (the benchmark's figures). */
  historyBytes(id: string): { hour: number; day: number } {
    const h = this.histories.get(id);
    return { hour: h?.fine.bytes ?? 0, day: h?.minutes.bytes ?? 0 };
  }
}
