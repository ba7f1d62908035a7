// The Devices tab's logic in Node: which choices the host can run (from doctor checks and
// hostInfo), forms -> the device or patch the core takes (field errors, nothing sent on bad
// input), status lines, the balloon target (bounds, when it is offered, following the guest),
// the file chooser's start folder, and the store's device actions (with "restart to apply")
// against the in-memory core.
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { createPinia, setActivePinia } from 'pinia';
import type { DoctorCheckInfo } from '../../core/common/api.ts';
import { HangarError } from '../../core/common/errors.ts';
import { parseDefinition } from '../../core/common/definition.ts';
import { growStatusText, parseGrowSize } from '../../renderer/src/devices/disk-grow.ts';
import { singletonKinds, tableRows } from '../../renderer/src/devices/device-table.ts';
import { balloonAvailability, balloonStatusText, currentBalloon, parseBalloonTarget } from '../../renderer/src/devices/balloon.ts';
import { addBlocked, nicBackendOptions, nicDataPathOptions, tableOptions } from '../../renderer/src/devices/choice-options.ts';
import { blankForm, buildDeviceRequest, changeStatus, devicePatch, formFromDevice } from '../../renderer/src/devices/device-forms.ts';
import { canAdd, devicesOf } from '../../renderer/src/devices/device-kinds.ts';
import { useConnectionStore } from '../../renderer/src/stores/connection.ts';
import { useHostStore } from '../../renderer/src/stores/host.ts';
import { useVmsStore } from '../../renderer/src/stores/vms.ts';
import { FakeCore, ManualTimers, fakeDefinition, fakeVm, settle } from '../../renderer/src/testing/fake-core.ts';
import { chooserStart } from '../../renderer/src/util/paths.ts';

const checks = (): DoctorCheckInfo[] => new FakeCore().checks;

describe('device choices: mode, advice and availability', () => {
  it('every disk bus carries its mode label and advice; vhost-user-blk is enabled when qemu-storage-daemon is there', () => {
    const opts = tableOptions('disk', checks());
    assert.deepEqual(opts.map((o) => [o.value, o.mode]), [['ide', 'Emulated'], ['sata', 'Emulated'], ['virtio-blk', 'Paravirtual'], ['scsi', 'Paravirtual'], ['vhost-user-blk', 'vhost-user (user-space back end)']]);
    assert.ok(opts.every((o) => o.detail && !o.disabled));
    const without = checks().map((c) => (c.id === 'qemu-storage-daemon' ? { ...c, status: 'missing' as const, detail: 'qemu-storage-daemon not found', fix: 'apt-get install qemu-system-x86' } : c));
    const vu = tableOptions('disk', without).find((o) => o.value === 'vhost-user-blk')!;
    assert.deepEqual([vu.disabled, vu.reason, vu.fix], [true, 'qemu-storage-daemon not found', 'apt-get install qemu-system-x86']);
  });

  it('vhost-net without /dev/vhost-net is disabled with the doctor\'s reason and fix; a non-virtio model says why', () => {
    const [qemu, vhost] = nicDataPathOptions('virtio-net', checks());
    assert.equal(qemu!.disabled, undefined);
    assert.equal(vhost!.mode, 'vhost (host kernel)');
    assert.equal(vhost!.disabled, true);
    assert.match(vhost!.reason!, /\/dev\/vhost-net missing/);
    assert.match(vhost!.fix!, /vhost_net/);
    const e1000 = nicDataPathOptions('e1000', checks())[1]!;
    assert.match(e1000.reason!, /virtio-net only/);
  });

  it('before the doctor answers, choices that need the host wait; the rest are offered', () => {
    const disk = tableOptions('disk', null);
    assert.equal(disk.find((o) => o.value === 'virtio-blk')!.disabled, undefined);
    assert.match(disk.find((o) => o.value === 'vhost-user-blk')!.reason!, /checking/);
  });

  it('NIC back ends: mode follows the model for QEMU-served ones; bridge from hostInfo; tap from the tun check; vhost-user needs virtio-net', () => {
    const host = new FakeCore().host;
    const opts = nicBackendOptions('e1000', host, checks());
    const by = Object.fromEntries(opts.map((o) => [o.value, o]));
    assert.equal(by.user!.mode, 'Emulated');
    assert.equal(by.passt!.mode, 'Paravirtual');
    assert.deepEqual([by.bridge!.disabled, by.bridge!.reason, by.bridge!.fix], [true, 'no bridge', 'make one']);
    assert.equal(by.tap!.disabled, undefined);
    assert.equal(by['vhost-user']!.disabled, true);
    assert.equal(nicBackendOptions('virtio-net', host, checks()).find((o) => o.value === 'user')!.mode, 'Paravirtual');
    const noTun = checks().map((c) => (c.id === 'tun' ? { ...c, status: 'missing' as const, detail: '/dev/net/tun missing', fix: 'modprobe tun' } : c));
    assert.equal(nicBackendOptions('virtio-net', host, noTun).find((o) => o.value === 'tap')!.reason, '/dev/net/tun missing');
  });

  it('virtiofs is disabled without virtiofsd; vsock cannot be added without /dev/vhost-vsock', () => {
    const fs = tableOptions('share', checks()).find((o) => o.value === 'virtiofs')!;
    assert.deepEqual([fs.disabled, fs.reason], [true, 'virtiofsd not found']);
    assert.equal(addBlocked('vsock', checks()).available, false);
    assert.equal(addBlocked('disk', checks()).available, true);
  });
});

