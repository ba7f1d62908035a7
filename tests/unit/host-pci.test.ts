// Host PCI discovery against the committed fixture tree tests/fixtures/sysfs/workstation (an
// Intel desktop with an SR-IOV NIC, two GPUs with HDMI audio, a vGPU card, NVMe + SATA storage
// and deliberately broken devices) and the pci.ids sample in tests/fixtures/pci.ids.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseIdsDatabase } from '../../core/node/host/ids-database.ts';
import { listPciDevices } from '../../core/node/host/pci-devices.ts';
import type { PciDevice } from '../../core/node/host/pci-devices.ts';
import { PciIds, SYSTEM_PCI_IDS } from '../../core/node/host/pci-ids.ts';

const FIXTURES = join(import.meta.dirname, '../fixtures');
const sysRoot = join(FIXTURES, 'sysfs/workstation');
const procRoot = join(FIXTURES, 'proc/workstation');
const pciIds = new PciIds(join(FIXTURES, 'pci.ids'));

describe('pci.ids', () => {
  it('names vendors, devices, subsystems and classes from the sample database', async () => {
    assert.equal(await pciIds.vendorName('0x8086'), 'Intel Corporation');
    assert.equal(await pciIds.deviceName('8086', '10fb'), '82599ES 10-Gigabit SFI/SFP+ Network Connection');
    assert.equal(await pciIds.subsystemName('8086', '10fb', '8086', '0003'), 'Ethernet Server Adapter X520-2');
    assert.deepEqual(await pciIds.classNames('0x0c0330'), { className: 'Serial bus controller', subclassName: 'USB controller', progIfName: 'XHCI' });
    assert.deepEqual(await pciIds.classNames('040300'), { className: 'Multimedia controller', subclassName: 'Audio device', progIfName: undefined });
    assert.equal(await pciIds.vendorName('1b21'), undefined, 'a vendor not in the sample');
  });

  it('keeps class sub-entries apart from vendor devices and skips unknown sections', () => {
    const t = parseIdsDatabase('# c\n8086  Intel\n\t1234  Dev\n\t\t8086 0001  Sub\nC 03  Display\n\t00  VGA\n\t\t00  VGA controller\nX 01  Other\n\t99  Stray\n');
    assert.equal(t.vendors.get('8086')?.devices.get('1234')?.subsystems.get('8086:0001'), 'Sub');
    assert.equal(t.classes.get('03')?.subclasses.get('00')?.progIfs.get('00'), 'VGA controller');
    assert.equal(t.vendors.get('8086')?.devices.size, 1);
    assert.equal(t.classes.size, 1);
  });

  it('a missing database gives undefined names and never throws', async () => {
    const ids = new PciIds('/nonexistent/pci.ids');
    assert.equal(await ids.vendorName('8086'), undefined);
    assert.deepEqual(await ids.classNames('030000'), { className: undefined, subclassName: undefined, progIfName: undefined });
    assert.match(ids.loadError ?? '', /ENOENT/);
  });

  it('reads the system database (pci.ids package)', { skip: !existsSync(SYSTEM_PCI_IDS) && `${SYSTEM_PCI_IDS} absent` }, async () => {
    const ids = new PciIds();
    assert.equal(await ids.vendorName('8086'), 'Intel Corporation');
    assert.equal((await ids.classNames('020000')).className, 'Network controller');
  });
});

