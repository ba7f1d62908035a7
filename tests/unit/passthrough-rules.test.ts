// Viability rules for PCI passthrough on a copy of the workstation fixture: which devices can
// be given to a guest, what happens to their IOMMU group, and why not.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { HostAssignment, PciDevice } from '../../core/common/host-devices.ts';
import { pciViability, viabilityMap } from '../../core/node/host/passthrough-rules.ts';
import { listPciDevices } from '../../core/node/host/pci-devices.ts';
import { PciIds } from '../../core/node/host/pci-ids.ts';
import { copyFixture } from '../helpers/fake-sysfs-kernel.ts';
import type { FixtureCopy } from '../helpers/fake-sysfs-kernel.ts';

const pciIds = new PciIds(join(import.meta.dirname, '../fixtures/pci.ids'));

describe('pciViability on the workstation fixture', () => {
  let fx: FixtureCopy;
  let devices: PciDevice[];
  /** The listing with one device changed. */
  const changed = (address: string, patch: Partial<PciDevice>) => devices.map((d) => (d.address === address ? { ...d, ...patch } : d));

  before(async () => {
    fx = await copyFixture();
    devices = await listPciDevices({ sysRoot: fx.sysRoot, procRoot: fx.procRoot, pciIds });
  });
  after(() => fx.cleanup());

  it('a GPU is assignable; its HDMI audio goes to vfio-pci with it and the root port stays with the host', () => {
    const v = pciViability('0000:01:00.0', devices);
    assert.equal(v.assignable, true);
    assert.deepEqual(v.blockers, []);
    assert.deepEqual(v.group.map((m) => [m.address, m.action, m.driver]), [
      ['0000:01:00.0', 'vfio', 'amdgpu'],
      ['0000:00:01.0', 'bridge', 'pcieport'],
      ['0000:01:00.1', 'vfio', 'snd_hda_intel'],
    ]);
    assert.match(v.group[2].name, /HDMI\/DP Audio/);
    assert.equal(v.warnings.length, 2);
    assert.match(v.warnings[0], /^shares IOMMU group 13 with 0000:01:00\.1 \(.*Audio.*\): it moves from snd_hda_intel to vfio-pci too/);
    assert.match(v.warnings[1], /no function-level reset \(FLR\): the kernel resets it by bus/);
  });

  it('a peer given to the same VM is no news', () => {
    const v = pciViability('0000:01:00.0', devices, { alsoAssigned: ['0000:01:00.1'] });
    assert.equal(v.assignable, true);
    assert.equal(v.warnings.length, 1);
    assert.match(v.warnings[0], /FLR/);
  });

  it('a group already on vfio-pci is ready', () => {
    const v = pciViability('0000:02:00.0', devices);
    assert.equal(v.assignable, true);
    assert.deepEqual(v.group.map((m) => m.action), ['ready', 'bridge', 'ready']);
  });

  it('the boot VGA device is blocked: the host console runs on it', () => {
    const v = pciViability('0000:00:02.0', devices);
    assert.equal(v.assignable, false);
    assert.equal(v.blockers.length, 1);
    assert.match(v.blockers[0], /^the host uses 0000:00:02\.0: boot VGA.*firmware setup/);
    assert.equal(v.group[0].action, 'blocked');
  });

  it('an SR-IOV physical function with VFs is blocked (its interface is up, unbinding destroys the VFs)', () => {
    const v = pciViability('0000:03:00.0', devices);
    assert.equal(v.assignable, false);
    assert.deepEqual(v.blockers, [
      'the host uses 0000:03:00.0: network interface enp3s0f0 is up (take it down first: ip link set dev enp3s0f0 down)',
      'the host uses 0000:03:00.0: it is an SR-IOV physical function with 8 virtual functions, which unbinding it would destroy ' +
        '(assign one of its VFs instead, or set its number of VFs to 0 first)',
    ]);
    // Even with its interface down, the VFs block it.
    const down = pciViability('0000:03:00.0', changed('0000:03:00.0', { inUseByHost: [] }));
    assert.equal(down.blockers.length, 1);
    assert.match(down.blockers[0], /SR-IOV physical function with 8/);
  });

  it('a virtual function is assignable on its own: a group of one, FLR, no warnings', () => {
    const v = pciViability('0000:03:10.0', devices);
    assert.equal(v.assignable, true);
    assert.deepEqual(v.group.map((m) => [m.address, m.action]), [['0000:03:10.0', 'vfio']]);
    assert.deepEqual(v.warnings, []);
  });

  it('a group peer the host uses blocks the device, naming the peer and why', () => {
    const list = changed('0000:01:00.1', { inUseByHost: ['block device sdz1 is mounted at /mnt'] });
    for (const alsoAssigned of [[], ['0000:01:00.1']]) {
      const v = pciViability('0000:01:00.0', list, { alsoAssigned });
      assert.equal(v.assignable, false);
      assert.equal(v.blockers.length, 1);
      assert.match(v.blockers[0], /^shares IOMMU group 13 with 0000:01:00\.1 \(.*Audio.*\), which the host uses: block device sdz1 is mounted at \/mnt \(unmount it first\)$/);
      assert.deepEqual(v.group[2].action, 'blocked');
    }
  });

  it('bridges and host bridges are never assignable', () => {
    const port = pciViability('0000:00:01.0', devices);
    assert.equal(port.assignable, false);
    assert.match(port.blockers[0], /is a PCI bridge: bridges stay with the host/);
    assert.equal(port.group[0].action, 'bridge');
    assert.match(pciViability('0000:00:00.0', devices).blockers[0], /is a host bridge/);
    // A bridge bound to a driver that does not let VFIO share its group blocks its peers.
    const list = changed('0000:00:01.0', { driver: 'lpc_ich' });
    const v = pciViability('0000:01:00.0', list);
    assert.equal(v.assignable, false);
    assert.match(v.blockers[0], /0000:00:01\.0 .*bridge bound to lpc_ich/);
  });

  it('an unknown address names hangar host devices', () => {
    const v = pciViability('0000:42:00.0', devices);
    assert.equal(v.assignable, false);
    assert.match(v.blockers[0], /no PCI device 0000:42:00\.0 .*hangar host devices/);
    assert.deepEqual(v.group, []);
  });

  it('no IOMMU group means the IOMMU is off, pointing at the readiness check (which has the fix once, not per device)', () => {
    const v = pciViability('0000:03:10.0', changed('0000:03:10.0', { iommuGroup: undefined }));
    assert.equal(v.assignable, false);
    assert.match(v.blockers[0], /0000:03:10\.0 has no IOMMU group: the IOMMU is off .*hangar host readiness/);
  });

  it('unreadable devices are blocked with what could not be read', () => {
    assert.match(pciViability('0000:05:00.0', devices).blockers[0], /^parts of 0000:05:00\.0 could not be read: .*class holds "garbage!"/);
    const dangling = pciViability('0000:06:00.0', devices);
    assert.equal(dangling.blockers.length, 1, 'a dangling group link is a read problem, not a missing IOMMU');
    assert.match(dangling.blockers[0], /dangling link/);
  });

  it('no reset at all, and mediated device types, are warnings', () => {
    const v = pciViability('0000:03:10.0', changed('0000:03:10.0', { reset: { supported: false, methods: [] } }));
    assert.equal(v.assignable, true);
    assert.match(v.warnings[0], /no reset the kernel can use/);
    const t4 = pciViability('0000:04:00.0', devices);
    assert.equal(t4.assignable, true);
    assert.match(t4.warnings[0], /mediated devices \(nvidia-222, nvidia-223\)/);
  });

  describe('other VMs', () => {
    const assignment = (device: string, running: boolean, vmId = 'vm-b'): HostAssignment =>
      ({ device, kind: 'hostpci', vmId, vmName: 'gaming', deviceId: 'hostpci0', running });

    it('assigned to another running VM: blocked, naming the VM', () => {
      const v = pciViability('0000:03:10.0', devices, { assignments: [assignment('0000:03:10.0', true)], forVmId: 'vm-a' });
      assert.equal(v.assignable, false);
      assert.deepEqual(v.blockers, ['0000:03:10.0 is assigned to VM "gaming" (hostpci0), which is running: stop that VM first']);
    });

    it('in another stopped VM\'s definition: a warning', () => {
      const v = pciViability('0000:03:10.0', devices, { assignments: [assignment('0000:03:10.0', false)], forVmId: 'vm-a' });
      assert.equal(v.assignable, true);
      assert.match(v.warnings[0], /also in VM "gaming"'s definition \(hostpci0\): only one of the two can run at a time/);
    });

    it('the VM\'s own assignment and other kinds of assignment are no conflict', () => {
      const own = pciViability('0000:03:10.0', devices, { assignments: [assignment('0000:03:10.0', true, 'vm-a')], forVmId: 'vm-a' });
      assert.deepEqual([own.assignable, own.warnings], [true, []]);
      const usb = pciViability('0000:03:10.0', devices, { assignments: [{ ...assignment('0000:03:10.0', true), kind: 'usbhost' }] });
      assert.equal(usb.assignable, true);
    });

    it('a group peer in another running VM blocks; in the same VM it does not', () => {
      const opts = { assignments: [assignment('0000:01:00.1', true)], forVmId: 'vm-a' };
      const v = pciViability('0000:01:00.0', devices, opts);
      assert.equal(v.assignable, false);
      assert.match(v.blockers[0], /shares IOMMU group 13 with 0000:01:00\.1 .*, which VM "gaming" \(hostpci0\) is using: stop that VM first/);
      const same = pciViability('0000:01:00.0', devices, { ...opts, assignments: [assignment('0000:01:00.1', true, 'vm-a')] });
      assert.equal(same.assignable, true);
    });
  });

  it('viabilityMap covers every device', () => {
    const m = viabilityMap(devices);
    assert.deepEqual(Object.keys(m), devices.map((d) => d.address));
    assert.deepEqual(Object.values(m).filter((v) => v.assignable).map((v) => v.address), [
      '0000:01:00.0', '0000:01:00.1', '0000:02:00.0', '0000:02:00.1',
      '0000:03:10.0', '0000:03:10.2', '0000:03:10.4', '0000:03:10.6', '0000:03:11.0', '0000:03:11.2', '0000:03:11.4', '0000:03:11.6',
      '0000:04:00.0',
    ]);
  });
});