describe('device forms', () => {
  it('a new 1 GiB virtio-blk disk: the size goes in the options, no file', () => {
    const r = buildDeviceRequest('disk', { ...blankForm('disk'), sizeGiB: '1' }, 'add');
    assert.ok(r.ok);
    assert.deepEqual(r.opts, { newDiskBytes: 1024 ** 3, newDiskFormat: 'qcow2' });
    assert.equal(r.device.file, undefined);
    assert.equal(r.device.bus, 'virtio-blk');
    // v-model on a number input hands back a number.
    const typed = buildDeviceRequest('disk', { ...blankForm('disk'), sizeGiB: 2 as unknown as string }, 'add');
    assert.ok(typed.ok && typed.opts?.newDiskBytes === 2 * 1024 ** 3);
  });

  it('bad input gives an error per field', () => {
    for (const size of ['0', 'abc', '', '1.5']) {
      const r = buildDeviceRequest('disk', { ...blankForm('disk'), sizeGiB: size }, 'add');
      assert.ok(!r.ok && r.errors.sizeGiB, `size ${JSON.stringify(size)}`);
    }
    const existing = buildDeviceRequest('disk', { ...blankForm('disk'), source: 'existing', file: 'relative.qcow2' }, 'add');
    assert.ok(!existing.ok && /absolute/.test(existing.errors.file!));
    const native = buildDeviceRequest('disk', { ...blankForm('disk'), aio: 'native', cache: 'writeback', iothread: true, bus: 'sata' }, 'add');
    assert.ok(!native.ok && native.errors.aio && native.errors.iothread);
    const nic = buildDeviceRequest('nic', { ...blankForm('nic'), mac: '53:54:00:00:00:01', forwards: 'tcp::x-:22' }, 'add');
    assert.ok(!nic.ok && /unicast/.test(nic.errors.mac!) && nic.errors.forwards);
    const bridge = buildDeviceRequest('nic', { ...blankForm('nic'), backend: 'bridge', bridge: 'bad name!' }, 'add');
    assert.ok(!bridge.ok && bridge.errors.bridge);
    const share = buildDeviceRequest('share', { ...blankForm('share'), source: '/srv', tag: '' }, 'add');
    assert.ok(!share.ok && share.errors.tag);
    const cid = buildDeviceRequest('vsock', { cid: '2' }, 'add');
    assert.ok(!cid.ok && cid.errors.cid);
  });

  it('a NIC on NAT with port forwards, and on a tap with vhost-net', () => {
    const r = buildDeviceRequest('nic', { ...blankForm('nic'), mac: '52:54:00:aa:bb:cc', forwards: 'tcp::2222-:22' }, 'add');
    assert.ok(r.ok);
    assert.deepEqual(r.device.network, { type: 'user', portForwards: [{ protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: 2222, guestPort: 22 }] });
    const tap = buildDeviceRequest('nic', { ...blankForm('nic'), backend: 'tap', ifname: 'tap0', dataPath: 'vhost' }, 'add');
    assert.ok(tap.ok);
    assert.deepEqual(tap.device.network, { type: 'tap', ifname: 'tap0', vhost: true });
  });

  it('an edit sends only what changed; a cleared optional field is null; a same-type back end keeps its other fields', () => {
    const disk = { id: 'disk0', file: '/vms/a/disk0.qcow2', format: 'qcow2', bus: 'virtio-blk', cache: 'writeback', readOnly: false, discard: false, iothread: false, owned: true, aio: 'threads' };
    const form = formFromDevice('disk', disk);
    form.cache = 'none';
    form.aio = '';
    const r = buildDeviceRequest('disk', form, 'edit', disk);
    assert.ok(r.ok);
    assert.deepEqual(r.device, { cache: 'none', aio: null });
    const nic = { id: 'net0', model: 'virtio-net', mac: '52:54:00:12:34:56', network: { type: 'user', portForwards: [], tftp: '/srv/tftp' } };
    const nf = formFromDevice('nic', nic);
    nf.forwards = 'tcp::8080-:80';
    const p = buildDeviceRequest('nic', nf, 'edit', nic);
    assert.ok(p.ok);
    assert.deepEqual(p.device, { network: { type: 'user', portForwards: [{ protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: 8080, guestPort: 80 }], tftp: '/srv/tftp' } });
    assert.deepEqual(devicePatch('cdrom', { id: 'cd0', bus: 'ide', file: '/a.iso' }, { bus: 'ide' }), { file: null });
  });

  it('status lines', () => {
    assert.equal(changeStatus('add', { applied: 'now', note: 'hotplugged: the guest sees it now' }), 'Added, the guest sees it now');
    assert.equal(changeStatus('edit', { applied: 'next-boot', note: 'saved; applies at next boot: a running VM\'s disk settings cannot change' }), 'Saved; applies at next boot — a running VM\'s disk settings cannot change');
    assert.equal(changeStatus('remove', { applied: 'saved' }), 'Saved');
  });

  it('singletons: listed when present, addable when absent (no video = model none)', () => {
    const def = fakeDefinition('a', { rng: { source: 'urandom' } });
    assert.deepEqual(devicesOf(def, 'rng').map((d) => d.id), ['rng0']);
    assert.equal(canAdd(def, 'rng'), false);
    assert.equal(canAdd(def, 'video'), true);
    assert.equal(canAdd(def, 'disk'), true);
  });
});

