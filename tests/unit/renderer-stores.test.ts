// The renderer's Pinia stores, driven in Node with an in-memory core that speaks real birpc.
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { createPinia, setActivePinia } from 'pinia';
import { HangarError } from '../../core/common/errors.ts';
import { canDo } from '../../core/common/state.ts';
import { BANNER_LOST, BANNER_RECONNECTED, useConnectionStore } from '../../renderer/src/stores/connection.ts';
import { coalesce, useVmsStore } from '../../renderer/src/stores/vms.ts';
import { FakeCore, ManualTimers, fakeVm, settle } from '../../renderer/src/testing/fake-core.ts';

let core: FakeCore;
let timers: ManualTimers;

async function connected(): Promise<{ conn: ReturnType<typeof useConnectionStore>; vms: ReturnType<typeof useVmsStore> }> {
  const conn = useConnectionStore();
  const vms = useVmsStore();
  conn.start({ transport: core, timers });
  await settle();
  assert.equal(conn.status, 'connected');
  return { conn, vms };
}

beforeEach(() => {
  setActivePinia(createPinia());
  core = new FakeCore();
  timers = new ManualTimers();
  core.add(fakeVm('alpha', 'stopped'));
  core.add(fakeVm('beta', 'running', { vcpus: 2, memoryMiB: 2048 }));
});

describe('connection store', () => {
  it('connects and the VM list is fetched', async () => {
    const { vms } = await connected();
    assert.equal(vms.loaded, true);
    assert.deepEqual(vms.list.map((v) => `${v.name}:${v.state}`), ['alpha:stopped', 'beta:running']);
    assert.equal(vms.count, 2);
  });

  it('reconnects with backoff (250 ms doubling to 2 s), shows the banners, and re-fetches', async () => {
    const { conn, vms } = await connected();
    await vms.loadDetails('beta');
    const listFetches = vms.fetches.list;
    const detailFetches = vms.fetches.details;
    core.down = true;
    core.dropAll();
    await settle();
    assert.equal(conn.status, 'reconnecting');
    assert.equal(conn.bannerText, BANNER_LOST);
    // Calls while down fail readably.
    await assert.rejects(conn.api.list(), (e: unknown) => e instanceof HangarError && e.code === 'daemon-unavailable');

    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      delays.push(timers.delays()[0]!);
      await timers.advance(timers.delays()[0]!);
    }
    assert.deepEqual(delays, [250, 500, 1000, 2000, 2000]);
    assert.equal(conn.status, 'reconnecting');

    // Something changed while we were away.
    core.vms.set('beta', { ...core.vms.get('beta')!, state: 'paused' });
    core.down = false;
    await timers.advance(timers.delays()[0]!);
    assert.equal(conn.status, 'connected');
    assert.equal(conn.bannerText, BANNER_RECONNECTED);
    assert.ok(vms.fetches.list > listFetches, 'the list is re-fetched after reconnecting');
    assert.ok(vms.fetches.details > detailFetches, 'shown details are re-fetched after reconnecting');
    assert.equal(vms.stateOf('beta'), 'paused');
    assert.equal(vms.details.get('beta')?.state, 'paused');

    // The notice goes away after a few seconds; the backoff starts again from 250 ms.
    await timers.advance(4000);
    assert.equal(conn.bannerText, null);
    core.dropAll();
    await settle();
    assert.equal(timers.delays()[0], 250);
    await timers.advance(250);
    assert.equal(conn.status, 'connected');
  });

  it('retries a first connection that fails, without claiming it was lost', async () => {
    core.down = true;
    const conn = useConnectionStore();
    conn.start({ transport: core, timers });
    await settle();
    assert.equal(conn.status, 'connecting');
    assert.notEqual(conn.bannerText, BANNER_LOST);
    assert.match(conn.lastProblem ?? '', /could not reach/);
    core.down = false;
    await timers.advance(250);
    assert.equal(conn.status, 'connected');
    assert.equal(conn.bannerText, null, 'a first connection is not a "reconnect"');
  });
});

