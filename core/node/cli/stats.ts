// `hangar top` (virt-top's twin: a host line, then running VMs sorted by CPU, refreshed every
// second; q quits on a terminal, Ctrl-C anywhere; without a terminal it prints plain tables one
// after another, like top -b) and `hangar stats NAME` (one VM's newest sample, or its history).
import type { CoreApi } from '../../common/api.ts';
import { HangarError } from '../../common/errors.ts';
import { isActive } from '../../common/state.ts';
import type { HostSummary, StatsHistory, StatsSample } from '../../common/stats.ts';
import { formatRate, parseDuration } from '../../common/stats.ts';
import { cliConnect } from './connection.ts';
import { table } from './table.ts';

type WithCore = <T>(fn: (api: CoreApi) => Promise<T>) => Promise<T>;

/** One VM's row in `hangar top`: totals over its disks and NICs. */
export interface TopRow {
  name: string;
  id: string;
  cpuPercent: number;
  vcpuPercent: number;
  otherPercent: number;
  vcpus: number;
  rssBytes: number;
  memoryBytes: number;
  balloonActualBytes?: number;
  diskReadBytesPerSec: number;
  diskWriteBytesPerSec: number;
  diskReadOpsPerSec: number;
  diskWriteOpsPerSec: number;
  /** null when no NIC of the VM has counters (user-mode networking ...). */
  netRxBytesPerSec: number | null;
  netTxBytesPerSec: number | null;
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

export function topRows(samples: readonly StatsSample[]): TopRow[] {
  return samples.map((s) => {
    const nics = s.nics.flatMap((n) => (n.available ? [n] : []));
    return {
      name: s.name, id: s.vmId, cpuPercent: s.cpuPercent, vcpuPercent: s.vcpuPercent, otherPercent: s.otherPercent, vcpus: s.vcpus,
      rssBytes: s.rssBytes, memoryBytes: s.memoryBytes, ...(s.balloonActualBytes !== undefined ? { balloonActualBytes: s.balloonActualBytes } : {}),
      diskReadBytesPerSec: sum(s.disks.map((d) => d.rdBytesPerSec)), diskWriteBytesPerSec: sum(s.disks.map((d) => d.wrBytesPerSec)),
      diskReadOpsPerSec: sum(s.disks.map((d) => d.rdOpsPerSec)), diskWriteOpsPerSec: sum(s.disks.map((d) => d.wrOpsPerSec)),
      netRxBytesPerSec: nics.length ? sum(nics.map((n) => n.rxBytesPerSec)) : null,
      netTxBytesPerSec: nics.length ? sum(nics.map((n) => n.txBytesPerSec)) : null,
    };
  }).sort((a, b) => b.cpuPercent - a.cpuPercent || a.name.localeCompare(b.name));
}

const mibText = (b: number): string => `${Math.round(b / (1024 * 1024))} MiB`;
const pct = (p: number): string => `${p.toFixed(1)}%`;

/** `hangar top --once --json`: the host line's figures and the rows. */
export interface TopJson {
  host: HostSummary;
  vms: TopRow[];
}

/** virt-top's second header line: host CPU (of all CPUs), memory committed to guests against the total, what is free, VMs. */
export function hostLine(h: HostSummary): string {
  const cpu = h.cpuPercent === null ? '-' : pct(h.cpuPercent);
  return `Host: CPU ${cpu} of ${h.cpus} CPU${h.cpus === 1 ? '' : 's'}, memory ${mibText(h.committedBytes)} committed / ${mibText(h.memTotalBytes)} total, `
    + `${mibText(h.memAvailableBytes)} available, guests hold ${mibText(h.guestRssBytes)}; ${h.runningVms}/${h.definedVms} VMs running`;
}

export function topText(rows: readonly TopRow[], at: Date, host?: HostSummary): string {
  const head = `hangar top - ${at.toTimeString().slice(0, 8)}, ${rows.length} running VM${rows.length === 1 ? '' : 's'}, CPU ${pct(sum(rows.map((r) => r.cpuPercent)))} of one core`
    + (host ? `\n${hostLine(host)}` : '');
  if (!rows.length) return `${head}\n\nNo running VMs.`;
  return `${head}\n\n${table([
    ['NAME', 'CPU', 'VCPUS', 'RSS', 'MEMORY', 'DISK RD', 'DISK WR', 'NET RX', 'NET TX'],
    ...rows.map((r) => [r.name, pct(r.cpuPercent), String(r.vcpus), mibText(r.rssBytes), mibText(r.balloonActualBytes ?? r.memoryBytes),
      formatRate(r.diskReadBytesPerSec), formatRate(r.diskWriteBytesPerSec),
      r.netRxBytesPerSec === null ? '-' : formatRate(r.netRxBytesPerSec), r.netTxBytesPerSec === null ? '-' : formatRate(r.netTxBytesPerSec)]),
  ])}`;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The newest samples, with rates: a core that just started (or a VM that just did) has a first
 * sample without them, so wait (a few seconds at most) until every running VM has a second one.
 */
async function settledLatest(api: CoreApi, vm?: string): Promise<StatsSample[]> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const latest = (await api.statsLatest()).filter((s) => vm === undefined || s.vmId === vm);
    const running = (await api.list()).filter((v) => (vm === undefined || v.id === vm) && isActive(v.state) && v.state !== 'starting' && v.state !== 'stopping');
    const ready = running.every((v) => latest.some((s) => s.vmId === v.id && s.intervalMs > 0));
    if (ready || Date.now() > deadline) return latest;
    await sleep(250);
  }
}

