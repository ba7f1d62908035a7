// Statistics without QEMU: counter rates, duration parsing, /proc stat parsing, the typed-array
// history ring and its per-minute averages, the sampler's rates against a fake monitor and this
// process's own /proc entries, disks without counters, the host's /proc/stat and /proc/meminfo,
// and the Prometheus text.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { counterRate, formatRate, parseDuration } from '../../core/common/stats.ts';
import type { StatsSample } from '../../core/common/stats.ts';
import { parseStatTicks } from '../../core/node/stats/proc-stats.ts';
import { SeriesRing, WindowAverage } from '../../core/node/stats/series-ring.ts';
import { deviceIdOfQdev, diskUnavailableReason, nicUnavailableReason, VmSampler } from '../../core/node/stats/vm-sampler.ts';
import { cpuBusyPercent, parseMeminfo, parseProcStat, readMeminfo } from '../../core/node/stats/host-stats.ts';
import type { StatsTarget } from '../../core/node/stats/vm-sampler.ts';
import { StatsHub } from '../../core/node/stats/stats-hub.ts';
import { prometheusText } from '../../core/node/stats/prometheus.ts';
import { parseDefinition } from '../../core/common/definition.ts';

describe('rate math', () => {
  it('divides the counter difference by the seconds between readings', () => {
    assert.equal(counterRate(1000, 5000, 2), 2000);
    assert.equal(counterRate(5, 5, 1), 0);
  });
  it('counts a counter that went back (QEMU restarted) from zero, and no time as no rate', () => {
    assert.equal(counterRate(10_000, 300, 1), 300);
    assert.equal(counterRate(0, 100, 0), 0);
  });
  it('parses durations and refuses what is not one', () => {
    assert.equal(parseDuration('10m'), 600);
    assert.equal(parseDuration('90s'), 90);
    assert.equal(parseDuration('1h'), 3600);
    assert.equal(parseDuration('2d'), 172_800);
    assert.equal(parseDuration('45'), 45);
    assert.equal(parseDuration('ten'), null);
    assert.equal(parseDuration('0m'), null);
  });
  it('formats rates in binary units', () => {
    assert.equal(formatRate(0), '0 B/s');
    assert.equal(formatRate(1536), '1.5 KiB/s');
    assert.equal(formatRate(200 * 1024 * 1024), '200 MiB/s');
  });
  it('reads utime + stime from a stat line whose command name holds spaces and parentheses', () => {
    const line = '1234 (qemu (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 0 0';
    assert.equal(parseStatTicks(line), 300);
  });
});

describe('SeriesRing', () => {
  it('keeps the newest capacity points, oldest first, with missing values as null', () => {
    const r = new SeriesRing(3);
    for (let i = 1; i <= 5; i++) r.push(100 + i, new Map([['cpu', i], ...(i === 4 ? [] : [['rss', i * 10]] as Array<[string, number]>)]));
    const out = r.read();
    assert.deepEqual(out.t, [103_000, 104_000, 105_000]);
    assert.deepEqual(out.series.cpu, [3, 4, 5]);
    assert.deepEqual(out.series.rss, [30, null, 50]);
    assert.equal(r.size, 3);
  });
  it('reads only points at or after a time, and a series added later is missing before it', () => {
    const r = new SeriesRing(10);
    r.push(1, new Map([['cpu', 1]]));
    r.push(2, new Map([['cpu', 2], ['disk.d.wrBps', 7]]));
    r.push(3, new Map([['cpu', 3], ['disk.d.wrBps', 8]]));
    const out = r.read(2);
    assert.deepEqual(out.t, [2000, 3000]);
    assert.deepEqual(r.read().series['disk.d.wrBps'], [null, 7, 8]);
  });
  it('holds an hour of a VM with one disk and one NIC in under 200 KiB', () => {
    const r = new SeriesRing(3600);
    const keys = ['cpu', 'vcpu', 'rss', ...['rdBps', 'wrBps', 'rdIops', 'wrIops', 'latMs'].map((k) => `disk.d.${k}`), ...['rxBps', 'txBps', 'rxPps', 'txPps'].map((k) => `nic.n.${k}`)];
    r.push(1, new Map(keys.map((k) => [k, 1])));
    assert.ok(r.bytes < 200 * 1024, `${r.bytes} bytes`);
  });
  it('averages points per minute, skipping missing values', () => {
    const w = new WindowAverage(60);
    assert.equal(w.add(120, new Map([['cpu', 10]])), null);
    assert.equal(w.add(150, new Map([['cpu', 30], ['rss', Number.NaN]])), null);
    const done = w.add(180, new Map([['cpu', 99]]));
    assert.equal(done?.timeSec, 120);
    assert.equal(done?.values.get('cpu'), 20);
    assert.equal(done?.values.has('rss'), false, 'a series with only missing values stays missing');
  });
});