describe('vms store', () => {
  it('re-fetches on vmChanged and vmListChanged events', async () => {
    const { vms } = await connected();
    await vms.loadDetails('alpha');
    core.change('alpha', 'running');
    await settle();
    assert.equal(vms.stateOf('alpha'), 'running');
    assert.equal(vms.details.get('alpha')?.state, 'running');

    core.add(fakeVm('gamma'));
    core.emitListChanged();
    await settle();
    assert.deepEqual(vms.list.map((v) => v.name), ['alpha', 'beta', 'gamma']);
  });

  it('coalesces bursts: one list fetch in flight, one queued', async () => {
    const { vms } = await connected();
    const before = vms.fetches.list;
    core.hold('list');
    for (let i = 0; i < 100; i++) core.emitListChanged();
    await settle();
    assert.equal(vms.fetches.list - before, 1, 'one fetch in flight');
    core.release('list');
    await settle();
    assert.equal(vms.fetches.list - before, 2, 'the burst cost one more fetch');
  });

  it('coalesce() shares the queued run and runs it after the current one', async () => {
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    let n = 0;
    const run = coalesce(async (k) => {
      const i = ++n;
      order.push(`start ${k}${i}`);
      if (i === 1) await gate;
      order.push(`end ${k}${i}`);
    });
    const a = run('x');
    const b = run('x');
    const c = run('x');
    assert.equal(b, c, 'later calls share the queued run');
    const y = run('y');
    release();
    await Promise.all([a, b, c, y]);
    assert.deepEqual(order, ['start x1', 'start y2', 'end y2', 'end x1', 'start x3', 'end x3']);
  });

  it('actions call the API and keep the VM busy meanwhile', async () => {
    const { vms } = await connected();
    core.hold('start');
    const p = vms.act('alpha', 'start');
    await settle();
    assert.equal(vms.busy.get('alpha'), 'start');
    assert.equal(vms.canAct('alpha', 'start'), false, 'no double start while busy');
    core.release('start');
    assert.equal(await p, true);
    await settle();
    assert.ok(core.calls.includes('start alpha'));
    assert.equal(vms.busy.has('alpha'), false);
    assert.equal(vms.stateOf('alpha'), 'running');
    assert.equal(vms.lastError, null);

    assert.equal(await vms.act('beta', 'shutdown'), true);
    assert.ok(core.calls.includes('shutdown beta'));
    await settle();
    assert.equal(vms.stateOf('beta'), 'shutting-down');
  });

  it('surfaces a HangarError message and hint', async () => {
    const { vms } = await connected();
    // The core refuses: start a running VM.
    assert.equal(await vms.act('beta', 'start'), false);
    assert.equal(vms.lastError?.code, 'invalid-state');
    assert.equal(vms.lastError?.message, 'cannot start VM "beta": it is running');
    assert.equal(vms.lastError?.hint, 'shut it down or force it off first');

    core.failNext.set('destroy', new HangarError('qmp-error', 'QEMU refused to stop', 'look at the VM log'));
    assert.equal(await vms.act('beta', 'destroy'), false);
    assert.deepEqual({ ...vms.lastError }, { code: 'qmp-error', message: 'QEMU refused to stop', hint: 'look at the VM log' });
    vms.dismissError();
    assert.equal(vms.lastError, null);
  });

  it('enables buttons per canDo and the VM state', async () => {
    const { vms } = await connected();
    const actions = ['start', 'pause', 'resume', 'shutdown', 'reboot', 'destroy', 'delete'] as const;
    const enabled = (name: string): string[] => actions.filter((a) => vms.canAct(name, a));
    assert.deepEqual(enabled('alpha'), actions.filter((a) => canDo(a, 'stopped')));
    assert.deepEqual(enabled('alpha'), ['start', 'delete']);
    assert.deepEqual(enabled('beta'), ['pause', 'shutdown', 'reboot', 'destroy']);
    core.change('beta', 'paused');
    await settle();
    assert.deepEqual(enabled('beta'), ['resume', 'destroy']);
    assert.deepEqual(enabled('nope'), [], 'unknown VMs have nothing enabled');
  });

  it('disables every action while disconnected', async () => {
    const { vms } = await connected();
    core.down = true;
    core.dropAll();
    await settle();
    assert.equal(vms.canAct('alpha', 'start'), false);
  });

  it('delete removes the VM, and passes deleteDisks', async () => {
    const { vms } = await connected();
    await vms.loadDetails('alpha');
    vms.select('alpha');
    assert.equal(await vms.remove('alpha', true), true);
    await settle();
    assert.equal(vms.byName.has('alpha'), false);
    assert.equal(vms.details.has('alpha'), false);
    assert.equal(vms.selected, null);
    assert.ok(core.calls.includes('delete alpha {"deleteDisks":true}'), core.calls.join('\n'));
  });

  it('reports a VM deleted behind our back as not found', async () => {
    const { vms } = await connected();
    await vms.loadDetails('alpha');
    core.vms.delete('alpha');
    core.emitListChanged();
    await settle();
    assert.equal(vms.details.has('alpha'), false);
    assert.equal(vms.detailsErrors.get('alpha')?.code, 'not-found');
  });

  it('keeps the command line fresh for a VM on display', async () => {
    const { vms } = await connected();
    await vms.loadDetails('alpha');
    await vms.loadCommandLine('alpha');
    assert.deepEqual(vms.commandLines.get('alpha'), ['qemu-system-x86_64', '-name', 'alpha', '-nodefaults']);
    const before = vms.fetches.commandLine;
    core.change('alpha', 'running');
    await settle();
    assert.equal(vms.fetches.commandLine, before + 1);
  });

  it('stays fast with 1000 VMs and an event storm', async () => {
    for (let i = 0; i < 1000; i++) core.add(fakeVm(`vm-${String(i).padStart(4, '0')}`, i % 2 ? 'running' : 'stopped'));
    const { vms } = await connected();
    assert.equal(vms.count, 1002);
    const t0 = performance.now();
    const before = vms.fetches.list;
    for (let i = 0; i < 1000; i++) core.change(`vm-${String(i).padStart(4, '0')}`, 'paused');
    await settle(50);
    const ms = performance.now() - t0;
    assert.ok(vms.fetches.list - before <= 3, `fetches coalesced (got ${vms.fetches.list - before})`);
    assert.equal(vms.stateOf('vm-0999'), 'paused');
    assert.ok(ms < 2000, `took ${ms} ms`);
  });
});
