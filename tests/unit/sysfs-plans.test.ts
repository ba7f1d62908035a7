// Plans of privileged host changes (as data, and as the shell commands shown to users), built
// from a listing of a copy of the workstation fixture.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HangarError } from '../../core/common/errors.ts';
import type { PciDevice } from '../../core/common/host-devices.ts';
import { listPciDevices } from '../../core/node/host/pci-devices.ts';
import { PciIds } from '../../core/node/host/pci-ids.ts';
import {
  planBindVfio, planCreateMdev, planReleaseVfio, planRemoveMdev, planSetNumVfs, planVfConfig, shellCommands,
} from '../../core/node/host/sysfs-plans.ts';
import { copyFixture } from '../helpers/fake-sysfs-kernel.ts';
import type { FixtureCopy } from '../helpers/fake-sysfs-kernel.ts';

const pciIds = new PciIds(join(import.meta.dirname, '../fixtures/pci.ids'));
const UUID = '2b5b1d9e-6c4f-4f3e-9a53-1f2e3d4c5b6a';

function refusal(fn: () => unknown, code: string, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof HangarError, String(e));
    assert.equal(e.code, code);
    assert.match(e.message, message);
    return true;
  });
}

describe('sysfs plans', () => {
  let fx: FixtureCopy;
  let devices: PciDevice[];
  const dev = (a: string) => devices.find((d) => d.address === a) as PciDevice;

  before(async () => {
    fx = await copyFixture();
    devices = await listPciDevices({ sysRoot: fx.sysRoot, procRoot: fx.procRoot, pciIds });
  });
  after(() => fx.cleanup());

  describe('planBindVfio', () => {
    it('binds the GPU and its audio function (not the root port) with driver_override, unbind and drivers_probe', () => {
      assert.deepEqual(planBindVfio(devices, '0000:01:00.0', { vfioLoaded: true }), [
        { op: 'write', path: 'bus/pci/devices/0000:01:00.0/driver_override', value: 'vfio-pci' },
        { op: 'write', path: 'bus/pci/drivers/amdgpu/unbind', value: '0000:01:00.0' },
        { op: 'write', path: 'bus/pci/drivers_probe', value: '0000:01:00.0' },
        { op: 'write', path: 'bus/pci/devices/0000:01:00.1/driver_override', value: 'vfio-pci' },
        { op: 'write', path: 'bus/pci/drivers/snd_hda_intel/unbind', value: '0000:01:00.1' },
        { op: 'write', path: 'bus/pci/drivers_probe', value: '0000:01:00.1' },
      ]);
    });

    it('loads vfio-pci first when it is not loaded', () => {
      const ops = planBindVfio(devices, '0000:03:10.0', { vfioLoaded: false });
      assert.deepEqual(ops[0], { op: 'modprobe', module: 'vfio-pci' });
      assert.equal(ops.length, 4);
    });

    it('a device with no driver is only overridden and probed; a group already on vfio-pci needs nothing', () => {
      const list = devices.map((d) => (d.address === '0000:03:10.2' ? { ...d, driver: undefined } : d));
      assert.deepEqual(planBindVfio(list, '0000:03:10.2', { vfioLoaded: true }).map((o) => o.op === 'write' && o.path), [
        'bus/pci/devices/0000:03:10.2/driver_override', 'bus/pci/drivers_probe',
      ]);
      assert.deepEqual(planBindVfio(devices, '0000:02:00.0', { vfioLoaded: false }), []);
    });

    it('refuses what the host uses, bridges, unknown and malformed addresses', () => {
      refusal(() => planBindVfio(devices, '0000:00:02.0', { vfioLoaded: true }), 'invalid-state', /cannot bind 0000:00:02\.0 to vfio-pci: .*boot VGA/);
      refusal(() => planBindVfio(devices, '0000:03:00.0', { vfioLoaded: true }), 'invalid-state', /enp3s0f0 is up/);
      refusal(() => planBindVfio(devices, '0000:00:01.0', { vfioLoaded: true }), 'invalid-state', /PCI bridge/);
      refusal(() => planBindVfio(devices, '0000:42:00.0', { vfioLoaded: true }), 'not-found', /no PCI device 0000:42:00\.0/);
      refusal(() => planBindVfio(devices, '../../etc', { vfioLoaded: true }), 'invalid-input', /not a PCI address/);
    });
  });

  it('planReleaseVfio unbinds each vfio-pci group member, clears driver_override and reprobes', () => {
    assert.deepEqual(planReleaseVfio(devices, '0000:02:00.1'), [
      { op: 'write', path: 'bus/pci/drivers/vfio-pci/unbind', value: '0000:02:00.1' },
      { op: 'write', path: 'bus/pci/devices/0000:02:00.1/driver_override', value: '\n' },
      { op: 'write', path: 'bus/pci/drivers_probe', value: '0000:02:00.1' },
      { op: 'write', path: 'bus/pci/drivers/vfio-pci/unbind', value: '0000:02:00.0' },
      { op: 'write', path: 'bus/pci/devices/0000:02:00.0/driver_override', value: '\n' },
      { op: 'write', path: 'bus/pci/drivers_probe', value: '0000:02:00.0' },
    ]);
    assert.deepEqual(planReleaseVfio(devices, '0000:01:00.0'), [], 'nothing on vfio-pci');
  });

  describe('planSetNumVfs', () => {
    const pf = () => dev('0000:03:00.0');
    const path = 'bus/pci/devices/0000:03:00.0/sriov_numvfs';

    it('goes through 0 between two nonzero counts (the kernel refuses nonzero to nonzero)', () => {
      assert.deepEqual(planSetNumVfs(pf(), 4), [{ op: 'write', path, value: '0' }, { op: 'write', path, value: '4' }]);
      assert.deepEqual(planSetNumVfs(pf(), 0), [{ op: 'write', path, value: '0' }]);
      assert.deepEqual(planSetNumVfs(pf(), 8), [], 'already 8');
      const none = { ...pf(), sriov: { totalVfs: 8, numVfs: 0, vfs: [] } };
      assert.deepEqual(planSetNumVfs(none, 2), [{ op: 'write', path, value: '2' }]);
    });

    it('refuses counts outside 0..sriov_totalvfs, VFs and devices without SR-IOV', () => {
      refusal(() => planSetNumVfs(pf(), 9), 'invalid-input', /supports 0 to 8 VFs \(sriov_totalvfs = 8\), not 9/);
      refusal(() => planSetNumVfs(pf(), -1), 'invalid-input', /sriov_totalvfs/);
      refusal(() => planSetNumVfs(pf(), 1.5), 'invalid-input', /sriov_totalvfs/);
      refusal(() => planSetNumVfs(dev('0000:03:10.0'), 1), 'invalid-input', /is a virtual function/);
      refusal(() => planSetNumVfs(dev('0000:01:00.0'), 1), 'invalid-input', /not an SR-IOV physical function \(it has no sriov_totalvfs\)/);
    });
  });

  describe('mdevs', () => {
    it('creates through the type\'s create file and removes through the instance\'s remove file', () => {
      assert.deepEqual(planCreateMdev(dev('0000:04:00.0'), 'nvidia-222', UUID), [
        { op: 'write', path: `bus/pci/devices/0000:04:00.0/mdev_supported_types/nvidia-222/create`, value: UUID },
      ]);
      assert.deepEqual(planRemoveMdev(UUID), [{ op: 'write', path: `bus/mdev/devices/${UUID}/remove`, value: '1' }]);
    });

    it('refuses unknown types (listing the real ones), exhausted types and bad UUIDs', () => {
      refusal(() => planCreateMdev(dev('0000:04:00.0'), 'nvidia-999', UUID), 'invalid-input', /has no mdev type "nvidia-999"/);
      try {
        planCreateMdev(dev('0000:04:00.0'), 'nvidia-999', UUID);
      } catch (e) {
        assert.match((e as HangarError).hint ?? '', /nvidia-222 \(GRID T4-1B\), nvidia-223 \(GRID T4-2B\)/);
      }
      const full = { ...dev('0000:04:00.0'), mdevTypes: dev('0000:04:00.0').mdevTypes.map((t) => ({ ...t, availableInstances: 0 })) };
      refusal(() => planCreateMdev(full, 'nvidia-222', UUID), 'invalid-state', /no free instances of mdev type nvidia-222 \(GRID T4-1B\)/);
      refusal(() => planCreateMdev(dev('0000:03:00.0'), 'nvidia-222', UUID), 'invalid-input', /has no mdev type/);
      refusal(() => planCreateMdev(dev('0000:04:00.0'), 'nvidia-222', UUID.toUpperCase()), 'invalid-input', /not an mdev UUID/);
      refusal(() => planRemoveMdev('../../x'), 'invalid-input', /not an mdev UUID/);
    });
  });

  describe('planVfConfig', () => {
    it('sets a VF\'s MAC and VLAN with ip link', () => {
      assert.deepEqual(planVfConfig('enp3s0f0', 0, { mac: '52:54:00:AA:BB:CC', vlan: 10 }), [
        { op: 'ip', args: ['link', 'set', 'dev', 'enp3s0f0', 'vf', '0', 'mac', '52:54:00:aa:bb:cc', 'vlan', '10'] },
      ]);
      assert.deepEqual(planVfConfig('eth2', 3, { vlan: 0 }), [{ op: 'ip', args: ['link', 'set', 'dev', 'eth2', 'vf', '3', 'vlan', '0'] }]);
    });

    it('refuses bad names, indices, MACs and VLANs, and an empty change', () => {
      refusal(() => planVfConfig('eth0; reboot', 0, { vlan: 1 }), 'invalid-input', /not a network interface name/);
      refusal(() => planVfConfig('a-very-long-interface', 0, { vlan: 1 }), 'invalid-input', /not a network interface name/);
      refusal(() => planVfConfig('..', 0, { vlan: 1 }), 'invalid-input', /not a network interface name/);
      refusal(() => planVfConfig('eth2', -1, { vlan: 1 }), 'invalid-input', /VF index/);
      refusal(() => planVfConfig('eth2', 0, { mac: '01:00:5e:00:00:01' }), 'invalid-input', /not a unicast MAC/);
      refusal(() => planVfConfig('eth2', 0, { mac: '52:54:00:aa:bb' }), 'invalid-input', /not a unicast MAC/);
      refusal(() => planVfConfig('eth2', 0, { vlan: 4096 }), 'invalid-input', /VLAN 4096 is out of range/);
      refusal(() => planVfConfig('eth2', 0, {}), 'invalid-input', /nothing to set/);
    });
  });

  it('shellCommands gives the exact commands a root user could paste', () => {
    const ops = [
      { op: 'modprobe', module: 'vfio-pci' } as const,
      ...planBindVfio(devices, '0000:01:00.0', { vfioLoaded: true }).slice(0, 3),
      ...planReleaseVfio(devices, '0000:02:00.0').slice(1, 2),
      ...planVfConfig('eth2', 0, { mac: '52:54:00:aa:bb:cc', vlan: 10 }),
    ];
    assert.deepEqual(shellCommands(ops, '/sys'), [
      'modprobe vfio-pci',
      'echo vfio-pci > /sys/bus/pci/devices/0000:01:00.0/driver_override',
      'echo 0000:01:00.0 > /sys/bus/pci/drivers/amdgpu/unbind',
      'echo 0000:01:00.0 > /sys/bus/pci/drivers_probe',
      'echo > /sys/bus/pci/devices/0000:02:00.0/driver_override',
      'ip link set dev eth2 vf 0 mac 52:54:00:aa:bb:cc vlan 10',
    ]);
    // Roots with spaces or quotes are quoted for the shell.
    assert.deepEqual(shellCommands(planRemoveMdev(UUID), "/tmp/my sys/it's/"), [`echo 1 > '/tmp/my sys/it'\\''s/bus/mdev/devices/${UUID}/remove'`]);
  });
});