const VM_ID = '0b6c3c39-6d0e-4a8e-9d4c-3f1f4f7e2a10';

/** A fake monitor: blockstats counters we move by hand; the process is this test's own. */
function fakeTarget(def: Record<string, unknown>): { target: StatsTarget; disk: { rd: number; wr: number; ops: number; ns: number } } {
  const disk = { rd: 0, wr: 0, ops: 0, ns: 0 };
  const target: StatsTarget = {
    id: VM_ID, name: 'fake', pid: process.pid,
    definition: parseDefinition({ id: VM_ID, name: 'fake', memoryMiB: 64, ...def }),
    qmp: {
      execute: async <T>(cmd: string): Promise<T> => {
        if (cmd === 'query-cpus-fast') return [{ 'cpu-index': 0, 'thread-id': process.pid }] as T;
        if (cmd === 'query-blockstats') {
          return [
            { qdev: '/machine/peripheral/disk0/virtio-backend', stats: { rd_bytes: disk.rd, wr_bytes: disk.wr, rd_operations: 0, wr_operations: disk.ops, rd_total_time_ns: 0, wr_total_time_ns: disk.ns } },
            { qdev: 'not-a-disk', stats: { rd_bytes: 1, wr_bytes: 1, rd_operations: 1, wr_operations: 1, rd_total_time_ns: 0, wr_total_time_ns: 0 } },
          ] as T;
        }
        throw new Error(`unexpected ${cmd}`);
      },
    },
  };
  return { target, disk };
}

