// Start-time checks for VMs with host devices, on copies of the workstation fixture: the IOMMU
// first (nothing written without one), then each device's viability, unmanaged devices, mdevs,
// locked memory, and the /dev/vfio nodes.

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { parseDefinition } from '../../core/common/definition.ts';
import { HangarError } from '../../core/common/errors.ts';
import type { MemlockInfo } from '../../core/common/host-devices.ts';
import type { VmDefinition } from '../../core/common/model.ts';
import { executeOps } from '../../core/node/host/host-helper.ts';
import { checkHostDevices, checkVfioGroupNodes, readMemlock } from '../../core/node/host/hostdev-checks.ts';
import { planFor } from '../../core/node/host/host-verbs.ts';
import { IOMMU_CMDLINE_FIX } from '../../core/node/host/passthrough-readiness.ts';
import { PciIds } from '../../core/node/host/pci-ids.ts';
import { FakeKernel, copyFixture, snapshotTree } from '../helpers/fake-sysfs-kernel.ts';
import type { FixtureCopy } from '../helpers/fake-sysfs-kernel.ts';

const pciIds = new PciIds(join(import.meta.dirname, '../fixtures/pci.ids'));
const VM_ID = '6f1c1a52-4b0e-4d5c-9a63-0c1d2e3f4a5b';
const UUID = '2b5b1d9e-6c4f-4f3e-9a53-1f2e3d4c5b6a';
const ENOUGH: MemlockInfo = { limitBytes: null, exempt: false };

function vm(extra: Record<string, unknown>): VmDefinition {
  return parseDefinition({ version: 1, id: VM_ID, name: 'web', memoryMiB: 2048, ...extra });
}

async function refusal(p: Promise<unknown>, code: string, message: RegExp, hint?: RegExp): Promise<HangarError> {
  let err: HangarError | undefined;
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof HangarError, String(e));
    assert.equal(e.code, code);
    assert.match(e.message, message);
    if (hint) assert.match(e.hint ?? '', hint);
    err = e;
    return true;
  });
  return err as HangarError;
}

