// Samples one running VM: CPU ticks of its vCPU threads and of the rest of QEMU (/proc), its
// resident memory, the balloon, per-disk counters (QMP query-blockstats on the VM's existing
// monitor connection) and per-NIC counters (the host's tap device in /sys). Rates come from the
// difference to the previous sample; the first sample of a run has rates of 0.
import type { VmDefinition } from '../../common/model.ts';
import type { DiskSample, NicSample, StatsSample } from '../../common/stats.ts';
import { counterRate } from '../../common/stats.ts';
import { CLOCK_TICKS, netDeviceCounters, openTaps, processTicks, residentBytes } from './proc-stats.ts';
import type { NetCounters } from './proc-stats.ts';

/** What the sampler needs of a running VM (VmInstance gives it; tests and the benchmark can fake it). */
export interface StatsTarget {
  id: string;
  name: string;
  pid: number;
  qmp: { execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> };
  definition: VmDefinition;
  balloonActualBytes?: number;
}

interface BlockStats {
  qdev?: string;
  stats: { rd_bytes: number; wr_bytes: number; rd_operations: number; wr_operations: number; rd_total_time_ns: number; wr_total_time_ns: number };
}

interface DiskRaw { rdBytes: number; wrBytes: number; rdOps: number; wrOps: number; timeNs: number }

/** vCPU thread ids and tap names are looked up again this often (vCPU and NIC hotplug). */
const REDISCOVER_MS = 10_000;

/** Why a NIC's back end has no counters Hangar can read. */
export function nicUnavailableReason(net: VmDefinition['nics'][number]['network']): string | null {
  switch (net.type) {
    case 'user': return 'user-mode networking (slirp) keeps no counters Hangar can read';
    case 'passt': return 'passt keeps its counters inside its own process, where Hangar cannot read them';
    case 'isolated': return 'an isolated network is a UDP socket inside QEMU, with no counters Hangar can read';
    case 'vhost-user': return 'the vhost-user back end (the switch serving it) keeps the counters, not QEMU or the host';
    default: return null;
  }
}

/** Why a disk has no I/O counters: vhost-user-blk disks never do; any other only when QEMU did not report it. */
export function diskUnavailableReason(disk: VmDefinition['disks'][number]): string {
  return disk.bus === 'vhost-user-blk'
    ? 'vhost-user-blk disks are served by an external daemon (qemu-storage-daemon); QEMU keeps no I/O counters for them'
    : 'QEMU reports no I/O counters for it (query-blockstats does not list it)';
}

/** qdev is the device id, or its QOM path (/machine/peripheral/ID/virtio-backend). */
export function deviceIdOfQdev(qdev: string): string {
  return /^\/machine\/peripheral\/([^/]+)/.exec(qdev)?.[1] ?? qdev;
}

export class VmSampler {
  private prev: { t: number; ticks: { total: number; vcpus: number }; disks: Map<string, DiskRaw>; nics: Map<string, NetCounters> } | null = null;
  private vcpuTids: number[] = [];
  private taps = new Map<string, string>();
  private discoveredAt = 0;

  constructor(private readonly sysRoot = '/sys') {}

  private async discover(target: StatsTarget, now: number): Promise<void> {
    const cpus = await target.qmp.execute<Array<{ 'thread-id': number }>>('query-cpus-fast');
    this.vcpuTids = cpus.map((c) => c['thread-id']);
    this.taps = new Map();
    const nics = target.definition.nics;
    for (const n of nics) if (n.network.type === 'tap') this.taps.set(n.id, n.network.ifname);
    if (nics.some((n) => n.network.type === 'bridge')) {
      // Bridge NICs get the helper's taps in the order QEMU opened them, matched by bridge.
      const open = openTaps(target.pid, this.sysRoot).filter((t) => ![...this.taps.values()].includes(t.dev));
      for (const n of nics) {
        if (n.network.type !== 'bridge') continue;
        const br = n.network.bridge;
        const i = open.findIndex((t) => t.bridge === br);
        if (i >= 0) this.taps.set(n.id, open.splice(i, 1)[0]!.dev);
      }
    }
    this.discoveredAt = now;
  }