describe('VmSampler', () => {
  it('computes disk rates and latency from blockstats deltas, maps qdev paths to disk ids, and says why a user-mode NIC has no counters', async () => {
    const { target, disk } = fakeTarget({ disks: [{ id: 'disk0', file: '/tmp/x.qcow2', format: 'qcow2' }], nics: [{ id: 'net0', mac: '52:54:00:00:00:01', network: { type: 'user' } }] });
    const s = new VmSampler();
    const first = await s.sample(target, 1_000_000);
    assert.equal(first?.intervalMs, 0);
    assert.equal(first?.disks[0]?.wrBytesPerSec, 0);
    disk.wr = 4 * 1024 * 1024;
    disk.ops = 64;
    disk.ns = 64 * 2_000_000;
    const second = await s.sample(target, 1_002_000);
    assert.equal(second?.intervalMs, 2000);
    assert.deepEqual(second?.disks.map((d) => d.id), ['disk0']);
    assert.equal(second?.disks[0]?.wrBytesPerSec, 2 * 1024 * 1024);
    assert.equal(second?.disks[0]?.wrOpsPerSec, 32);
    assert.equal(second?.disks[0]?.latencyMs, 2);
    assert.equal(second?.disks[0]?.wrBytes, 4 * 1024 * 1024);
    assert.deepEqual(second?.nics, [{ id: 'net0', available: false, reason: 'user-mode networking (slirp) keeps no counters Hangar can read' }]);
    assert.ok(second!.rssBytes > 1024 * 1024, 'the resident set of this process');
    assert.ok(second!.cpuSeconds > 0);
  });
  it('measures CPU time as the kernel counts it for the process and its "vCPU" thread', async () => {
    const { target } = fakeTarget({});
    const s = new VmSampler();
    const t0 = Date.now();
    const u0 = process.cpuUsage();
    await s.sample(target, t0);
    while (Date.now() - t0 < 1000) { /* keep one core busy (as far as other load here allows) */ }
    const t1 = Date.now();
    const out = await s.sample(target, t1);
    const u = process.cpuUsage(u0);
    // Ground truth from the same kernel counters by another route; ticks are 10 ms, so a few points apart at most.
    const truth = ((u.user + u.system) / 1000 / (t1 - t0)) * 100;
    assert.ok(Math.abs(out!.cpuPercent - truth) < 8, `sampled ${out!.cpuPercent}%, process.cpuUsage says ${truth}%`);
    // The only "vCPU" is this main thread, which did nearly all of it.
    assert.ok(out!.vcpuPercent > truth * 0.7, `vCPU ${out!.vcpuPercent}% of ${truth}%`);
    assert.ok(out!.cpuPercent > 20, `a busy loop shows (${out!.cpuPercent}%)`);
  });
  it('names the reason for each back end without counters, and maps qdev ids', () => {
    assert.match(nicUnavailableReason({ type: 'passt', portForwards: [] })!, /passt/);
    assert.match(nicUnavailableReason({ type: 'isolated', network: 'lab' })!, /isolated/);
    assert.equal(nicUnavailableReason({ type: 'tap', ifname: 'tap0', vhost: false }), null);
    assert.equal(deviceIdOfQdev('/machine/peripheral/disk1/virtio-backend'), 'disk1');
    assert.equal(deviceIdOfQdev('disk2'), 'disk2');
  });
});

describe('StatsHub', () => {
  it('records history only from samples with rates, serves it by range, and stops sampling a VM that stopped', async () => {
    let now = 1_700_000_000_000;
    const { target } = fakeTarget({});
    let running = true;
    const seen: StatsSample[] = [];
    const hub = new StatsHub({ intervalMs: 1000, targets: () => (running ? [target] : []), onSample: (s) => seen.push(s), now: () => now });
    for (let i = 0; i < 5; i++) { await hub.tick(); now += 1000; }
    const h = hub.history(VM_ID, 'fake', 600, []);
    assert.equal(h.t.length, 4, 'the first sample has no rates and is not drawn');
    assert.equal(h.stepSeconds, 1);
    assert.equal(h.series.cpu?.length, 4);
    assert.equal(seen.length, 5);
    assert.ok(hub.latest(VM_ID));
    running = false;
    await hub.tick();
    assert.equal(hub.latest(VM_ID), undefined, 'a stopped VM has no live sample');
    assert.equal(hub.history(VM_ID, 'fake', 600, []).t.length, 4, 'its history stays');
    const bytes = hub.historyBytes(VM_ID);
    assert.ok(bytes.hour > 3600 * 4 && bytes.hour < 200 * 1024, `an hour of a VM without disks: ${bytes.hour} bytes`);
    assert.ok(bytes.day > 0 && bytes.day < bytes.hour);
  });
});

