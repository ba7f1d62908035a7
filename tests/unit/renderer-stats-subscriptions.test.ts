// Live statistics in the renderer: the views' claims become one watchStats set (union, reference
// counted), asked again after a reconnect; the pushes fill the newest samples and the CPU series.
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { createPinia, setActivePinia } from 'pinia';
import type { HostSummary, StatsSample } from '../../core/common/stats.ts';
import { CPU_SERIES_POINTS, StatsClaims, appendCpu, sameWatchSet } from '../../renderer/src/performance/stats-subscriptions.ts';
import { useConnectionStore } from '../../renderer/src/stores/connection.ts';
import { useStatsStore } from '../../renderer/src/stores/stats.ts';
import { FakeCore, ManualTimers, fakeVm, settle } from '../../renderer/src/testing/fake-core.ts';

function sample(name: string, t: number, cpuPercent: number): StatsSample {
  return {
    vmId: `id-${name}`, name, t, intervalMs: 1000, cpuPercent, vcpuPercent: cpuPercent, otherPercent: 0, vcpus: 1,
    cpuSeconds: 0, vcpuSeconds: 0, rssBytes: 1, memoryBytes: 1, disks: [], nics: [],
  };
}

describe('stats claims (pure)', () => {
  it('unions the claims: none = [], ids once each, null as soon as one wants every VM', () => {
    const c = new StatsClaims();
    assert.deepEqual(c.union(), []);
    const a = c.add(['b', 'a']);
    const b = c.add(['a']);
    assert.deepEqual(c.union(), ['a', 'b']);
    const all = c.add('all');
    assert.equal(c.union(), null);
    c.remove(all);
    assert.deepEqual(c.union(), ['a', 'b']);
    c.remove(a);
    assert.deepEqual(c.union(), ['a'], 'the other claim on "a" keeps it');
    c.update(b, ['c']);
    assert.deepEqual(c.union(), ['c']);
    c.remove(b);
    c.remove(b);
    assert.deepEqual(c.union(), []);
    assert.equal(c.size, 0);
  });

  it('compares watch sets', () => {
    assert.ok(sameWatchSet(null, null));
    assert.ok(sameWatchSet([], []));
    assert.ok(!sameWatchSet(null, []));
    assert.ok(!sameWatchSet(['a'], ['b']));
  });

  it('keeps the last 60 CPU figures and ignores samples that are not newer', () => {
    let series: number[] = [];
    let last: number | undefined;
    for (let i = 1; i <= 70; i++) {
      series = appendCpu(series, last, sample('x', i, i))!;
      last = i;
    }
    assert.equal(series.length, CPU_SERIES_POINTS);
    assert.equal(series[0], 11);
    assert.equal(series.at(-1), 70);
    assert.equal(appendCpu(series, 70, sample('x', 70, 1)), null);
  });
});