export async function topCommand(values: Record<string, unknown>, withCore: WithCore, print: (s: string) => void): Promise<number> {
  if (values.once) {
    const { rows, host } = await withCore(async (api) => ({ rows: topRows(await settledLatest(api)), host: await api.hostSummary() }));
    const out: TopJson = { host, vms: rows };
    print(values.json ? JSON.stringify(out, null, 2) : topText(rows, new Date(), host));
    return 0;
  }
  if (values.json) throw new HangarError('invalid-input', '--json needs --once', 'hangar top --once --json');
  const latest = new Map<string, StatsSample>();
  let host: HostSummary | undefined;
  const conn = await cliConnect({ autostart: true, events: { statsSample: (s) => { latest.set(s.vmId, s); }, hostStats: (h) => { host = h; } } });
  for (const s of await conn.api.statsLatest()) latest.set(s.vmId, s);
  host = await conn.api.hostSummary();
  // Watching every VM also brings the host figures (hostStats) each interval.
  await conn.api.watchStats(null);
  const out = process.stdout;
  const tty = out.isTTY === true;
  return new Promise<number>((resolve) => {
    const stdin = process.stdin;
    const keys = stdin.isTTY === true;
    let done = false;
    const quit = (): void => {
      if (done) return;
      done = true;
      clearInterval(timer);
      process.off('SIGINT', quit);
      process.off('SIGTERM', quit);
      if (keys) {
        stdin.setRawMode(false);
        stdin.pause();
      }
      conn.close();
      resolve(0);
    };
    const draw = (): void => {
      // A VM not sampled for a few seconds has stopped.
      for (const [id, s] of latest) if (Date.now() - s.t > 3000) latest.delete(id);
      const text = topText(topRows([...latest.values()]), new Date(), host);
      // A terminal gets the screen redrawn in place; anything else (a pipe, a log) plain tables one after another.
      out.write(tty ? `\x1b[H\x1b[2J${text}\n\n(q quits)\n` : `${text}\n\n`);
    };
    const timer = setInterval(draw, 1000);
    // `hangar top | head`: the reader went away.
    out.on('error', quit);
    draw();
    if (keys) {
      // q, Q or Ctrl-C (raw mode delivers it as a byte). Without a terminal, stdin is not ours to read (it may be closed).
      stdin.setRawMode(true);
      stdin.on('data', (d: Buffer) => { if (d.includes(0x71) || d.includes(0x51) || d.includes(0x03)) quit(); });
      stdin.on('end', quit);
    }
    process.on('SIGINT', quit);
    process.on('SIGTERM', quit);
  });
}