describe('checkHostDevices', () => {
  let fx: FixtureCopy;
  let devRoot: string;
  const opts = (more: object = {}) => ({ sysRoot: fx.sysRoot, procRoot: fx.procRoot, devRoot, pciIds, memlock: ENOUGH, ...more });

  beforeEach(async () => {
    fx = await copyFixture();
    devRoot = join(fx.dir, 'dev');
    await mkdir(join(devRoot, 'vfio'), { recursive: true });
    for (const n of ['vfio', '14']) await writeFile(join(devRoot, 'vfio', n), '');
  });
  afterEach(() => fx.cleanup());

  it('a VM without host devices needs nothing and reads nothing', async () => {
    assert.deepEqual(await checkHostDevices(vm({}), { sysRoot: '/nonexistent', procRoot: '/nonexistent' }), { bind: [], groups: [], notes: [] });
  });

  it('without an IOMMU refuses first, before any other check, and writes nothing', async () => {
    await rm(join(fx.sysRoot, 'kernel/iommu_groups'), { recursive: true });
    const before = await snapshotTree(fx.dir);
    const def = vm({ hostPci: [{ id: 'hostpci0', address: '0000:03:10.0' }, { id: 'hostpci1', address: '0000:42:00.0' }] });
    const e = await refusal(checkHostDevices(def, opts({ memlock: { limitBytes: 1024, exempt: false } })), 'host-missing',
      /^cannot start VM "web": PCI host device hostpci0 \(0000:03:10\.0\) needs an IOMMU, and this host has none enabled/);
    assert.ok(e.hint?.includes(IOMMU_CMDLINE_FIX), e.hint ?? 'no hint');
    assert.deepEqual(await snapshotTree(fx.dir), before);
  });

  it('a managed GPU: bind it (its audio function comes along), group 13, notes', async () => {
    const plan = await checkHostDevices(vm({ hostPci: [{ id: 'gpu', address: '0000:01:00.0' }] }), opts());
    assert.deepEqual(plan.bind, ['0000:01:00.0']);
    assert.deepEqual(plan.groups, [13]);
    assert.equal(plan.notes.length, 2);
    assert.match(plan.notes[0], /^gpu: shares IOMMU group 13 with 0000:01:00\.1 .*moves from snd_hda_intel to vfio-pci/);
    assert.match(plan.notes[1], /^gpu: .*no function-level reset/);
  });

  it('both functions of one group: one bind, no news about the peer', async () => {
    const def = vm({ hostPci: [{ id: 'gpu', address: '0000:01:00.0' }, { id: 'gpu-audio', address: '0000:01:00.1' }] });
    const plan = await checkHostDevices(def, opts());
    assert.deepEqual(plan.bind, ['0000:01:00.0']);
    assert.deepEqual(plan.groups, [13]);
    assert.ok(plan.notes.every((n) => !/moves from/.test(n)), plan.notes.join('\n'));
  });

  it('a group already on vfio-pci needs no binding and its /dev/vfio nodes must be there now', async () => {
    const def = vm({ hostPci: [{ id: 'hostpci0', address: '0000:02:00.0', managed: false }] });
    assert.deepEqual((await checkHostDevices(def, opts())).bind, []);
    await rm(join(devRoot, 'vfio/14'));
    await refusal(checkHostDevices(def, opts()), 'host-missing', /vfio\/14 is missing: its IOMMU group is not bound to vfio-pci/, /modprobe vfio-pci/);
  });

  it('after a real bind (fake kernel), the GPU needs nothing more', async () => {
    const kernel = new FakeKernel(fx.sysRoot);
    await executeOps((await planFor('bind-vfio', ['0000:01:00.0'], fx.sysRoot, { procRoot: fx.procRoot })).ops, { sysRoot: fx.sysRoot, writer: kernel.writer });
    await writeFile(join(devRoot, 'vfio/13'), '');
    const plan = await checkHostDevices(vm({ hostPci: [{ id: 'gpu', address: '0000:01:00.0', managed: false }] }), opts());
    assert.deepEqual([plan.bind, plan.groups], [[], [13]]);
  });

  it('an unmanaged device not on vfio-pci is refused with the bind command', async () => {
    await refusal(checkHostDevices(vm({ hostPci: [{ id: 'gpu', address: '0000:01:00.0', managed: false }] }), opts()), 'invalid-state',
      /^cannot start VM "web": PCI host device gpu \(0000:01:00\.0\) is not managed by Hangar, and its IOMMU group is not on vfio-pci \(0000:01:00\.0 is on amdgpu, 0000:01:00\.1 is on snd_hda_intel\)/,
      /hangar host bind 0000:01:00\.0/);
  });

  it('refuses devices that cannot be assigned, naming device id, address and reason', async () => {
    await refusal(checkHostDevices(vm({ hostPci: [{ id: 'igpu', address: '0000:00:02.0' }] }), opts()), 'invalid-state',
      /^cannot start VM "web": PCI host device igpu \(0000:00:02\.0\) cannot be assigned: the host uses 0000:00:02\.0: boot VGA/);
    await refusal(checkHostDevices(vm({ hostPci: [{ id: 'nic', address: '0000:03:00.0' }] }), opts()), 'invalid-state', /SR-IOV physical function with 8 virtual functions/);
    await refusal(checkHostDevices(vm({ hostPci: [{ id: 'x', address: '0000:42:00.0' }] }), opts()), 'not-found', /PCI host device x \(0000:42:00\.0\) cannot be assigned: no PCI device/);
    const assignments = [{ device: '0000:03:10.0', kind: 'hostpci' as const, vmId: 'other', vmName: 'db', deviceId: 'vf0', running: true }];
    await refusal(checkHostDevices(vm({ hostPci: [{ id: 'vf', address: '0000:03:10.0' }] }), opts({ assignments })), 'invalid-state', /assigned to VM "db" \(vf0\), which is running/);
    // Its own definition is not a conflict.
    const own = [{ ...assignments[0], vmId: VM_ID, vmName: 'web' }];
    assert.deepEqual((await checkHostDevices(vm({ hostPci: [{ id: 'vf', address: '0000:03:10.0' }] }), opts({ assignments: own }))).groups, [17]);
  });

  it('an mdev must exist; once created it is fine and its group is listed', async () => {
    const def = vm({ mdevs: [{ id: 'vgpu', uuid: UUID, parent: '0000:04:00.0', type: 'nvidia-222' }] });
    await refusal(checkHostDevices(def, opts()), 'not-found', /mediated device vgpu \(2b5b1d9e-.*\) does not exist/,
      new RegExp(`hangar host mdev create 0000:04:00\\.0 nvidia-222 ${UUID}`));
    await refusal(checkHostDevices(vm({ mdevs: [{ id: 'vgpu', uuid: UUID }] }), opts()), 'not-found', /does not exist/, /hangar host mdev create PARENT TYPE/);
    const kernel = new FakeKernel(fx.sysRoot);
    await executeOps((await planFor('create-mdev', ['0000:04:00.0', 'nvidia-222', UUID], fx.sysRoot)).ops, { sysRoot: fx.sysRoot, writer: kernel.writer });
    await writeFile(join(devRoot, 'vfio/31'), '');
    assert.deepEqual(await checkHostDevices(def, opts()), { bind: [], groups: [31], notes: [] });
  });

  it('refuses a locked-memory limit below guest memory + 1 GiB, with the numbers and the fix', async () => {
    const def = vm({ hostPci: [{ id: 'vf', address: '0000:03:10.0' }] });
    const e = await refusal(checkHostDevices(def, opts({ memlock: { limitBytes: 8 * 1024 * 1024, exempt: false } })), 'host-missing',
      /all 2048 MiB of guest memory is locked \(pinned\) in RAM, but the locked-memory limit is 8 MiB; it needs at least 3072 MiB \(2048 MiB \+ 1024 MiB for QEMU.s own mappings\)/);
    assert.match(e.hint ?? '', /ulimit -l 3145728 .*\/etc\/security\/limits\.conf.*LimitMEMLOCK=3221225472/);
    assert.deepEqual(e.details, { limitBytes: 8388608, neededBytes: 3221225472 });
    for (const memlock of [{ limitBytes: 8 * 1024 * 1024, exempt: true }, { limitBytes: 3072 * 1024 * 1024, exempt: false }, ENOUGH]) {
      assert.deepEqual((await checkHostDevices(def, opts({ memlock }))).bind, ['0000:03:10.0']);
    }
  });
});

