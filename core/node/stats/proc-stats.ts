// Readers of /proc and /sys for the statistics sampler: small synchronous reads of files the
// kernel fills on demand (a few µs each, cheaper than a thread-pool round trip), no processes.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** USER_HZ: /proc reports CPU time in these ticks; 100 on every Linux ABI Node runs on. */
export const CLOCK_TICKS = 100;
/** statm counts pages; 4 KiB on x86-64 and the usual arm64 kernels. */
export const PAGE_BYTES = 4096;

/** utime + stime (ticks) from a /proc/.../stat line; the comm field may hold spaces and ")". */
export function parseStatTicks(line: string): number | null {
  const rest = line.slice(line.lastIndexOf(')') + 2).split(' ');
  // After "pid (comm) ": state is field 3, utime 14, stime 15 -> indexes 11 and 12 here.
  const u = Number(rest[11]), s = Number(rest[12]);
  return Number.isFinite(u) && Number.isFinite(s) ? u + s : null;
}

function readTicks(path: string): number | null {
  try { return parseStatTicks(readFileSync(path, 'latin1')); } catch { return null; }
}

/**
 * CPU ticks of the process (all its threads, including ended ones: the kernel folds an exiting
 * thread's time into the process) and of each vCPU thread.
 */
export function processTicks(pid: number, vcpuTids: readonly number[]): { total: number; vcpus: number } | null {
  const total = readTicks(`/proc/${pid}/stat`);
  if (total === null) return null;
  let vcpus = 0;
  for (const tid of vcpuTids) vcpus += readTicks(`/proc/${pid}/task/${tid}/stat`) ?? 0;
  return { total, vcpus };
}

/** Resident set of a process in bytes (statm's second field). */
export function residentBytes(pid: number): number | null {
  try {
    const pages = Number(readFileSync(`/proc/${pid}/statm`, 'latin1').split(' ')[1]);
    return Number.isFinite(pages) ? pages * PAGE_BYTES : null;
  } catch {
    return null;
  }
}

export interface NetCounters { rxBytes: number; txBytes: number; rxPackets: number; txPackets: number }

/** A network device's counters as the host sees them, or null when it is gone. */
export function netDeviceCounters(dev: string, sysRoot = '/sys'): NetCounters | null {
  const dir = `${sysRoot}/class/net/${dev}/statistics`;
  try {
    const n = (f: string): number => Number(readFileSync(`${dir}/${f}`, 'latin1'));
    return { rxBytes: n('rx_bytes'), txBytes: n('tx_bytes'), rxPackets: n('rx_packets'), txPackets: n('tx_packets') };
  } catch {
    return null;
  }
}

/**
 * The tap devices a process holds open, in fd order, with the bridge each is on: QEMU's bridge
 * netdev gets its tap from qemu-bridge-helper, whose name QEMU never reports, but the tun fd's
 * fdinfo names it ("iff:").
 */
export function openTaps(pid: number, sysRoot = '/sys'): Array<{ dev: string; bridge: string | null }> {
  const out: Array<{ fd: number; dev: string; bridge: string | null }> = [];
  let fds: string[];
  try { fds = readdirSync(`/proc/${pid}/fd`); } catch { return []; }
  for (const fd of fds) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== '/dev/net/tun') continue;
      const dev = /^iff:\s*(\S+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'latin1'))?.[1];
      if (!dev || out.some((o) => o.dev === dev)) continue;
      let bridge: string | null = null;
      try { bridge = readlinkSync(`${sysRoot}/class/net/${dev}/master`).split('/').pop() ?? null; } catch { /* not on a bridge */ }
      out.push({ fd: Number(fd), dev, bridge });
    } catch { /* fd closed meanwhile */ }
  }
  return out.sort((a, b) => a.fd - b.fd).map(({ dev, bridge }) => ({ dev, bridge }));
}
