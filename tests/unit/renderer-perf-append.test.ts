// The Performance tab's live ranges: pushed samples appended to the fetched history, in the
// series the core's history uses (the one sampleSeries in core/common/stats.ts), trimmed to the range.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StatsHistory, StatsSample } from '../../core/common/stats.ts';
import { sampleSeries } from '../../core/common/stats.ts';
import { appendSample } from '../../renderer/src/performance/perf-charts.ts';

function sample(t: number, extra: Partial<StatsSample> = {}): StatsSample {
  return {
    vmId: 'id-a', name: 'a', t, intervalMs: 1000, cpuPercent: t / 1000, vcpuPercent: 1, otherPercent: 0, vcpus: 1,
    cpuSeconds: 0, vcpuSeconds: 0, rssBytes: 100, memoryBytes: 200,
    disks: [{ id: 'disk0', rdBytesPerSec: 1, wrBytesPerSec: 2, rdOpsPerSec: 3, wrOpsPerSec: 4, latencyMs: 5, rdBytes: 0, wrBytes: 0, rdOps: 0, wrOps: 0 }],
    nics: [{ id: 'net0', available: false, reason: 'slirp' }],
    ...extra,
  };
}

describe('appending pushed samples to a history', () => {
  it('maps a sample to the series keys StatsHistory documents (NICs without counters left out)', () => {
    const s = sample(1000, {
      balloonActualBytes: 7,
      nics: [{ id: 'net0', available: true, device: 'tap0', rxBytesPerSec: 1, txBytesPerSec: 2, rxPacketsPerSec: 3, txPacketsPerSec: 4, rxBytes: 0, txBytes: 0, rxPackets: 0, txPackets: 0 }],
    });
    assert.deepEqual(Object.fromEntries(sampleSeries(s)), {
      cpu: 1, vcpu: 1, rss: 100, balloon: 7,
      'disk.disk0.rdBps': 1, 'disk.disk0.wrBps': 2, 'disk.disk0.rdIops': 3, 'disk.disk0.wrIops': 4, 'disk.disk0.latMs': 5,
      'nic.net0.rxBps': 1, 'nic.net0.txBps': 2, 'nic.net0.rxPps': 3, 'nic.net0.txPps': 4,
    });
    assert.equal(sampleSeries(sample(1000)).has('nic.net0.rxBps'), false, 'a NIC without counters has no series');
  });

  it('appends newer samples of its VM, fills new and missing series with nulls, trims to the range', () => {
    const h: StatsHistory = { vmId: 'id-a', name: 'a', stepSeconds: 1, t: [1000], series: { cpu: [1], vcpu: [1], rss: [100], old: [9] }, unavailable: [] };
    assert.equal(appendSample(h, sample(2000), 300), true);
    assert.deepEqual(h.t, [1000, 2000]);
    assert.deepEqual(h.series.cpu, [1, 2]);
    assert.deepEqual(h.series['disk.disk0.wrBps'], [null, 2], 'a new disk series starts with nulls');
    assert.deepEqual(h.series.old, [9, null], 'a series the sample lacks gets a gap');
    assert.equal(h.latest?.t, 2000);
    assert.equal(appendSample(h, sample(2000), 300), false, 'not newer');
    assert.equal(appendSample(h, { ...sample(3000), vmId: 'id-b' }, 300), false, 'another VM');
    assert.equal(appendSample(h, sample(4000), 2), true);
    assert.deepEqual(h.t, [2000, 4000], 'points older than the range are dropped');
    assert.deepEqual(h.series.cpu, [2, 4]);
  });
});
