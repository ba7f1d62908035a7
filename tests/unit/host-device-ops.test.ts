// The core's host-device operations on a copy of the fixture sysfs tree (we run as root, so the
// changes are written into the copy): the Host page's report, and the rules that keep a running
// guest's devices from being released, destroyed or removed under it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDefinition } from '../../core/common/definition.ts';
import { HangarError } from '../../core/common/errors.ts';
import type { VmDefinition } from '../../core/common/model.ts';
import * as ops from '../../core/node/service/host-device-ops.ts';
import type { HostRoots, VmView } from '../../core/node/service/host-device-ops.ts';
import { copyFixture } from '../helpers/fake-sysfs-kernel.ts';
import type { FixtureCopy } from '../helpers/fake-sysfs-kernel.ts';

const MDEV = '4b20d080-1b54-4048-85b3-a6a62d165c01';
let fx: FixtureCopy;
let roots: HostRoots;

before(async () => {
  fx = await copyFixture();
  roots = { sysRoot: fx.sysRoot, procRoot: fx.procRoot, devRoot: join(fx.dir, 'dev') };
});

after(async () => {
  await fx?.cleanup();
});

function vm(name: string, active: boolean, extra: Record<string, unknown>): VmView {
  const definition = parseDefinition({ version: 1, id: crypto.randomUUID(), name, ...extra }) as VmDefinition;
  return { id: definition.id, name, definition, active };
}

const withVf = (active: boolean): VmView => vm('vf-guest', active, { hostPci: [{ id: 'hostpci0', address: '0000:03:10.2' }] });
const attr = (addr: string, name: string): string => readFileSync(join(fx.sysRoot, 'bus/pci/devices', addr, name), 'utf8').trim();

function refusedWith(pattern: RegExp, code = 'invalid-state') {
  return (e: unknown): boolean => {
    assert.ok(e instanceof HangarError, String(e));
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    assert.ok(e.hint, 'every refusal says what to do');
    return true;
  };
}

describe('host device report', () => {
  test('PCI devices with viability per device, mdev instances, USB, readiness, assignments', async () => {
    const views = [withVf(true), vm('gpu-guest', false, { hostPci: [{ id: 'hostpci0', address: '0000:01:00.0' }], hostUsb: [{ id: 'usbhost0', vendorId: '046d', productId: 'c52b' }] })];
    const r = await ops.hostDeviceReport(roots, views);
    assert.equal(r.sysRoot, fx.sysRoot);
    assert.ok(r.pci.length >= 20);
    assert.equal(Object.keys(r.viability).length, r.pci.length, 'every PCI device has a verdict');
    const gpu = r.viability['0000:01:00.0']!;
    assert.equal(gpu.assignable, true, gpu.blockers.join('; '));
    assert.deepEqual(gpu.group.map((g) => [g.address, g.action]).sort(), [['0000:00:01.0', 'bridge'], ['0000:01:00.0', 'vfio'], ['0000:01:00.1', 'vfio']]);
    assert.match(gpu.warnings.join(' '), /gpu-guest/, 'assigned in a stopped VM: a warning, not a blocker');
    assert.equal(r.viability['0000:00:02.0']!.assignable, false, 'boot VGA');
    const vf = r.viability['0000:03:10.2']!;
    assert.equal(vf.assignable, false, 'a running VM has it');
    assert.match(vf.blockers.join(' '), /vf-guest/);
    assert.deepEqual(r.mdevs, [{ uuid: MDEV, parent: '0000:04:00.0', type: 'nvidia-222' }]);
    assert.ok(r.usb.length > 0 && r.usb.every((u) => !u.isRootHub));
    assert.deepEqual(r.readiness.map((c) => c.id), ['iommu', 'interrupt-remapping', 'vfio-pci', 'passthrough-hugepages']);
    assert.deepEqual(r.assignments.map((a) => [a.kind, a.device, a.vmName, a.running]).sort(), [
      ['hostpci', '0000:01:00.0', 'gpu-guest', false], ['hostpci', '0000:03:10.2', 'vf-guest', true], ['usbhost', '046d:c52b', 'gpu-guest', false]]);
    assert.equal(r.privilege, process.getuid?.() === 0 ? 'root' : r.privilege);
    assert.equal(typeof r.memlock.exempt, 'boolean');
  });
});

