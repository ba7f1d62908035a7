// What the Host page's Memory, KSM and Huge pages cards show of the core's hostCpuMemory, as plain
// data: sizes in words, guest memory committed against host memory (each VM's balloon), KSM's state and savings, the
// huge page pools, the pool size typed before it is sent, and what a host change did. Pure TS
// (unit-tested in Node); the components only render it.
import type { HostCpuMemory } from '../../../core/common/api.ts';
import type { HostChangeResult } from '../../../core/common/host-devices.ts';
import { formatMemory } from '../util/format.ts';

/** A size in KiB in words ("15.5 GiB", "512 MiB"). */
export function kibText(kib: number): string {
  return formatMemory(Math.round(kib / 1024));
}

/** MiB with one decimal below 10 ("0.5 MiB", "12 MiB"). */
export function mibText(bytes: number): string {
  const mib = bytes / 1048576;
  return mib < 10 && mib !== Math.round(mib) ? `${mib.toFixed(1)} MiB` : `${Math.round(mib)} MiB`;
}

export interface CommittedView {
  totalMiB: number;
  hostMiB: number;
  /** Percent of host memory the running guests were given (may pass 100: overcommit). */
  percent: number;
  text: string;
  vms: Array<{ name: string; text: string }>;
}

export function committedView(m: Pick<HostCpuMemory, 'committed' | 'memTotalKiB'>): CommittedView {
  const c = m.committed ?? { totalMiB: 0, vms: [] };
  const hostMiB = Math.round(m.memTotalKiB / 1024);
  const percent = hostMiB ? Math.round((c.totalMiB / hostMiB) * 100) : 0;
  const n = c.vms.length;
  const text = n
    ? `${formatMemory(c.totalMiB)} committed to ${n} running VM${n === 1 ? '' : 's'}: ${percent}% of the host's ${formatMemory(hostMiB)}${percent > 100 ? ' (overcommitted: the guests rely on not all using their memory at once)' : ''}`
    : `No VM runs: 0% of the host's ${formatMemory(hostMiB)} committed`;
  return {
    totalMiB: c.totalMiB, hostMiB, percent, text,
    vms: [...c.vms].sort((a, b) => b.memoryMiB - a.memoryMiB || a.name.localeCompare(b.name)).map((v) => ({
      name: v.name,
      text: `${formatMemory(v.memoryMiB)}${v.hugepages ? ` on ${v.hugepages} huge pages` : ''}${v.merge ? '' : ', KSM merging off'}${v.balloon
        ? `; balloon target ${formatMemory(v.balloon.targetMiB)}, the guest has ${formatMemory(v.balloon.actualMiB)}${v.balloon.freePageReporting ? ', free page reporting on' : ''}`
        : ''}`,
    })),
  };
}

export type KsmView = { available: false; text: string } | {
  available: true; running: boolean; state: string; sharing: string; saved: string; scans: string;
};

export function ksmView(k: HostCpuMemory['ksm']): KsmView {
  if (!k.available) return { available: false, text: 'This kernel has no KSM (/sys/kernel/mm/ksm is missing).' };
  return {
    available: true,
    running: k.running,
    state: k.running ? 'running' : 'stopped',
    sharing: `${k.pagesSharing} page${k.pagesSharing === 1 ? '' : 's'} share ${k.pagesShared} (${k.pagesUnshared} unshared)`,
    saved: mibText(k.savedBytes),
    scans: String(k.fullScans),
  };
}

export function poolLabel(p: Pick<HostCpuMemory['hugepages'][number], 'size' | 'pageKiB'>): string {
  if (p.size === '2M') return '2 MiB pages';
  if (p.size === '1G') return '1 GiB pages';
  return `${p.pageKiB} KiB pages`;
}

/** The pool size typed: a whole number of pages. */
export function parsePoolCount(input: string | number): { ok: true; value: number } | { ok: false; error: string } {
  const t = String(input).trim();
  if (!/^\d+$/.test(t) || Number(t) > 10_000_000) return { ok: false, error: 'the pool size is a whole number of pages (0 empties the pool)' };
  return { ok: true, value: Number(t) };
}

const viaText: Record<HostChangeResult['via'], string> = { root: 'as root', sudo: 'through sudo', pkexec: 'through pkexec' };

/** "KSM on (as root)", or "nothing to change" when the host already had it. */
export function hostChangeText(what: string, r: HostChangeResult): string {
  if (!r.commands.length) return `${what}: it already was, nothing to change`;
  return `${what} (${viaText[r.via] ?? r.via})`;
}

/** After a pool change: what the kernel gave, when it is less than asked (fragmented memory). */
export function poolShortfall(asked: number, pool: Pick<HostCpuMemory['hugepages'][number], 'total' | 'size'> | undefined): string {
  if (!pool || pool.total >= asked) return '';
  return `The kernel gave ${pool.total} of the ${asked} pages (memory too fragmented): free some memory and try again, or reserve them at boot (hugepagesz=${pool.size} hugepages=${asked} on the kernel command line).`;
}