describe('stats store against the fake core', () => {
  let core: FakeCore;
  let timers: ManualTimers;
  beforeEach(() => {
    setActivePinia(createPinia());
    core = new FakeCore();
    timers = new ManualTimers();
    core.add(fakeVm('alpha', 'running'));
    core.add(fakeVm('beta', 'running'));
  });

  const watchCalls = (): string[] => core.calls.filter((c) => c.startsWith('watchStats'));

  it('asks for the union of the views\' claims, one call per change, [] when nobody watches', async () => {
    const conn = useConnectionStore();
    const stats = useStatsStore();
    conn.start({ transport: core, timers });
    await settle();
    assert.deepEqual(watchCalls(), [], 'nothing is watched before a view claims');

    const perf = stats.claim(['id-alpha']);
    await settle();
    const list = stats.claim('all');
    await settle();
    assert.equal(stats.watching(), null);
    list.release();
    await settle();
    assert.deepEqual(stats.watching(), ['id-alpha'], 'the list leaving does not take the Performance tab\'s VM away');
    perf.release();
    await settle();
    assert.deepEqual(watchCalls(), ['watchStats ["id-alpha"]', 'watchStats null', 'watchStats ["id-alpha"]', 'watchStats []']);
  });

  it('seeds from statsLatest once, then grows the CPU series from pushes; a stopped VM\'s figures go', async () => {
    core.samples = [sample('alpha', 1000, 10)];
    const conn = useConnectionStore();
    const stats = useStatsStore();
    conn.start({ transport: core, timers });
    await settle();
    stats.claim('all');
    await settle();
    assert.deepEqual(stats.cpu.get('id-alpha'), [10]);
    for (let i = 1; i <= 3; i++) core.emitStatsSample(sample('alpha', 1000 + i * 1000, 10 + i));
    core.emitStatsSample(sample('alpha', 2000, 99)); // late or repeated: ignored
    await settle();
    assert.deepEqual(stats.cpu.get('id-alpha'), [10, 11, 12, 13]);
    assert.equal(stats.latest.get('id-alpha')?.cpuPercent, 13);
    assert.equal(core.calls.filter((c) => c === 'statsLatest').length, 1, 'statsLatest is asked once, not polled');
    stats.claim(['id-beta']);
    await settle();
    assert.equal(core.calls.filter((c) => c === 'statsLatest').length, 1, 'another claim does not ask again');

    core.change('alpha', 'stopped');
    await settle();
    assert.equal(stats.cpu.has('id-alpha'), false);
  });

  it('asks again for the union (and re-seeds) after a reconnect', async () => {
    const conn = useConnectionStore();
    const stats = useStatsStore();
    conn.start({ transport: core, timers });
    await settle();
    stats.claim(['id-beta']);
    await settle();
    core.dropAll();
    await settle();
    assert.equal(conn.status, 'reconnecting');
    const during = stats.claim(['id-alpha']); // a claim while down is sent after the reconnect
    await settle();
    await timers.advance(timers.delays()[0]!);
    await settle();
    assert.equal(conn.status, 'connected');
    assert.deepEqual(watchCalls(), ['watchStats ["id-beta"]', 'watchStats ["id-alpha","id-beta"]']);
    assert.equal(core.calls.filter((c) => c === 'statsLatest').length, 2, 'seeded once per connection');
    during.release();
    await settle();
    assert.deepEqual(stats.watching(), ['id-beta']);
  });

  it('a refused watchStats (a claimed VM is gone) is not retried in a loop; the next change asks again', async () => {
    const conn = useConnectionStore();
    const stats = useStatsStore();
    conn.start({ transport: core, timers });
    await settle();
    const warn = console.warn;
    console.warn = () => {};
    try {
      const gone = stats.claim(['id-nope']);
      await settle();
      assert.equal(watchCalls().length, 1);
      assert.deepEqual(stats.watching(), []);
      gone.update(['id-alpha']);
      await settle();
      assert.deepEqual(stats.watching(), ['id-alpha']);
    } finally {
      console.warn = warn;
    }
  });
});

describe('stats store: leaving and coming back', () => {
  it('drops the figures of VMs nobody watches any more, and seeds again when the list comes back', async () => {
    setActivePinia(createPinia());
    const core = new FakeCore();
    core.add(fakeVm('alpha', 'running'));
    core.add(fakeVm('beta', 'running'));
    core.samples = [sample('alpha', 1000, 10), sample('beta', 1000, 20)];
    const conn = useConnectionStore();
    const stats = useStatsStore();
    conn.start({ transport: core, timers: new ManualTimers() });
    await settle();
    const list = stats.claim('all');
    await settle();
    assert.deepEqual([...stats.cpu.keys()].sort(), ['id-alpha', 'id-beta']);
    const perf = stats.claim(['alpha']); // by name, as the Performance tab claims
    list.release();
    await settle();
    assert.deepEqual([...stats.cpu.keys()], ['id-alpha'], 'beta is no longer watched: its series goes');
    core.emitStatsSample(sample('beta', 2000, 21)); // late push for beta: ignored
    core.emitStatsSample(sample('alpha', 2000, 11));
    await settle();
    assert.deepEqual([...stats.cpu.keys()], ['id-alpha']);
    assert.deepEqual(stats.cpu.get('id-alpha'), [10, 11]);
    const latestCalls = core.calls.filter((c) => c === 'statsLatest').length;
    stats.claim('all');
    await settle();
    assert.equal(core.calls.filter((c) => c === 'statsLatest').length, latestCalls + 1, 'the list back: seeded again');
    assert.deepEqual(stats.cpu.get('id-beta'), [20], 'a fresh series for beta');
    perf.release();
  });
});

describe('host summary', () => {
  it('is fetched once per connection for the views that show it, then follows the hostStats pushes', async () => {
    setActivePinia(createPinia());
    const core = new FakeCore();
    const timers = new ManualTimers();
    const conn = useConnectionStore();
    const stats = useStatsStore();
    conn.start({ transport: core, timers });
    await settle();
    const host = (): HostSummary | null => stats.host; // read anew each time (no narrowing across awaits)
    assert.equal(host(), null);
    const stop = stats.claimHost();
    await settle();
    assert.equal(host()?.memTotalBytes, 8 * 2 ** 30);
    core.emitHostStats({ ...core.hostSummary, t: 2000, runningVms: 3 });
    await settle();
    assert.equal(host()?.runningVms, 3);
    stats.claimHost()();
    await settle();
    assert.equal(core.calls.filter((c) => c === 'hostSummary').length, 1);
    core.dropAll();
    await settle();
    await timers.advance(timers.delays()[0]!);
    await settle();
    assert.equal(core.calls.filter((c) => c === 'hostSummary').length, 2, 'fetched again after the reconnect');
    stop();
  });
});