describe('balloon target', () => {
  const withBalloon = fakeDefinition('b', { memoryMiB: 256, balloon: {} });

  it('the target is a whole number of MiB from 16 to the VM\'s memory', () => {
    assert.deepEqual(parseBalloonTarget('200', 256), { ok: true, targetMiB: 200 });
    assert.deepEqual(parseBalloonTarget(' 256 ', 256), { ok: true, targetMiB: 256 });
    // v-model on a number input hands back a number.
    assert.deepEqual(parseBalloonTarget(16 as unknown as string, 256), { ok: true, targetMiB: 16 });
    assert.match((parseBalloonTarget('15', 256) as { error: string }).error, /at least 16 MiB/);
    assert.match((parseBalloonTarget('257', 256) as { error: string }).error, /at most the VM's 256 MiB/);
    for (const bad of ['', '2.5', '-1', '1e3', 'lots']) assert.match((parseBalloonTarget(bad, 256) as { error: string }).error, /whole number of MiB, 16 to 256/, bad);
  });

  it('offered on a running or paused VM whose QEMU has the balloon; otherwise the reason', () => {
    assert.deepEqual(balloonAvailability('running', withBalloon), { available: true });
    assert.deepEqual(balloonAvailability('paused', withBalloon), { available: true });
    assert.match((balloonAvailability('stopped', withBalloon) as { reason: string }).reason, /needs a running VM/);
    assert.match((balloonAvailability('starting', withBalloon) as { reason: string }).reason, /needs a running VM/);
    assert.match((balloonAvailability('running', fakeDefinition('n')) as { reason: string }).reason, /no memory balloon/);
    const pendingAdd = [{ kind: 'balloon' as const, id: 'balloon0', change: 'add' as const, summary: 'balloon will be added' }];
    assert.match((balloonAvailability('running', withBalloon, pendingAdd) as { reason: string }).reason, /added at next boot: restart/);
    const pendingEdit = [{ ...pendingAdd[0]!, change: 'edit' as const }];
    assert.deepEqual(balloonAvailability('running', withBalloon, pendingEdit), { available: true }, 'an edited balloon is still in QEMU');
  });

  it('the status line says the target and what the guest has', () => {
    assert.equal(balloonStatusText({ targetMiB: 200, actualMiB: 256 }), 'target 200 MiB, the guest has 256 MiB now');
  });

  it('shows the core\'s live figure when there is one, else the last answer', () => {
    assert.deepEqual(currentBalloon({ targetMiB: 200, actualMiB: 230 }, { targetMiB: 200, actualMiB: 256 }), { targetMiB: 200, actualMiB: 230 });
    assert.deepEqual(currentBalloon(undefined, { targetMiB: 200, actualMiB: 256 }), { targetMiB: 200, actualMiB: 256 });
    assert.equal(currentBalloon(undefined, undefined), undefined);
  });
});

describe('file chooser start folder', () => {
  it('a file field opens the typed file\'s folder; a folder field the folder; nothing typed: the fallback', () => {
    assert.equal(chooserStart('/images/data.qcow2', 'file'), '/images');
    assert.equal(chooserStart('/data.qcow2', 'file'), '/');
    assert.equal(chooserStart('  /srv/share ', 'directory'), '/srv/share');
    assert.equal(chooserStart('data.qcow2', 'file'), '');
    assert.equal(chooserStart('', 'directory'), '');
  });
});

describe('store device actions (against the in-memory core)', () => {
  let core: FakeCore;
  beforeEach(() => {
    setActivePinia(createPinia());
    core = new FakeCore();
    core.add(fakeVm('off', 'stopped', { definition: fakeDefinition('off') }));
    core.add(fakeVm('on', 'running', { definition: fakeDefinition('on') }));
  });
  async function store(): Promise<ReturnType<typeof useVmsStore>> {
    useConnectionStore().start({ transport: core, timers: new ManualTimers() });
    await settle();
    const vms = useVmsStore();
    await vms.loadDetails('off');
    await vms.loadDetails('on');
    return vms;
  }

  it('stopped VM: add a new disk -> saved, the details show it, the status line says "Saved"', async () => {
    const vms = await store();
    const r = await vms.addDevice('off', 'disk', { bus: 'virtio-blk' }, { newDiskBytes: 1024 ** 3 });
    assert.ok(r.ok);
    assert.equal(r.change.applied, 'saved');
    assert.equal(r.status, 'Saved');
    assert.equal(vms.deviceStatus.get('off'), 'Saved');
    assert.deepEqual(vms.details.get('off')!.definition!.disks.map((d) => [d.id, d.file, d.owned]), [['disk0', '/vms/off/disk0.qcow2', true]]);
    assert.ok(core.calls.includes('addDevice off disk {"bus":"virtio-blk"} {"newDiskBytes":1073741824}'));
    const edited = await vms.editDevice('off', 'disk', 'disk0', { cache: 'none' });
    assert.ok(edited.ok);
    assert.equal(vms.details.get('off')!.definition!.disks[0]!.cache, 'none');
    const removed = await vms.removeDevice('off', 'disk', 'disk0', { deleteFile: true });
    assert.ok(removed.ok);
    assert.deepEqual(core.deletedFiles, ['/vms/off/disk0.qcow2']);
    assert.equal(vms.details.get('off')!.definition!.disks.length, 0);
  });

  it('running VM: a virtio-blk disk is hotplugged (now); a sound card waits for the next boot and is pending', async () => {
    const vms = await store();
    const now = await vms.addDevice('on', 'disk', { bus: 'virtio-blk' }, { newDiskBytes: 1024 ** 3 });
    assert.ok(now.ok);
    assert.equal(now.status, 'Added, the guest sees it now');
    const later = await vms.addDevice('on', 'sound', { model: 'hda' });
    assert.ok(later.ok);
    assert.equal(later.change.applied, 'next-boot');
    assert.match(later.status, /^Saved; applies at next boot/);
    await settle();
    const pending = vms.details.get('on')!.pending!;
    assert.deepEqual(pending.map((p) => `${p.change} ${p.kind} ${p.id}`), ['add sound sound0']);
  });

  it('a core error comes back readable (message + fix) and changes nothing', async () => {
    const vms = await store();
    core.failNext.set('addDevice', new HangarError('invalid-input', 'tap device tap9 does not exist', 'create it once as root'));
    const r = await vms.addDevice('off', 'nic', { model: 'virtio-net', mac: '52:54:00:00:00:01', network: { type: 'tap', ifname: 'tap9' } });
    assert.ok(!r.ok);
    assert.deepEqual([r.error.message, r.error.hint], ['tap device tap9 does not exist', 'create it once as root']);
    assert.equal(vms.details.get('off')!.definition!.nics.length, 0);
    assert.equal(vms.deviceBusy.size, 0);
  });

  it('an image Hangar did not create is never deleted', async () => {
    const vms = await store();
    assert.ok((await vms.addDevice('off', 'disk', { file: '/images/mine.qcow2' })).ok);
    const r = await vms.removeDevice('off', 'disk', 'disk0', { deleteFile: true });
    assert.ok(!r.ok && /did not create/.test(r.error.message));
    assert.deepEqual(core.deletedFiles, []);
  });

  it('the host store loads the doctor checks and hostInfo once', async () => {
    await store();
    const host = useHostStore();
    await Promise.all([host.load(), host.load()]);
    assert.equal(core.calls.filter((c) => c === 'doctor').length, 1);
    assert.equal(host.checks!.find((c) => c.id === 'vhost-net')!.status, 'missing');
    assert.equal(host.info!.cpus, 4);
  });

  it('balloon: the answer is kept per VM (the status reads from it); a refusal comes back readable; a stop drops it', async () => {
    core.add(fakeVm('bal', 'running', { memoryMiB: 256, definition: fakeDefinition('bal', { memoryMiB: 256, balloon: {} }) }));
    const vms = await store();
    await vms.loadDetails('bal');
    core.balloonActuals.push(256);
    const r = await vms.setBalloon('bal', 200);
    assert.deepEqual(r, { ok: true, targetMiB: 200, actualMiB: 256 });
    assert.deepEqual(vms.balloons.get('bal'), { targetMiB: 200, actualMiB: 256 });
    assert.equal((await vms.setBalloon('bal', 200)).ok, true);
    assert.deepEqual(vms.balloons.get('bal'), { targetMiB: 200, actualMiB: 200 }, 'the follow-up answer replaces it');
    const tooBig = await vms.setBalloon('bal', 512);
    assert.ok(!tooBig.ok);
    assert.match(tooBig.error.message, /more than the VM's 256 MiB/);
    assert.match(tooBig.error.hint!, /at most 256 MiB/);
    const noBalloon = await vms.setBalloon('on', 100);
    assert.ok(!noBalloon.ok && /without a memory balloon/.test(noBalloon.error.message));
    core.change('bal', 'stopped');
    await settle();
    assert.equal(vms.balloons.has('bal'), false, 'a new QEMU starts with a full balloon');
  });

  it('restart to apply: the reboot of a running VM with changes pending applies them; pending is empty after', async () => {
    const vms = await store();
    assert.ok((await vms.addDevice('on', 'disk', { bus: 'virtio-blk' }, { newDiskBytes: 1024 ** 3 })).ok);
    assert.ok((await vms.editDevice('on', 'disk', 'disk0', { cache: 'writethrough' })).ok);
    await settle();
    assert.deepEqual(vms.details.get('on')!.pending!.map((p) => `${p.change} ${p.kind} ${p.id}`), ['edit disk disk0']);
    core.hold('reboot');
    const done = vms.act('on', 'reboot');
    await settle();
    assert.equal(vms.busy.get('on'), 'reboot', 'the banner shows "Restarting…" meanwhile');
    core.release('reboot');
    assert.equal(await done, true);
    await settle();
    assert.deepEqual(vms.details.get('on')!.pending, []);
    assert.equal(vms.stateOf('on'), 'running');
    assert.equal(vms.busy.has('on'), false);
    // The restarted QEMU has the saved definition: a later edit is measured against it.
    assert.ok((await vms.editDevice('on', 'disk', 'disk0', { cache: 'none' })).ok);
    await settle();
    assert.deepEqual(vms.details.get('on')!.pending!.map((p) => `${p.change} ${p.kind} ${p.id}`), ['edit disk disk0']);
    // ... and back to what the restarted QEMU runs (writethrough): nothing pending.
    assert.ok((await vms.editDevice('on', 'disk', 'disk0', { cache: 'writethrough' })).ok);
    await settle();
    assert.deepEqual(vms.details.get('on')!.pending, []);
  });
});

describe('growing a disk', () => {
  it('takes GiB (decimals too) rounded up to whole sectors, only above the current size', () => {
    assert.deepEqual(parseGrowSize('2', 1024 ** 3), { ok: true, bytes: 2 * 1024 ** 3 });
    assert.deepEqual(parseGrowSize(' 1.5 ', undefined), { ok: true, bytes: 1.5 * 1024 ** 3 });
    const r = parseGrowSize('0.0000001', 0);
    assert.ok(r.ok && r.bytes % 512 === 0 && r.bytes > 0);
    const smaller = parseGrowSize('1', 1024 ** 3);
    assert.ok(!smaller.ok && /only grows/.test(smaller.error) && /1\.0 GiB/.test(smaller.error));
    assert.ok(!parseGrowSize('big', 0).ok);
    assert.ok(!parseGrowSize('-1', 0).ok);
  });

  it('says what happened, and what the guest must do after an online grow', () => {
    assert.equal(growStatusText({ oldBytes: 1024 ** 3, newBytes: 2 * 1024 ** 3, online: false }), 'Grown from 1.0 GiB to 2.0 GiB');
    assert.match(growStatusText({ oldBytes: 1024 ** 3, newBytes: 2 * 1024 ** 3, online: true }), /the guest sees the new size now; grow its partition/);
  });
});

describe('device table rows', () => {
  it('one row per device with its cells: disks, NICs with their forwards, and the singletons of "Other devices"', () => {
    const def = parseDefinition({
      version: 1, id: '0b6c1c2e-8f0a-4c59-9d3e-8a6f1d1e2a3b', name: 'vm',
      disks: [{ id: 'disk0', file: '/img/a.qcow2', cache: 'none' }],
      nics: [{ id: 'net0', mac: '52:54:00:00:00:01', network: { type: 'user', portForwards: [{ hostPort: 2222, guestPort: 22 }] } }],
      channels: [{ id: 'channel0', name: 'org.qemu.guest_agent.0' }],
      sound: { model: 'hda' }, vsock: { cid: 3 },
    });
    const [disk] = tableRows(def, ['disk']);
    assert.deepEqual([disk!.noun, disk!.cells.file, disk!.cells.cache, disk!.cells.mode, disk!.cells.readOnly], ['disk', '/img/a.qcow2', 'none', 'Paravirtual', 'no']);
    const [nic] = tableRows(def, ['nic']);
    assert.equal(nic!.cells.network, 'user-mode (NAT)');
    assert.equal(nic!.cells.forwards, 'tcp 127.0.0.1:2222 → guest 22');
    assert.deepEqual(tableRows(def, ['channel']).map((r) => [r.cells.type, r.cells.detail]), [['virtio-serial', 'port "org.qemu.guest_agent.0" on a unix socket']]);
    const others = tableRows(def, singletonKinds);
    assert.deepEqual(others.map((r) => r.id), ['sound0', 'vsock0']);
    assert.equal(others.find((r) => r.kind === 'vsock')!.cells.mode, 'vhost (host kernel)');
    assert.deepEqual(tableRows(def, ['cdrom']), []);
  });
});
