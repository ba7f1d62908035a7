// The renderer's connection switching (issue 18), in Node: a fake transport that routes each RPC
// channel to one of two in-memory cores by the connection it names (local = a Hangar core, lv = a
// libvirt-like core whose capabilities list what it cannot do).
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { createPinia, setActivePinia } from 'pinia';
import type { CoreTransport } from '../../core/common/transport.ts';
import { HangarError } from '../../core/common/errors.ts';
import { BANNER_LOST, initialConnection, useConnectionStore } from '../../renderer/src/stores/connection.ts';
import { useStatsStore } from '../../renderer/src/stores/stats.ts';
import { useVmsStore } from '../../renderer/src/stores/vms.ts';
import { FakeCore, ManualTimers, fakeVm, settle } from '../../renderer/src/testing/fake-core.ts';

let local: FakeCore;
let lv: FakeCore;
let timers: ManualTimers;
/** Every channel the UI opened, as "rpc NAME" / "console VM NAME". */
let opened: string[];

const LIBVIRT_REASON = 'Hangar\'s libvirt driver does not do this yet';

function transport(): CoreTransport {
  const pick = (c: string | undefined): FakeCore => (c === 'lv' ? lv : local);
  return {
    kind: 'browser',
    openRpc: (c) => { opened.push(`rpc ${c}`); return pick(c).openRpc(c); },
    openConsole: (vm, o) => { opened.push(`console ${vm} ${o.connection}`); return pick(o.connection).openConsole(vm, o); },
    openDisplay: (vm, c) => pick(c).openDisplay(vm, c),
  };
}

let pinia: ReturnType<typeof createPinia>;

beforeEach(() => {
  pinia = createPinia();
  setActivePinia(pinia);
  opened = [];
  timers = new ManualTimers();
  local = new FakeCore();
  local.add(fakeVm('alpha', 'stopped'));
  local.add(fakeVm('beta', 'running'));
  lv = new FakeCore();
  lv.add(fakeVm('web', 'running'));
  lv.caps = {
    driver: 'libvirt', connection: 'lv', label: 'libvirt system (this computer)',
    unsupported: { listSnapshots: LIBVIRT_REASON, create: LIBVIRT_REASON, clone: LIBVIRT_REASON, watchStats: LIBVIRT_REASON, statsLatest: LIBVIRT_REASON, hostSummary: LIBVIRT_REASON },
  };
});

