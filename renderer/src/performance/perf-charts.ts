// What the Performance tab draws, from a VM's history: one chart per quantity (CPU %, memory,
// disk MB/s, disk IOPS, network MB/s), one line per series (per disk and per NIC), in uPlot's
// columnar data shape, plus the newest value of each line for the screen-reader table.
import type { StatsHistory, StatsSample } from '../../../core/common/stats.ts';
import { sampleSeries } from '../../../core/common/stats.ts';

export interface ChartLine { key: string; label: string }
export interface ChartSpec { id: string; title: string; unit: string; lines: ChartLine[]; scale: number }

const MB = 1_000_000;
const MIB = 1024 * 1024;

export function chartSpecs(h: StatsHistory): ChartSpec[] {
  const keys = Object.keys(h.series);
  const ids = (prefix: 'disk' | 'nic'): string[] => [...new Set(keys.filter((k) => k.startsWith(`${prefix}.`)).map((k) => k.slice(prefix.length + 1, k.lastIndexOf('.'))))];
  const disks = ids('disk');
  const nics = ids('nic');
  return [
    { id: 'cpu', title: 'CPU', unit: '% of one core', scale: 1, lines: [{ key: 'cpu', label: 'All of QEMU' }, { key: 'vcpu', label: 'vCPUs' }] },
    { id: 'memory', title: 'Memory', unit: 'MiB', scale: 1 / MIB, lines: [{ key: 'rss', label: 'Host memory in use (RSS)' }, ...(keys.includes('balloon') ? [{ key: 'balloon', label: 'Guest memory (balloon)' }] : [])] },
    { id: 'disk', title: 'Disk throughput', unit: 'MB/s', scale: 1 / MB, lines: disks.flatMap((d) => [{ key: `disk.${d}.rdBps`, label: `${d} read` }, { key: `disk.${d}.wrBps`, label: `${d} write` }]) },
    { id: 'iops', title: 'Disk operations', unit: 'IOPS', scale: 1, lines: disks.flatMap((d) => [{ key: `disk.${d}.rdIops`, label: `${d} reads` }, { key: `disk.${d}.wrIops`, label: `${d} writes` }]) },
    { id: 'net', title: 'Network', unit: 'MB/s', scale: 1 / MB, lines: nics.flatMap((n) => [{ key: `nic.${n}.rxBps`, label: `${n} received` }, { key: `nic.${n}.txBps`, label: `${n} sent` }]) },
  ];
}

/** uPlot data: x in seconds, then each line scaled to the chart's unit. */
export function chartData(h: StatsHistory, spec: ChartSpec): Array<Array<number | null>> {
  return [h.t.map((t) => t / 1000), ...spec.lines.map((l) => (h.series[l.key] ?? h.t.map(() => null)).map((v) => (v === null ? null : v * spec.scale)))];
}

/** The newest value of a line, formatted in the chart's unit ("—" without one). */
export function latestValue(h: StatsHistory, spec: ChartSpec, line: ChartLine): string {
  const s = h.series[line.key] ?? [];
  for (let i = s.length - 1; i >= 0; i--) {
    const v = s[i];
    if (v !== null && v !== undefined) {
      const x = v * spec.scale;
      return `${x >= 100 ? x.toFixed(0) : x.toFixed(x >= 10 ? 1 : 2)} ${spec.unit}`;
    }
  }
  return '—';
}

/** Ranges the tab offers (seconds): up to an hour at 1 s, the day as minute averages. */
export const perfRanges = [
  { seconds: 300, label: '5 minutes' },
  { seconds: 900, label: '15 minutes' },
  { seconds: 3600, label: '1 hour' },
  { seconds: 86_400, label: '1 day' },
] as const;

/** Ranges kept at one point per second: the tab appends the pushed samples instead of asking again. */
export const LIVE_RANGE_MAX_SECONDS = 3600;

/**
 * Appends a pushed sample to a per-second history in place (a series new in the sample gets
 * nulls before it, one the sample lacks gets a null) and drops points older than the range.
 * False when the sample is another VM's or not newer than the last point.
 */
export function appendSample(h: StatsHistory, s: StatsSample, rangeSeconds: number): boolean {
  if (s.vmId !== h.vmId || (h.t.length && s.t <= h.t[h.t.length - 1]!)) return false;
  const values = sampleSeries(s);
  for (const key of values.keys()) if (!h.series[key]) h.series[key] = h.t.map(() => null);
  h.t.push(s.t);
  for (const [key, arr] of Object.entries(h.series)) arr.push(values.get(key) ?? null);
  h.latest = s;
  let drop = 0;
  const from = s.t - rangeSeconds * 1000;
  while (drop < h.t.length && h.t[drop]! < from) drop++;
  if (drop) {
    h.t.splice(0, drop);
    for (const arr of Object.values(h.series)) arr.splice(0, drop);
  }
  return true;
}