describe('readMemlock and checkVfioGroupNodes', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hangar-memlock-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  async function proc(name: string, limit: string, uid: string, capEff: string, capAmb = '0000000000000000'): Promise<string> {
    const root = join(dir, name);
    await mkdir(join(root, 'self'), { recursive: true });
    await writeFile(join(root, 'self/limits'), `Limit                     Soft Limit           Hard Limit           Units     \n` +
      `Max processes             127573               127573               processes \n` +
      `Max locked memory         ${limit}              ${limit}              bytes     \n`);
    await writeFile(join(root, 'self/status'), `Name:\tnode\nUid:\t${uid}\t${uid}\t${uid}\t${uid}\nCapInh:\t0000000000000000\nCapEff:\t${capEff}\nCapAmb:\t${capAmb}\n`);
    return root;
  }

  it('reads the soft limit, unlimited as null, and exemption as root or with ambient CAP_IPC_LOCK', async () => {
    assert.deepEqual(await readMemlock(await proc('user', '8388608', '1000', '0000000000000000')), { limitBytes: 8388608, exempt: false });
    assert.deepEqual(await readMemlock(await proc('unlimited', 'unlimited', '1000', '0000000000000000')), { limitBytes: null, exempt: false });
    assert.deepEqual(await readMemlock(await proc('root', '8388608', '0', '000001ffffffffff')), { limitBytes: 8388608, exempt: true });
    assert.deepEqual(await readMemlock(await proc('ambient', '65536', '1000', '0000000000004000', '0000000000004000')), { limitBytes: 65536, exempt: true });
    // Effective only: QEMU, exec'd by the core, would not keep it.
    assert.deepEqual(await readMemlock(await proc('eff', '65536', '1000', '0000000000004000')), { limitBytes: 65536, exempt: false });
    assert.deepEqual(await readMemlock(join(dir, 'none')), { limitBytes: null, exempt: false });
  });

  it('checkVfioGroupNodes wants /dev/vfio/vfio and one node per group', async () => {
    const dev = join(dir, 'dev');
    await mkdir(join(dev, 'vfio'), { recursive: true });
    await refusal(checkVfioGroupNodes([13], dev), 'host-missing', /vfio\/vfio is missing: the VFIO driver is not loaded/, /modprobe vfio-pci/);
    await writeFile(join(dev, 'vfio/vfio'), '');
    await refusal(checkVfioGroupNodes([13], dev), 'host-missing', /vfio\/13 is missing/);
    await writeFile(join(dev, 'vfio/13'), '');
    await checkVfioGroupNodes([13], dev);
  });
});
