// The host's side of the statistics: CPU busy from /proc/stat (two readings apart) and memory
// from /proc/meminfo. Small synchronous reads, as in proc-stats.ts.
import { readFileSync } from 'node:fs';
import { meminfoKiB } from '../host/host-memory.ts';

export interface CpuTimes {
  /** Online CPUs (the cpuN lines). */
  cpus: number;
  busy: number;
  total: number;
}

/** The aggregate "cpu" line's busy and total ticks; idle and iowait are not busy (as top counts). */
export function parseProcStat(text: string): CpuTimes | null {
  const line = /^cpu\s+(.*)$/m.exec(text)?.[1];
  if (!line) return null;
  // user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is already in user/nice.
  const f = line.trim().split(/\s+/).slice(0, 8).map(Number);
  if (f.length < 4 || f.some((v) => !Number.isFinite(v))) return null;
  const total = f.reduce((a, b) => a + b, 0);
  const idle = f[3]! + (f[4] ?? 0);
  const cpus = (text.match(/^cpu\d+\s/gm) ?? []).length;
  return { cpus: Math.max(1, cpus), busy: total - idle, total };
}

/** Percent of all CPUs busy between two readings (0-100); null when no time passed. */
export function cpuBusyPercent(prev: CpuTimes, cur: CpuTimes): number | null {
  const dt = cur.total - prev.total;
  if (!(dt > 0)) return null;
  const p = ((cur.busy - prev.busy) / dt) * 100;
  return Math.min(100, Math.max(0, p));
}

/** MemTotal and MemAvailable in bytes (kB in the file); null when the file lacks them. */
export function parseMeminfo(text: string): { totalBytes: number; availableBytes: number } | null {
  const kb = (k: string): number | null => {
    const v = meminfoKiB(text, k);
    return v === undefined ? null : v * 1024;
  };
  const totalBytes = kb('MemTotal');
  const availableBytes = kb('MemAvailable') ?? kb('MemFree');
  return totalBytes === null || availableBytes === null ? null : { totalBytes, availableBytes };
}

export function readCpuTimes(procRoot = '/proc'): CpuTimes | null {
  try { return parseProcStat(readFileSync(`${procRoot}/stat`, 'latin1')); } catch { return null; }
}

export function readMeminfo(procRoot = '/proc'): { totalBytes: number; availableBytes: number } | null {
  try { return parseMeminfo(readFileSync(`${procRoot}/meminfo`, 'latin1')); } catch { return null; }
}

/** Keeps the previous /proc/stat reading: each read() gives the CPU busy since the one before. */
export class HostCpuMeter {
  private prev: CpuTimes | null = null;
  /** The newest figure (null before two readings). */
  percent: number | null = null;
  cpus = 0;

  constructor(private readonly procRoot = '/proc') {}

  read(): number | null {
    const cur = readCpuTimes(this.procRoot);
    if (!cur) return this.percent;
    this.percent = this.prev ? cpuBusyPercent(this.prev, cur) ?? this.percent : null;
    this.cpus = cur.cpus;
    this.prev = cur;
    return this.percent;
  }
}