describe('changes that would take a device from a running guest are refused', () => {
  test('SR-IOV: the VF count of a PF cannot change while a running VM has one of its VFs; once it stops it can', async () => {
    await assert.rejects(ops.setSriovVfs(roots, [withVf(true)], '0000:03:00.0', 4), refusedWith(/cannot change the VF count of 0000:03:00\.0: VM "vf-guest" is running with 0000:03:10\.2/));
    assert.equal(attr('0000:03:00.0', 'sriov_numvfs'), '8', 'nothing written');
    const r = await ops.setSriovVfs(roots, [withVf(false)], '0000:03:00.0', 4);
    // The kernel refuses a non-zero to non-zero change: 0 first, then the new count.
    assert.deepEqual(r.commands, [`echo 0 > ${fx.sysRoot}/bus/pci/devices/0000:03:00.0/sriov_numvfs`, `echo 4 > ${fx.sysRoot}/bus/pci/devices/0000:03:00.0/sriov_numvfs`]);
    assert.equal(attr('0000:03:00.0', 'sriov_numvfs'), '4');
    await assert.rejects(ops.setSriovVfs(roots, [], '0000:03:00.0', 64), refusedWith(/at most 8|sriov_totalvfs|8/, 'invalid-input'));
    await assert.rejects(ops.setSriovVfs(roots, [], '0000:01:00.0', 2), refusedWith(/not an SR-IOV physical function/, 'invalid-input'));
  });

  test('vfio-pci: a device a running VM has is not given back to the host', async () => {
    const nvidia = (active: boolean): VmView => vm('nv', active, { hostPci: [{ id: 'hostpci0', address: '0000:02:00.1' }] });
    // 0000:02:00.0 shares group 14 with the running VM's 0000:02:00.1: giving it back would break the group.
    await assert.rejects(ops.releaseVfio(roots, [nvidia(true)], '0000:02:00.0'), refusedWith(/VM "nv" is running with 0000:02:00\.1/));
    assert.equal(readFileSync(join(fx.sysRoot, 'bus/pci/drivers/vfio-pci/unbind'), 'utf8').trim(), '');
    const r = await ops.releaseVfio(roots, [nvidia(false)], '0000:02:00.0');
    assert.ok(r.commands.includes(`echo 0000:02:00.0 > ${fx.sysRoot}/bus/pci/drivers/vfio-pci/unbind`), r.commands.join('\n'));
    assert.ok(r.commands.includes(`echo 0000:02:00.1 > ${fx.sysRoot}/bus/pci/drivers/vfio-pci/unbind`), 'the whole group goes back');
  });

  test('mdev: an instance a running VM has is not removed; an unknown one is not found', async () => {
    const withMdev = (active: boolean): VmView => vm('vgpu', active, { mdevs: [{ id: 'mdev0', uuid: MDEV }] });
    await assert.rejects(ops.removeMdev(roots, [withMdev(true)], MDEV), refusedWith(/cannot remove mdev .*VM "vgpu" is running/));
    await assert.rejects(ops.removeMdev(roots, [], '00000000-0000-4000-8000-000000000000'), refusedWith(/no mdev instance/, 'not-found'));
    const r = await ops.removeMdev(roots, [withMdev(false)], MDEV);
    assert.deepEqual(r.commands, [`echo 1 > ${fx.sysRoot}/bus/mdev/devices/${MDEV}/remove`]);
  });

  test('binding refuses what the host uses; a new mdev gets a UUID', async () => {
    await assert.rejects(ops.bindVfio(roots, [], '0000:00:02.0'), refusedWith(/boot VGA/, 'invalid-input'));
    await assert.rejects(ops.bindVfio(roots, [], '0000:09:00.0'), refusedWith(/no PCI device 0000:09:00\.0/, 'not-found'));
    const r = await ops.createMdev(roots, '0000:04:00.0', 'nvidia-223');
    assert.match(r.uuid ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(readFileSync(join(fx.sysRoot, 'bus/pci/devices/0000:04:00.0/mdev_supported_types/nvidia-223/create'), 'utf8').trim(), r.uuid);
    // The UUID a VM definition names (so `hangar host mdev create PARENT TYPE UUID` makes it again); not one that exists.
    const named = '11111111-2222-4333-8444-555555555555';
    assert.equal((await ops.createMdev(roots, '0000:04:00.0', 'nvidia-222', named)).uuid, named);
    await assert.rejects(ops.createMdev(roots, '0000:04:00.0', 'nvidia-222', MDEV), refusedWith(/mdev 4b20d080.* exists already/, 'already-exists'));
  });

  test('VF MAC/VLAN: a VF that does not exist is refused; ip link\'s own failure is reported', async () => {
    await assert.rejects(ops.setVfConfig(roots, '0000:03:00.0', 99, { vlan: 10 }), refusedWith(/there is no VF 99/, 'invalid-input'));
    await assert.rejects(ops.setVfConfig(roots, '0000:03:00.0', 0, {}), refusedWith(/nothing to set/, 'invalid-input'));
    // The fixture's enp3s0f0 exists only in the copy: the real ip link says so, and the message names the command.
    await assert.rejects(ops.setVfConfig(roots, '0000:03:00.0', 1, { mac: '52:54:00:12:34:56', vlan: 10 }), (e: unknown) => {
      assert.ok(e instanceof HangarError);
      assert.match(e.message, /ip link set dev enp3s0f0 vf 1 mac 52:54:00:12:34:56 vlan 10/);
      assert.match(e.message, /Cannot find device|enp3s0f0/);
      return true;
    });
  });
});
