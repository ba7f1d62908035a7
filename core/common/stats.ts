// Performance statistics of running VMs: the shapes the core samples, keeps and serves (API,
// CLI, UI). Rates are per second over the last sampling interval; CPU percentages are of one
// host core (100 = one core busy, as virt-top and top show it).

export interface DiskSample {
  id: string;
  rdBytesPerSec: number;
  wrBytesPerSec: number;
  rdOpsPerSec: number;
  wrOpsPerSec: number;
  /** Mean time an operation of this interval took (reads and writes together), ms; 0 without operations. */
  latencyMs: number;
  /** Counters since QEMU started. */
  rdBytes: number;
  wrBytes: number;
  rdOps: number;
  wrOps: number;
}

export type NicSample = {
  id: string;
  available: true;
  /** The host's tap device the counters come from (its rx is the guest's tx). */
  device: string;
  /** Seen from the guest: rx = into the guest. */
  rxBytesPerSec: number;
  txBytesPerSec: number;
  rxPacketsPerSec: number;
  txPacketsPerSec: number;
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
} | { id: string; available: false; reason: string };

export interface StatsSample {
  vmId: string;
  name: string;
  /** Epoch ms. */
  t: number;
  /** Interval the rates cover, ms. */
  intervalMs: number;
  /** vCPU threads plus QEMU's other threads, percent of one host core. */
  cpuPercent: number;
  vcpuPercent: number;
  /** QEMU's main loop, I/O and worker threads ("the emulator"). */
  otherPercent: number;
  vcpus: number;
  /** CPU time since QEMU started, seconds. */
  cpuSeconds: number;
  vcpuSeconds: number;
  /** Host memory QEMU holds (resident set). */
  rssBytes: number;
  /** Guest memory as defined, and what the balloon leaves the guest (with a balloon). */
  memoryBytes: number;
  balloonActualBytes?: number;
  disks: DiskSample[];
  /** Disks without I/O counters (vhost-user-blk, or any QEMU did not report), and why; absent when none. */
  disksUnavailable?: Array<{ id: string; reason: string }>;
  nics: NicSample[];
}

/** Columnar history of one VM: `t` (epoch ms) and one array per series, null where no sample. */
export interface StatsHistory {
  vmId: string;
  name: string;
  /** Seconds between points: 1 for the last hour, 60 beyond it (averaged per minute). */
  stepSeconds: number;
  t: number[];
  /** Keys: cpu, vcpu, rss, balloon, disk.ID.{rdBps,wrBps,rdIops,wrIops,latMs}, nic.ID.{rxBps,txBps,rxPps,txPps}. */
  series: Record<string, Array<number | null>>;
  /** Devices without counters, and why: NICs (kind 'nic') and disks (kind 'disk'); kind is always set by this core. */
  unavailable: Array<{ id: string; reason: string; kind?: 'disk' | 'nic' }>;
  /** The newest sample (absent when the VM does not run). */
  latest?: StatsSample;
}

/** The host as the list page's summary and `hangar top`'s header show it. */
export interface HostSummary {
  /** Epoch ms of the reading. */
  t: number;
  /** Online host CPUs. */
  cpus: number;
  /** Host CPU busy over the last interval, percent of ALL CPUs (0-100), from /proc/stat; null before a second reading exists. */
  cpuPercent: number | null;
  memTotalBytes: number;
  /** MemAvailable from /proc/meminfo. */
  memAvailableBytes: number;
  /** Guest memory of running and paused VMs as defined (boot memory plus hotplugged). */
  committedBytes: number;
  /** What those VMs' QEMU processes hold (sum of RSS). */
  guestRssBytes: number;
  runningVms: number;
  definedVms: number;
}

/** The longest history served: a day at one point per minute. */
export const STATS_MAX_RANGE_SECONDS = 86_400;

/** A counter's per-second rate between two readings; a counter that went back (QEMU restarted, device re-plugged) counts from zero. */
export function counterRate(prev: number, cur: number, seconds: number): number {
  if (!(seconds > 0)) return 0;
  const d = cur >= prev ? cur - prev : cur;
  return d / seconds;
}

/** "10m", "90s", "1h", "2d" or plain seconds -> seconds; null when not a duration. */
export function parseDuration(s: string): number | null {
  const m = /^(\d+(?:\.\d+)?)\s*([smhd]?)$/.exec(s.trim());
  if (!m) return null;
  const mult = { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  const v = Math.round(Number(m[1]) * mult);
  return v > 0 ? v : null;
}

/** Bytes per second as people read them: "0 B/s", "512 KiB/s", "3.2 MiB/s". */
export function formatRate(bytesPerSec: number): string {
  const units = ['B/s', 'KiB/s', 'MiB/s', 'GiB/s'];
  let v = bytesPerSec;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 || v >= 100 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

/** A sample as history series (the keys StatsHistory documents): the core's history and the UI's live appends. */
export function sampleSeries(s: StatsSample): Map<string, number> {
  const m = new Map<string, number>([['cpu', s.cpuPercent], ['vcpu', s.vcpuPercent], ['rss', s.rssBytes]]);
  if (s.balloonActualBytes !== undefined) m.set('balloon', s.balloonActualBytes);
  for (const d of s.disks) {
    m.set(`disk.${d.id}.rdBps`, d.rdBytesPerSec);
    m.set(`disk.${d.id}.wrBps`, d.wrBytesPerSec);
    m.set(`disk.${d.id}.rdIops`, d.rdOpsPerSec);
    m.set(`disk.${d.id}.wrIops`, d.wrOpsPerSec);
    m.set(`disk.${d.id}.latMs`, d.latencyMs);
  }
  for (const n of s.nics) {
    if (!n.available) continue;
    m.set(`nic.${n.id}.rxBps`, n.rxBytesPerSec);
    m.set(`nic.${n.id}.txBps`, n.txBytesPerSec);
    m.set(`nic.${n.id}.rxPps`, n.rxPacketsPerSec);
    m.set(`nic.${n.id}.txPps`, n.txPacketsPerSec);
  }
  return m;
}
