// The New VM wizard's store, driven in Node against the in-memory core (real birpc).
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { createPinia, setActivePinia } from 'pinia';
import type { PathInspection } from '../../core/common/api.ts';
import { HangarError } from '../../core/common/errors.ts';
import { presetFor } from '../../core/common/os-presets.ts';
import { GENERIC_OSES } from '../../core/common/os-types.ts';
import type { OsEntry } from '../../core/common/os-types.ts';
import { useConnectionStore } from '../../renderer/src/stores/connection.ts';
import { useNewVmStore } from '../../renderer/src/stores/new-vm.ts';
import { useVmsStore } from '../../renderer/src/stores/vms.ts';
import { FakeCore, ManualTimers, fakeVm, settle } from '../../renderer/src/testing/fake-core.ts';

let core: FakeCore;

const debian: OsEntry = {
  id: 'debian12', name: 'Debian 12', family: 'linux', media: [], generic: false, needsTpm: false,
  minimum: { memoryMiB: 1024, vcpus: 1, diskBytes: 10 * 1024 ** 3 }, recommended: { memoryMiB: 2048, diskBytes: 20 * 1024 ** 3 },
  virtio: { blk: true, net: true, scsi: true, rng: true, balloon: true, console: true, gpu: true, input: true, fs: false }, firmware: { efi: true, bios: true },
};

function isoAnswer(os: OsEntry | null): PathInspection {
  const { media: _m, ...entry } = os ?? debian;
  return {
    path: '/isos/x.iso', sizeBytes: 1 << 20,
    iso: {
      detection: { os: os ? entry : null, media: { systemId: '', volumeId: 'X', publisherId: '', applicationId: '', volumeSizeBytes: 1 << 20 }, matchedBy: os ? ['volume-id'] : [] },
      preset: presetFor(os ?? GENERIC_OSES.find((o) => o.id === 'other')!),
    },
  };
}

async function wizard(): Promise<ReturnType<typeof useNewVmStore>> {
  const conn = useConnectionStore();
  conn.start({ transport: core, timers: new ManualTimers() });
  await settle();
  const wiz = useNewVmStore();
  await wiz.loadHost();
  await useVmsStore().refreshList();
  return wiz;
}

beforeEach(() => {
  setActivePinia(createPinia());
  core = new FakeCore();
  core.add(fakeVm('debian12', 'stopped'));
});