function sampleText(s: StatsSample): string {
  const lines = [
    `VM:      ${s.name}`,
    `CPU:     ${pct(s.cpuPercent)} of one core (vCPUs ${pct(s.vcpuPercent)}, QEMU's other threads ${pct(s.otherPercent)}); ${s.vcpus} vCPU${s.vcpus === 1 ? '' : 's'}; ${s.cpuSeconds.toFixed(1)} s in all`,
    `Memory:  ${mibText(s.rssBytes)} resident on the host; guest ${mibText(s.memoryBytes)}${s.balloonActualBytes !== undefined ? `, ${mibText(s.balloonActualBytes)} left by the balloon` : ''}`,
  ];
  for (const d of s.disks) {
    lines.push(`Disk ${d.id}: read ${formatRate(d.rdBytesPerSec)} (${d.rdOpsPerSec.toFixed(0)} IOPS), write ${formatRate(d.wrBytesPerSec)} (${d.wrOpsPerSec.toFixed(0)} IOPS), latency ${d.latencyMs.toFixed(2)} ms; ${mibText(d.rdBytes)} read, ${mibText(d.wrBytes)} written in all`);
  }
  for (const d of s.disksUnavailable ?? []) lines.push(`Disk ${d.id}: no counters: ${d.reason}`);
  for (const n of s.nics) {
    if (!n.available) lines.push(`NIC ${n.id}: no counters: ${n.reason}`);
    else lines.push(`NIC ${n.id} (${n.device}): receive ${formatRate(n.rxBytesPerSec)} (${n.rxPacketsPerSec.toFixed(0)} packets/s), send ${formatRate(n.txBytesPerSec)} (${n.txPacketsPerSec.toFixed(0)} packets/s)`);
  }
  return lines.join('\n');
}

/** min / mean / max of each series over the history. */
function historyText(h: StatsHistory, range: string): string {
  const lines = [`VM ${h.name}: ${h.t.length} points over the last ${range} (one per ${h.stepSeconds} s)`];
  const rows = [['SERIES', 'MIN', 'MEAN', 'MAX']];
  for (const [k, vals] of Object.entries(h.series)) {
    const xs = vals.filter((v): v is number => v !== null);
    if (!xs.length) continue;
    const f = (v: number): string => (k === 'cpu' || k === 'vcpu' ? pct(v) : k === 'rss' || k === 'balloon' ? mibText(v) : /Bps$/.test(k) ? formatRate(v) : v.toFixed(2));
    rows.push([k, f(Math.min(...xs)), f(sum(xs) / xs.length), f(Math.max(...xs))]);
  }
  if (rows.length > 1) lines.push(table(rows));
  for (const u of h.unavailable) lines.push(`${u.kind === 'disk' ? 'Disk' : 'NIC'} ${u.id}: no counters: ${u.reason}`);
  return lines.join('\n');
}

export async function statsCommand(name: string, values: Record<string, unknown>, withCore: WithCore, print: (s: string) => void): Promise<number> {
  if (values.history !== undefined) {
    const range = String(values.history);
    const seconds = parseDuration(range);
    if (seconds === null) throw new HangarError('invalid-input', `--history ${range} is not a duration`, 'e.g. --history 90s, 10m, 1h or 1d');
    const h = await withCore((api) => api.statsHistory(name, seconds));
    print(values.json ? JSON.stringify(h, null, 2) : historyText(h, range));
    return 0;
  }
  const s = await withCore(async (api) => {
    const info = await api.get(name);
    if (!isActive(info.state)) throw new HangarError('invalid-state', `VM "${info.name}" is not running (${info.state}): it has no live statistics`, `\`hangar stats ${info.name} --history 1h\` shows what was recorded`);
    return (await settledLatest(api, info.id))[0];
  });
  if (!s) throw new HangarError('invalid-state', `no statistics for VM "${name}" yet`, 'try again in a second');
  print(values.json ? JSON.stringify(s, null, 2) : sampleText(s));
  return 0;
}
