// What the list page's host summary says, from the core's HostSummary: CPU of all host CPUs and
// the guests' committed memory against the host's, with overcommit in words. Pure: unit-tested.
import type { HostSummary } from '../../../core/common/stats.ts';
import { formatBytes } from '../util/format.ts';

export interface HostSummaryView {
  cpu: { now: number; text: string; valueText: string };
  mem: { now: number; text: string; valueText: string; over: boolean; overText: string };
  vms: string;
}

const clampPct = (part: number, whole: number): number => (whole > 0 ? Math.min(100, Math.max(0, (part / whole) * 100)) : 0);

export function hostSummaryView(h: HostSummary): HostSummaryView {
  const cpus = `${h.cpus} ${h.cpus === 1 ? 'CPU' : 'CPUs'}`;
  const cpu = h.cpuPercent === null
    ? { now: 0, text: 'measuring…', valueText: 'not measured yet' }
    : { now: Math.round(clampPct(h.cpuPercent, 100)), text: `${Math.round(h.cpuPercent)}%`, valueText: `${Math.round(h.cpuPercent)}% of ${cpus}` };
  const over = h.committedBytes > h.memTotalBytes;
  const text = `committed by guests ${formatBytes(h.committedBytes)} of ${formatBytes(h.memTotalBytes)}, ${formatBytes(h.memAvailableBytes)} available`;
  return {
    cpu,
    mem: {
      now: Math.round(clampPct(h.committedBytes, h.memTotalBytes)),
      text,
      valueText: over ? `overcommitted: ${text}` : text,
      over,
      overText: over ? `Overcommitted by ${formatBytes(h.committedBytes - h.memTotalBytes)}: guests may not all get their memory` : '',
    },
    vms: `VMs: ${h.runningVms} running, ${h.definedVms} defined`,
  };
}