  /** One sample; null when the process is gone. */
  async sample(target: StatsTarget, now = Date.now()): Promise<StatsSample | null> {
    if (now - this.discoveredAt >= REDISCOVER_MS || !this.vcpuTids.length) await this.discover(target, now);
    const blockstats = await target.qmp.execute<BlockStats[]>('query-blockstats');
    const ticks = processTicks(target.pid, this.vcpuTids);
    const rss = residentBytes(target.pid);
    if (!ticks || rss === null) return null;
    const def = target.definition;
    const wanted = new Set([...def.disks.map((d) => d.id), ...(def.cdroms ?? []).map((c) => c.id)]);
    const disksRaw = new Map<string, DiskRaw>();
    for (const b of blockstats) {
      const id = b.qdev ? deviceIdOfQdev(b.qdev) : '';
      if (!wanted.has(id)) continue;
      const s = b.stats;
      disksRaw.set(id, { rdBytes: s.rd_bytes, wrBytes: s.wr_bytes, rdOps: s.rd_operations, wrOps: s.wr_operations, timeNs: s.rd_total_time_ns + s.wr_total_time_ns });
    }
    const nicsRaw = new Map<string, NetCounters>();
    for (const [id, dev] of this.taps) {
      const c = netDeviceCounters(dev, this.sysRoot);
      if (c) nicsRaw.set(id, c);
    }
    const prev = this.prev;
    const sec = prev ? (now - prev.t) / 1000 : 0;
    const tickRate = (a: number, b: number): number => (prev ? (counterRate(a, b, sec) / CLOCK_TICKS) * 100 : 0);
    const vcpuPercent = tickRate(prev?.ticks.vcpus ?? 0, ticks.vcpus);
    const cpuPercent = tickRate(prev?.ticks.total ?? 0, ticks.total);
    const disks: DiskSample[] = [...disksRaw].map(([id, d]) => {
      const p = prev?.disks.get(id);
      const r = (a: number | undefined, b: number): number => (p && a !== undefined ? counterRate(a, b, sec) : 0);
      const ops = p ? (d.rdOps - p.rdOps) + (d.wrOps - p.wrOps) : 0;
      return {
        id, rdBytesPerSec: r(p?.rdBytes, d.rdBytes), wrBytesPerSec: r(p?.wrBytes, d.wrBytes), rdOpsPerSec: r(p?.rdOps, d.rdOps), wrOpsPerSec: r(p?.wrOps, d.wrOps),
        latencyMs: p && ops > 0 && d.timeNs >= p.timeNs ? (d.timeNs - p.timeNs) / ops / 1e6 : 0,
        rdBytes: d.rdBytes, wrBytes: d.wrBytes, rdOps: d.rdOps, wrOps: d.wrOps,
      };
    });
    const disksUnavailable = def.disks.filter((d) => !disksRaw.has(d.id)).map((d) => ({ id: d.id, reason: diskUnavailableReason(d) }));
    const nics: NicSample[] = def.nics.map((n): NicSample => {
      const reason = nicUnavailableReason(n.network);
      if (reason) return { id: n.id, available: false, reason };
      const c = nicsRaw.get(n.id);
      if (!c) return { id: n.id, available: false, reason: 'its tap device was not found on the host' };
      const p = prev?.nics.get(n.id);
      const r = (a: number | undefined, b: number): number => (p && a !== undefined ? counterRate(a, b, sec) : 0);
      // The tap's transmit is what the host sends into the guest: the guest's receive.
      return {
        id: n.id, available: true, device: this.taps.get(n.id)!,
        rxBytesPerSec: r(p?.txBytes, c.txBytes), txBytesPerSec: r(p?.rxBytes, c.rxBytes), rxPacketsPerSec: r(p?.txPackets, c.txPackets), txPacketsPerSec: r(p?.rxPackets, c.rxPackets),
        rxBytes: c.txBytes, txBytes: c.rxBytes, rxPackets: c.txPackets, txPackets: c.rxPackets,
      };
    });
    this.prev = { t: now, ticks, disks: disksRaw, nics: nicsRaw };
    return {
      vmId: target.id, name: target.name, t: now, intervalMs: prev ? now - prev.t : 0,
      cpuPercent, vcpuPercent, otherPercent: Math.max(0, cpuPercent - vcpuPercent), vcpus: this.vcpuTids.length,
      cpuSeconds: ticks.total / CLOCK_TICKS, vcpuSeconds: ticks.vcpus / CLOCK_TICKS,
      rssBytes: rss, memoryBytes: def.memoryMiB * 1024 * 1024,
      ...(target.balloonActualBytes !== undefined ? { balloonActualBytes: target.balloonActualBytes } : {}),
      disks, ...(disksUnavailable.length ? { disksUnavailable } : {}), nics,
    };
  }
}