describe('connection store: switching connections', () => {
  it('starts on the connection it is given, fetches capabilities before anyone re-fetches', async () => {
    const conn = useConnectionStore(pinia);
    const vms = useVmsStore(pinia);
    const seen: (string | null)[] = [];
    conn.onConnected(() => seen.push(conn.capabilities?.driver ?? null));
    conn.start({ transport: transport(), timers, connection: 'lv' });
    await settle();
    assert.equal(conn.status, 'connected');
    assert.deepEqual(opened, ['rpc lv']);
    assert.deepEqual(seen, ['libvirt'], 'capabilities are known when onConnected listeners run');
    assert.equal(conn.current, 'lv');
    assert.equal(conn.label, 'libvirt system (this computer)');
    assert.deepEqual(vms.list.map((v) => v.name), ['web']);
    assert.equal(lv.calls.filter((c) => c === 'capabilities').length, 1);
  });

  it('switchTo closes the old client, opens the new connection, empties and refills the list, remembers the choice', async () => {
    const conn = useConnectionStore(pinia);
    const vms = useVmsStore(pinia);
    const remembered: string[] = [];
    conn.start({ transport: transport(), timers, remember: (n) => remembered.push(n) });
    await settle();
    assert.deepEqual(vms.list.map((v) => v.name), ['alpha', 'beta']);
    await vms.loadDetails('beta');
    assert.equal(local.connections, 1);
    assert.equal(conn.unsupportedReason('listSnapshots'), null, 'a Hangar core can do everything');

    // The new connection answers slowly: meanwhile nothing of the old one is shown.
    lv.hold('list');
    conn.switchTo('lv');
    assert.equal(conn.current, 'lv');
    assert.equal(conn.status, 'connecting');
    assert.equal(conn.capabilities, null);
    assert.equal(vms.list.length, 0, 'the list empties at once');
    assert.equal(vms.loaded, false);
    assert.equal(vms.details.size, 0);
    await settle();
    assert.equal(local.connections, 0, 'the old client is closed');
    assert.deepEqual(opened, ['rpc local', 'rpc lv']);
    assert.equal(conn.status, 'connected');
    assert.equal(vms.list.length, 0);
    lv.release('list');
    await settle();
    assert.deepEqual(vms.list.map((v) => `${v.name}:${v.state}`), ['web:running']);
    assert.deepEqual(remembered, ['lv']);
    assert.equal(conn.connectCount, 2);

    // What the libvirt connection cannot do, in its own words; the lifecycle stays.
    assert.equal(conn.unsupportedReason('listSnapshots'), LIBVIRT_REASON);
    assert.equal(conn.unsupportedReason('start'), null);
    // The display channel serves a libvirt domain's VNC screen (virsh domdisplay) too.
    assert.equal(conn.unsupportedReason('openDisplay'), null);
    assert.equal(vms.canAct('web', 'clone'), false, 'clone is not offered');
    assert.equal(vms.canAct('web', 'shutdown'), true);

    // And back: the local list again, nothing of lv left.
    conn.switchTo('local');
    await settle();
    assert.equal(lv.connections, 0);
    assert.deepEqual(vms.list.map((v) => v.name), ['alpha', 'beta']);
    assert.equal(conn.unsupportedReason('listSnapshots'), null);
    assert.deepEqual(opened, ['rpc local', 'rpc lv', 'rpc local']);
    // The same connection again is not a switch.
    conn.switchTo('local');
    await settle();
    assert.equal(opened.length, 3);
  });

  it('losing a libvirt connection names it in the banner, not the Hangar core', async () => {
    const conn = useConnectionStore(pinia);
    conn.start({ transport: transport(), timers, connection: 'lv' });
    await settle();
    lv.down = true;
    lv.dropAll();
    await settle();
    assert.equal(conn.status, 'reconnecting');
    assert.equal(conn.bannerText, 'Connection to libvirt system (this computer) lost — reconnecting…');
    lv.down = false;
    await timers.advance(timers.delays()[0]!);
    assert.equal(conn.status, 'connected');
    assert.equal(conn.bannerText, 'Reconnected to libvirt system (this computer)');
    // Local keeps the words people know.
    conn.switchTo('local');
    await settle();
    local.dropAll();
    await settle();
    assert.equal(conn.bannerText, BANNER_LOST);
  });

  it('an answer of the old connection arriving after the switch is dropped', async () => {
    const conn = useConnectionStore(pinia);
    const vms = useVmsStore(pinia);
    conn.start({ transport: transport(), timers });
    await settle();
    local.hold('list');
    void vms.refreshList();
    await settle();
    conn.switchTo('lv');
    local.release('list');
    await settle();
    assert.deepEqual(vms.list.map((v) => v.name), ['web']);
    assert.equal(vms.listError, null, 'the old call failing (closed) is not this connection\'s error');
  });

  it('a switch while the first channel is still opening goes to the new connection', async () => {
    const conn = useConnectionStore(pinia);
    const vms = useVmsStore(pinia);
    const slow = transport();
    let releaseOpen!: () => void;
    const gate = new Promise<void>((r) => { releaseOpen = r; });
    const openRpc = slow.openRpc.bind(slow);
    slow.openRpc = async (c) => { if (c === 'local') await gate; return openRpc(c); };
    conn.start({ transport: slow, timers });
    conn.switchTo('lv');
    releaseOpen();
    await settle();
    assert.equal(conn.current, 'lv');
    assert.equal(local.connections, 0, 'the channel that opened late was closed');
    assert.equal(lv.connections, 1);
    assert.deepEqual(vms.list.map((v) => v.name), ['web']);
  });

  it('stats: the watch is sent again on a Hangar connection and not at all where the driver has no statistics', async () => {
    const conn = useConnectionStore(pinia);
    const stats = useStatsStore(pinia);
    conn.start({ transport: transport(), timers });
    await settle();
    const claim = stats.claim('all');
    await settle();
    assert.equal(local.calls.filter((c) => c.startsWith('watchStats')).length, 1);
    conn.switchTo('lv');
    await settle();
    assert.equal(lv.calls.filter((c) => c.startsWith('watchStats') || c.startsWith('statsLatest')).length, 0);
    assert.equal(stats.latest.size, 0);
    conn.switchTo('local');
    await settle();
    assert.equal(local.calls.filter((c) => c.startsWith('watchStats')).length, 2, 'the watch is re-sent on the new channel');
    claim.release();
  });

  it('adds and removes saved connections; a refused URI rejects with the core\'s words; removing the current one goes back to local', async () => {
    const conn = useConnectionStore(pinia);
    conn.start({ transport: transport(), timers });
    await settle();
    await conn.refreshConnections();
    assert.deepEqual(conn.connections.map((c) => c.name), ['local']);
    await assert.rejects(conn.addConnection('bad', 'qemu://host/system'), (e: unknown) => e instanceof HangarError && /needs a transport/.test(e.message));
    await conn.addConnection('lv', 'qemu:///system');
    assert.deepEqual(conn.connections.map((c) => `${c.name} ${c.label}`), ['local Hangar on this computer', 'lv libvirt system (this computer)']);
    conn.switchTo('lv');
    await settle();
    // The list is this computer's, whichever connection answers (the UI host does that; here lv's fake has its own).
    lv.savedConnections = [...local.savedConnections];
    await conn.removeConnection('lv');
    assert.equal(conn.current, 'local');
    await settle();
    assert.equal(conn.status, 'connected');
    assert.deepEqual(opened.at(-1), 'rpc local');
  });

  it('a core without capabilities() can do everything; a connection that cannot be opened says why', async () => {
    const conn = useConnectionStore(pinia);
    local.failNext.set('capabilities', new HangarError('daemon-unavailable', 'libvirtd does not answer on qemu:///system', 'start libvirtd'));
    conn.start({ transport: transport(), timers });
    await settle();
    assert.equal(conn.status, 'connected');
    assert.equal(conn.capabilities, null);
    assert.match(conn.connectionProblem ?? '', /libvirtd does not answer/);
    assert.equal(conn.unsupportedReason('listSnapshots'), null);
  });

  it('the first connection: ?connection= in the page URL (before the hash or in its query), else the remembered one, else local', () => {
    assert.equal(initialConnection({ search: '?token=t&connection=lab', hash: '#/' }, 'lv'), 'lab');
    assert.equal(initialConnection({ search: '?token=t', hash: '#/vm/x?connection=qemu%3A%2F%2F%2Fsystem' }, null), 'qemu:///system');
    assert.equal(initialConnection({ search: '?token=t', hash: '#/' }, 'lv'), 'lv');
    assert.equal(initialConnection({ search: '', hash: '' }, null), 'local');
    assert.equal(initialConnection({ search: `?connection=${'x'.repeat(3000)}`, hash: '' }, null), 'local');
  });
});

describe('console sessions open on the current connection', () => {
  it('the console channel names the connection', async () => {
    const { ConsoleChannel } = await import('../../renderer/src/console/console-channel.ts');
    const t = transport();
    const ch = new ConsoleChannel({ vm: 'web', transport: t, connection: 'lv', sink: { write: (_d, done) => done(), reset: () => {}, notice: () => {} }, timers });
    ch.setVmLive(true);
    await settle();
    assert.ok(opened.includes('console web lv'), opened.join(', '));
    ch.dispose();
  });
});