describe('prometheusText', () => {
  it('writes counters and gauges per VM with escaped labels', () => {
    const s: StatsSample = {
      vmId: 'id1', name: 'we"b', t: 0, intervalMs: 1000, cpuPercent: 50, vcpuPercent: 40, otherPercent: 10, vcpus: 1, cpuSeconds: 12.5, vcpuSeconds: 10,
      rssBytes: 1000, memoryBytes: 2000, disks: [{ id: 'disk0', rdBytesPerSec: 0, wrBytesPerSec: 0, rdOpsPerSec: 0, wrOpsPerSec: 0, latencyMs: 0, rdBytes: 5, wrBytes: 6, rdOps: 1, wrOps: 2 }],
      nics: [{ id: 'net0', available: false, reason: 'x' }],
    };
    const text = prometheusText([s], 1);
    assert.match(text, /^# TYPE hangar_vm_cpu_seconds_total counter$/m);
    assert.match(text, /^hangar_vm_cpu_seconds_total\{vm="we\\"b",id="id1"\} 12\.5$/m);
    assert.match(text, /^hangar_vm_disk_written_bytes_total\{vm="we\\"b",id="id1",disk="disk0"\} 6$/m);
    assert.match(text, /^hangar_vm_memory_resident_bytes\{vm="we\\"b",id="id1"\} 1000$/m);
    assert.match(text, /^hangar_vms_running\{\} 1$/m);
    assert.doesNotMatch(text, /network/);
  });
});

describe('disks without counters', () => {
  it('lists a vhost-user-blk disk (which query-blockstats never reports) as unavailable with the reason, next to the counted disk', async () => {
    const { target } = fakeTarget({ disks: [
      { id: 'disk0', file: '/tmp/x.qcow2', format: 'qcow2' },
      { id: 'disk1', file: '/tmp/y.raw', format: 'raw', bus: 'vhost-user-blk' },
    ] });
    const s = new VmSampler();
    await s.sample(target, 1_000_000);
    const second = await s.sample(target, 1_001_000);
    assert.deepEqual(second?.disks.map((d) => d.id), ['disk0']);
    assert.deepEqual(second?.disksUnavailable, [{ id: 'disk1', reason: 'vhost-user-blk disks are served by an external daemon (qemu-storage-daemon); QEMU keeps no I/O counters for them' }]);
    // A VM whose disks are all counted carries no disksUnavailable at all.
    const plain = await new VmSampler().sample(fakeTarget({ disks: [{ id: 'disk0', file: '/tmp/x.qcow2', format: 'qcow2' }] }).target, 1);
    assert.equal(plain?.disksUnavailable, undefined);
  });
  it('says QEMU did not report any other disk missing from query-blockstats', () => {
    const def = parseDefinition({ id: VM_ID, name: 'f', memoryMiB: 64, disks: [{ id: 'd9', file: '/tmp/z.qcow2', format: 'qcow2' }] });
    assert.match(diskUnavailableReason(def.disks[0]!), /query-blockstats does not list it/);
  });
});

describe('host figures', () => {
  const stat1 = 'cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 50 0 50 350 50 0 0 0 0 0\ncpu1 50 0 50 350 50 0 0 0 0 0\nintr 1\n';
  const stat2 = 'cpu  250 0 150 850 150 0 0 0 0 0\ncpu0 1 0 0 0 0 0 0 0 0 0\ncpu1 1 0 0 0 0 0 0 0 0 0\n';
  it('counts online CPUs and busy time without idle and iowait', () => {
    assert.deepEqual(parseProcStat(stat1), { cpus: 2, busy: 200, total: 1000 });
    // 200 busy of 400 more ticks: 50% of all CPUs.
    assert.equal(cpuBusyPercent(parseProcStat(stat1)!, parseProcStat(stat2)!), 50);
    assert.equal(cpuBusyPercent(parseProcStat(stat1)!, parseProcStat(stat1)!), null, 'no time passed: no figure');
    assert.equal(parseProcStat('intr 1\n'), null);
  });
  it('reads MemTotal and MemAvailable in bytes, and this host\'s own meminfo', () => {
    assert.deepEqual(parseMeminfo('MemTotal:       2048 kB\nMemFree:  10 kB\nMemAvailable:   1024 kB\n'), { totalBytes: 2048 * 1024, availableBytes: 1024 * 1024 });
    assert.equal(parseMeminfo('MemFree: 1 kB\n'), null);
    const m = readMeminfo();
    assert.ok(m && m.totalBytes > 0 && m.availableBytes <= m.totalBytes);
  });
});