describe('listPciDevices on the workstation fixture', () => {
  let devices: PciDevice[];
  const dev = (address: string): PciDevice => {
    const d = devices.find((x) => x.address === address);
    assert.ok(d, `device ${address} listed`);
    return d;
  };

  before(async () => {
    devices = await listPciDevices({ sysRoot, procRoot, pciIds });
  });

  it('lists every device, sorted by address, with ids, names, class and driver', () => {
    assert.equal(devices.length, 26);
    assert.deepEqual(devices.map((d) => d.address), [...devices.map((d) => d.address)].sort());
    const nic = dev('0000:03:00.0');
    assert.equal(nic.vendorId, '8086');
    assert.equal(nic.deviceId, '10fb');
    assert.equal(nic.vendorName, 'Intel Corporation');
    assert.equal(nic.subsystemName, 'Ethernet Server Adapter X520-2');
    assert.deepEqual(nic.class, { code: '020000', classId: '02', subclassId: '00', progIf: '00', className: 'Network controller', subclassName: 'Ethernet controller', progIfName: undefined });
    assert.equal(nic.driver, 'ixgbe');
    assert.equal(nic.numaNode, 0);
    assert.deepEqual(nic.problems, []);
    assert.equal(dev('0000:00:00.0').driver, undefined, 'no driver bound is not a problem');
    assert.deepEqual(dev('0000:00:00.0').problems, []);
    assert.equal(dev('0000:00:00.0').numaNode, -1);
  });

  it('a GPU shares its IOMMU group with its HDMI audio function (and the bridge above)', () => {
    const gpu = dev('0000:01:00.0');
    assert.equal(gpu.class?.classId, '03');
    assert.equal(gpu.iommuGroup, 13);
    assert.deepEqual(gpu.iommuGroupPeers, ['0000:00:01.0', '0000:01:00.1']);
    assert.equal(dev('0000:01:00.1').class?.code, '040300');
    assert.deepEqual(dev('0000:01:00.1').iommuGroupPeers, ['0000:00:01.0', '0000:01:00.0']);
    const other = dev('0000:02:00.0');
    assert.equal(other.driver, 'vfio-pci');
    assert.equal(other.bootVga, false);
    assert.deepEqual(other.inUseByHost, []);
    assert.deepEqual(other.iommuGroupPeers, ['0000:00:01.1', '0000:02:00.1']);
  });

  it('the boot VGA device is in use by the host', () => {
    const igpu = dev('0000:00:02.0');
    assert.equal(igpu.bootVga, true);
    assert.equal(igpu.inUseByHost.length, 1);
    assert.match(igpu.inUseByHost[0], /boot VGA/);
  });

  it('an SR-IOV physical function lists its 8 VFs; each VF names its PF and has a group of its own', () => {
    const pf = dev('0000:03:00.0');
    assert.deepEqual(pf.sriov, {
      totalVfs: 8, numVfs: 8,
      vfs: ['0000:03:10.0', '0000:03:10.2', '0000:03:10.4', '0000:03:10.6', '0000:03:11.0', '0000:03:11.2', '0000:03:11.4', '0000:03:11.6'],
    });
    assert.equal(pf.physfn, undefined);
    const groups = new Set<number | undefined>();
    for (const a of pf.sriov?.vfs ?? []) {
      const vf = dev(a);
      assert.equal(vf.physfn, '0000:03:00.0');
      assert.equal(vf.driver, 'ixgbevf');
      assert.equal(vf.sriov, undefined);
      assert.deepEqual(vf.iommuGroupPeers, []);
      assert.deepEqual(vf.reset, { supported: true, methods: ['flr'], flr: true });
      groups.add(vf.iommuGroup);
    }
    assert.equal(groups.size, 8);
    assert.ok(!groups.has(pf.iommuGroup));
  });

  it('a NIC whose interface is up is in use by the host, naming the interface; a down VF interface is not', () => {
    assert.deepEqual(dev('0000:03:00.0').inUseByHost, ['network interface enp3s0f0 is up']);
    assert.deepEqual(dev('0000:03:10.0').inUseByHost, []);
    // The root port above the NIC does not inherit its child's interface.
    assert.deepEqual(dev('0000:00:1c.0').inUseByHost, []);
  });

  it('storage with mounted file systems or swap is in use by the host (partitions, LVM, USB disks)', () => {
    assert.deepEqual(dev('0000:00:17.0').inUseByHost, ['block device sda1 is mounted at /boot/efi', 'block device sda2 is mounted at /']);
    assert.deepEqual(dev('0000:08:00.0').inUseByHost, [
      'block device nvme0n1p1 (through /dev/mapper/vg0-home) is mounted at /home',
      'block device nvme0n1p2 is in use as swap',
    ]);
    // A USB stick on the xHCI controller; the mount point's \040 escape is decoded.
    assert.deepEqual(dev('0000:00:14.0').inUseByHost, ['block device sdb1 is mounted at /media/user/USB STICK']);
  });

  it('reports reset support from reset_method, or from the reset file on older kernels', () => {
    assert.deepEqual(dev('0000:01:00.0').reset, { supported: true, methods: ['bus'], flr: false });
    assert.deepEqual(dev('0000:05:00.0').reset, { supported: true, methods: [] });
    assert.deepEqual(dev('0000:00:17.0').reset, { supported: false, methods: [] });
  });

  it('lists mdev types with their names and available instances', () => {
    const t4 = dev('0000:04:00.0');
    assert.deepEqual(t4.mdevTypes.map((t) => [t.id, t.name, t.availableInstances, t.deviceApi]), [
      ['nvidia-222', 'GRID T4-1B', 16, 'vfio-pci'],
      ['nvidia-223', 'GRID T4-2B', 8, 'vfio-pci'],
    ]);
    assert.deepEqual(dev('0000:03:00.0').mdevTypes, []);
  });

  it('broken files leave the field undefined and say what could not be read', () => {
    const garbage = dev('0000:05:00.0');
    assert.equal(garbage.class, undefined);
    assert.equal(garbage.vendorId, '1b21');
    assert.equal(garbage.problems.length, 1);
    assert.match(garbage.problems[0], /0000:05:00\.0\/class holds "garbage!"/);

    const noVendor = dev('0000:06:00.0');
    assert.equal(noVendor.vendorId, undefined);
    assert.equal(noVendor.vendorName, undefined);
    assert.equal(noVendor.deviceId, '0612');
    assert.equal(noVendor.iommuGroup, undefined);
    assert.equal(noVendor.problems.length, 2);
    assert.match(noVendor.problems[0], /vendor: missing/);
    assert.match(noVendor.problems[1], /iommu_group points to .*iommu_groups\/99.*dangling/);

    const badNuma = dev('0000:07:00.0');
    assert.equal(badNuma.numaNode, undefined);
    assert.match(badNuma.problems.join('\n'), /numa_node: is a directory/);
    assert.equal(badNuma.iommuGroup, 27, 'the other fields are still read');
  });

  it('without readable mounts, storage devices say so and the others are unaffected', async () => {
    const list = await listPciDevices({ sysRoot, procRoot: '/nonexistent', pciIds });
    const ahci = list.find((d) => d.address === '0000:00:17.0');
    assert.deepEqual(ahci?.inUseByHost, []);
    assert.match(ahci?.problems.join('\n') ?? '', /cannot read \/nonexistent\/mounts/);
    assert.deepEqual(list.find((d) => d.address === '0000:03:00.0')?.problems, []);
  });
});

describe('listPciDevices on an empty root', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'hangar-pci-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('a host without /sys/bus/pci has no devices', async () => {
    assert.deepEqual(await listPciDevices({ sysRoot: root, procRoot: root, pciIds }), []);
  });
});