describe('new VM wizard store', () => {
  it('an ISO detected as Debian applies its preset and suggests a free name', async () => {
    const wiz = await wizard();
    core.paths.set('/isos/debian.iso', isoAnswer(debian));
    wiz.choices.isoPath = '/isos/debian.iso';
    await wiz.checkPath('isoPath', true);
    assert.equal(wiz.checks.isoPath.state, 'ok');
    assert.deepEqual([wiz.choices.osId, wiz.choices.memoryMiB, wiz.choices.diskBus, wiz.choices.nicModel], ['debian12', 2048, 'virtio-blk', 'virtio-net']);
    assert.equal(wiz.choices.name, 'debian12-2', 'debian12 is taken');
  });

  it('an OS picked by hand is not overridden by a later detection; a typed name is kept', async () => {
    const wiz = await wizard();
    wiz.chooseOs(GENERIC_OSES.find((o) => o.id === 'generic-windows')!);
    wiz.choices.name = 'mine';
    wiz.nameTouched = true;
    core.paths.set('/isos/debian.iso', isoAnswer(debian));
    wiz.choices.isoPath = '/isos/debian.iso';
    await wiz.checkPath('isoPath', true);
    assert.deepEqual([wiz.choices.osId, wiz.choices.diskBus, wiz.choices.name], ['generic-windows', 'sata', 'mine']);
  });

  it('CPU model: the OS and the accelerator pick it (max under TCG, host under KVM, qemu64 for an old OS) until the user picks one', async () => {
    const wiz = await wizard();
    await settle();
    assert.equal(wiz.cpuModels?.accel, 'tcg');
    assert.equal(wiz.choices.cpuModel, 'max');
        const xp: OsEntry = { ...debian, id: 'winxp', name: 'Windows XP', family: 'winnt', version: '5.1', releaseDate: '2001-10-25' };
    wiz.chooseOs(xp);
    await settle();
    assert.equal(wiz.choices.cpuModel, 'qemu64', 'an OS from 2001 gets a plain model');
    assert.match(wiz.command, /--cpu qemu64/);
    wiz.chooseOs(debian);
    await settle();
    assert.equal(wiz.choices.cpuModel, 'max');
    wiz.chooseCpuModel('host');
    assert.match(wiz.blocker('resources')!, /host needs KVM/);
    wiz.chooseCpuModel('Nehalem');
    assert.equal(wiz.blocker('resources'), null);
    wiz.chooseOs(xp);
    await settle();
    assert.equal(wiz.choices.cpuModel, 'Nehalem', 'a model picked by hand stays when the OS changes');
    // Under KVM the host's own CPU is the pick.
    setActivePinia(createPinia());
    core = new FakeCore();
    core.cpuModelList = { ...core.cpuModelList, accel: 'kvm' };
    const kvm = await wizard();
    await settle();
    assert.equal(kvm.choices.cpuModel, 'host');
  });

  it('path checks: the newest answer wins; errors keep the core\'s message and fix', async () => {
    const wiz = await wizard();
    core.paths.set('/isos/a.iso', isoAnswer(null));
    // The answer about the older text arrives last: it must not win.
    let answerSlow!: () => void;
    core.pathGates.set('/isos/slow.iso', new Promise((r) => { answerSlow = r; }));
    wiz.choices.isoPath = '/isos/slow.iso';
    const first = wiz.checkPath('isoPath', true);
    wiz.choices.isoPath = '/isos/a.iso';
    await wiz.checkPath('isoPath', true);
    answerSlow();
    await first;
    assert.equal(wiz.checks.isoPath.state, 'ok');
    assert.equal(wiz.checks.isoPath.path, '/isos/a.iso');
    core.paths.set('/notes.txt', new HangarError('invalid-input', '/notes.txt is not an ISO9660 image', 'give an .iso file'));
    wiz.choices.isoPath = '/notes.txt';
    await wiz.checkPath('isoPath', true);
    assert.deepEqual(wiz.checks.isoPath.error, { code: 'invalid-input', message: '/notes.txt is not an ISO9660 image', hint: 'give an .iso file' });
    assert.equal(wiz.blocker('source'), 'choose a readable ISO image');
  });

  it('steps: Next stops at what blocks; jumping ahead lands on the first blocked step', async () => {
    const wiz = await wizard();
    assert.equal(wiz.next(), false);
    assert.equal(wiz.step, 'source');
    wiz.choices.source = 'empty';
    wiz.choices.memoryMiB = 9 * 1024; // the fake host has 8 GiB
    assert.equal(wiz.go('summary'), false);
    assert.equal(wiz.step, 'resources');
    assert.match(wiz.blocker('resources')!, /more than this host has/);
    wiz.choices.memoryMiB = 1024;
    wiz.choices.diskGiB = 100; // 50 GiB free
    assert.equal(wiz.go('summary'), false);
    assert.equal(wiz.step, 'storage');
    wiz.bigDiskConfirmed = true;
    wiz.choices.firmware = 'uefi-secure'; // unavailable on the fake host
    assert.equal(wiz.go('summary'), false);
    assert.equal(wiz.step, 'firmware');
    assert.equal(wiz.blocker('firmware'), 'no secure firmware');
    wiz.choices.firmware = 'uefi';
    assert.equal(wiz.go('summary'), true);
    await settle();
    assert.match(wiz.blocker('summary')!, /required/);
    wiz.choices.name = 'DEBIAN12';
    assert.match(wiz.blocker('summary')!, /already exists/);
  });

  it('create: progress events, Cancel leaves the wizard as it was; then a real create starts the VM', async () => {
    const wiz = await wizard();
    Object.assign(wiz.choices, { source: 'empty', name: 'fresh', storage: 'none' });
    core.holdCreates = true;
    const pending = wiz.create(true);
    await settle();
    assert.equal(wiz.creating, true);
    const req = core.creates[0]!;
    assert.match(req.requestId!, /^wizard-/);
    core.emitCreateProgress({ requestId: req.requestId!, step: 'converting disk0', fraction: 0.4 });
    core.emitCreateProgress({ requestId: 'someone-else', step: 'x', fraction: 0.9 });
    await settle();
    assert.deepEqual(wiz.progress, { step: 'converting disk0', fraction: 0.4 });
    await wiz.cancel();
    assert.equal(await pending, null);
    assert.deepEqual([wiz.creating, wiz.cancelled, wiz.createError], [false, true, null]);
    assert.ok(!core.vms.has('fresh'));

    core.releaseCreates();
    const info = await wiz.create(true);
    assert.equal(info?.name, 'fresh');
    assert.ok(core.calls.includes('start fresh'), core.calls.join(', '));
    assert.equal(wiz.cancelled, false);
  });

  it('a failed create shows the core\'s error and creates nothing', async () => {
    const wiz = await wizard();
    Object.assign(wiz.choices, { source: 'empty', name: 'x', storage: 'none' });
    core.failNext.set('create', new HangarError('host-missing', 'swtpm is not installed', 'apt-get install swtpm'));
    assert.equal(await wiz.create(false), null);
    assert.deepEqual(wiz.createError, { code: 'host-missing', message: 'swtpm is not installed', hint: 'apt-get install swtpm' });
    assert.ok(!core.vms.has('x'));
  });
});
