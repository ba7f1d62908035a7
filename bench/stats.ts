// Cost of the statistics sampler (issue 17): the core daemon's CPU with N running VMs (tiny
// guests: 32 MiB, no disk, paused right after start; their QEMUs still answer the monitor and
// have threads to read) sampled every second, against the same daemon sampling once a minute
// (restarted with HANGAR_STATS_INTERVAL_MS=60000: the VMs outlive it and are re-attached).
// CPU is the daemon's utime+stime over a window, per VM, as a percentage of one core. Memory:
// the history rings' bytes per VM for an hour at 1 s plus a day of minutes (preallocated typed
// arrays, so the figures are exact), for a VM without devices and for one with a disk and a NIC.
// BENCH_STATS_COUNTS (default 1,10,50; empty: the memory figures only), BENCH_STATS_WINDOW_S (default 20).
import { readFileSync } from 'node:fs';
import { HangarHarness, sleep } from '../tests/helpers/hangar.ts';
import { StatsHub } from '../core/node/stats/stats-hub.ts';
import type { StatsSample } from '../core/common/stats.ts';

const COUNTS = (process.env.BENCH_STATS_COUNTS ?? '1,10,50').split(',').map(Number).filter((n) => n > 0);
const WINDOW_S = Number(process.env.BENCH_STATS_WINDOW_S ?? 20);

function ticks(pid: number): number {
  const line = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = line.slice(line.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

/** The daemon's CPU over the window, percent of one core. */
async function daemonCpu(pid: number): Promise<number> {
  const t0 = ticks(pid), w0 = performance.now();
  await sleep(WINDOW_S * 1000);
  return ((ticks(pid) - t0) / 100) / ((performance.now() - w0) / 1000) * 100;
}

/** Bytes of history a hub keeps for one VM after an hour and a day of samples shaped like `s`. */
function historyBytes(s: Omit<StatsSample, 't'>): { hour: number; day: number } {
  let now = Date.UTC(2026, 0, 1);
  const hub = new StatsHub({ intervalMs: 1000, targets: () => [], now: () => now });
  // Samples fed straight into the history (sampling needs a QEMU; the rings are what holds memory).
  for (let i = 0; i < 3 * 3600; i++) { hub.record({ ...s, t: now }); now += 1000; }
  return hub.historyBytes(s.vmId);
}

export async function benchStats(): Promise<void> {
  const tiny: Omit<StatsSample, 't'> = { vmId: 'a', name: 'a', intervalMs: 1000, cpuPercent: 1, vcpuPercent: 1, otherPercent: 0, vcpus: 1, cpuSeconds: 1, vcpuSeconds: 1, rssBytes: 1, memoryBytes: 1, disks: [], nics: [] };
  const full: Omit<StatsSample, 't'> = {
    ...tiny, vmId: 'b',
    disks: [{ id: 'disk0', rdBytesPerSec: 1, wrBytesPerSec: 1, rdOpsPerSec: 1, wrOpsPerSec: 1, latencyMs: 1, rdBytes: 1, wrBytes: 1, rdOps: 1, wrOps: 1 }],
    nics: [{ id: 'net0', available: true, device: 'tap0', rxBytesPerSec: 1, txBytesPerSec: 1, rxPacketsPerSec: 1, txPacketsPerSec: 1, rxBytes: 1, txBytes: 1, rxPackets: 1, txPackets: 1 }],
  };
  const kib = (b: number): string => `${(b / 1024).toFixed(1)} KiB`;
  for (const [what, s] of [['a VM without disks or NICs', tiny], ['a VM with one disk and one tap NIC', full]] as const) {
    const b = historyBytes(s);
    console.log(`stats history of ${what}: ${kib(b.hour)} for the hour at 1 s (target < 200 KiB per hour), ${kib(b.day)} for the day of minute averages, ${kib(b.hour + b.day)} in all`);
  }

  const h = new HangarHarness();
  const daemon = async (intervalMs: number): Promise<number> => {
    await h.run(['daemon', 'stop']);
    await sleep(1000);
    // Any command starts the daemon, with the command's environment.
    const r = await h.run(['list'], { env: { HANGAR_STATS_INTERVAL_MS: String(intervalMs) } });
    if (r.code !== 0) throw new Error(`hangar list: ${r.stderr}`);
    return (await h.json<{ pid: number }>(['daemon', 'status'])).pid;
  };
  try {
    let started = 0;
    for (const n of COUNTS) {
      for (; started < n; started++) {
        const name = `s${started}`;
        await h.ok(['create', '--name', name, '--memory', '32', '--accel', 'tcg']);
        await h.ok(['start', name], { timeoutMs: 180_000 });
        await h.ok(['pause', name]);
      }
      const idlePid = await daemon(60_000);
      await sleep(3000);
      const idle = await daemonCpu(idlePid);
      const pid = await daemon(1000);
      await sleep(3000);
      const busy = await daemonCpu(pid);
      const rss = (await h.json<{ rssBytes: number }>(['daemon', 'status'])).rssBytes;
      const top = (await h.json<{ vms: unknown[] }>(['top', '--once'])).vms;
      const perVm = (busy - idle) / n;
      console.log(`stats sampling of ${n} running VM${n === 1 ? '' : 's'} at 1 s: daemon ${busy.toFixed(2)}% of one core (${idle.toFixed(2)}% sampling once a minute) -> ${perVm.toFixed(3)}% per VM (target < 0.2%); ${top.length} VMs in hangar top; daemon RSS ${(rss / 1048576).toFixed(1)} MiB`);
    }
  } finally {
    await h.cleanup();
  }
}

