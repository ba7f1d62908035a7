// A small host device report for the renderer's unit tests and the fake core, modelled on the
// workstation sysfs fixture (tests/fixtures/sysfs/workstation): an AMD GPU sharing IOMMU group 13
// with its HDMI audio and root port, an NVIDIA pair already on vfio-pci (group 14), the boot VGA
// iGPU the host uses, an SR-IOV PF (82599) with VFs each in a group of its own, a Tesla T4 with
// mdev types and one instance, a device whose group link is broken, and USB devices. The
// viability is computed here the way the core does it (simplified), so the fake core can change
// drivers and VFs and answer consistently. Not bundled.
import { isBridge } from '../../../core/common/host-devices.ts';
import type { GroupMemberPlan, HostDeviceReport, PciDevice, PciViability } from '../../../core/common/host-devices.ts';

const MiB = 1024 ** 2;

function pci(address: string, extra: Partial<PciDevice>): PciDevice {
  return { address, iommuGroupPeers: [], bootVga: false, mdevTypes: [], inUseByHost: [], problems: [], numaNode: 0, ...extra };
}

const cls = (code: string, subclassName: string): PciDevice['class'] => ({ code, classId: code.slice(0, 2), subclassId: code.slice(2, 4), progIf: code.slice(4), subclassName });
const flr = { supported: true, methods: ['flr'], flr: true };
const busReset = { supported: true, methods: ['bus'], flr: false };

/** VF i of a PF at bus:00.0 with the 82599's offset 128 and stride 2: 03:10.0, 03:10.2 ... */
export function vfAddress(pf: string, i: number): string {
  const [domain, bus] = pf.split(':');
  const devfn = 128 + 2 * i;
  return `${domain}:${bus}:${(devfn >> 3).toString(16).padStart(2, '0')}.${devfn & 7}`;
}

export function sampleVf(pf: string, i: number, group: number): PciDevice {
  return pci(vfAddress(pf, i), {
    vendorId: '8086', deviceId: '10ed', vendorName: 'Intel Corporation', deviceName: '82599 Ethernet Controller Virtual Function',
    class: cls('020000', 'Ethernet controller'), driver: 'ixgbevf', iommuGroup: group, reset: flr, physfn: pf,
  });
}

export const SAMPLE_MDEV_UUID = '4b20d080-1b54-4048-85b3-a6a62d165c01';
export const SAMPLE_PF = '0000:03:00.0';

function samplePci(numVfs: number): PciDevice[] {
  const vfs = Array.from({ length: numVfs }, (_, i) => sampleVf(SAMPLE_PF, i, 17 + i));
  return [
    pci('0000:00:00.0', { vendorId: '8086', deviceId: '3e30', vendorName: 'Intel Corporation', deviceName: 'Host Bridge/DRAM Registers', class: cls('060000', 'Host bridge'), iommuGroup: 0, numaNode: -1, reset: { supported: false, methods: [] } }),
    pci('0000:00:01.0', { vendorId: '8086', deviceId: '1901', vendorName: 'Intel Corporation', deviceName: 'PCIe Controller (x16)', class: cls('060400', 'PCI bridge'), driver: 'pcieport', iommuGroup: 13, iommuGroupPeers: ['0000:01:00.0', '0000:01:00.1'], numaNode: -1, reset: { supported: false, methods: [] } }),
    pci('0000:00:01.1', { vendorId: '8086', deviceId: '1905', vendorName: 'Intel Corporation', class: cls('060400', 'PCI bridge'), driver: 'pcieport', iommuGroup: 14, iommuGroupPeers: ['0000:02:00.0', '0000:02:00.1'], numaNode: -1, reset: { supported: false, methods: [] } }),
    pci('0000:00:02.0', {
      vendorId: '8086', deviceId: '3e92', vendorName: 'Intel Corporation', deviceName: 'CoffeeLake-S GT2 [UHD Graphics 630]', class: cls('030000', 'VGA compatible controller'),
      driver: 'i915', iommuGroup: 1, numaNode: -1, reset: { supported: true, methods: ['flr', 'bus'], flr: true }, bootVga: true, inUseByHost: ['boot VGA: the host console is displayed on it'],
    }),
    pci('0000:01:00.0', { vendorId: '1002', deviceId: '73bf', vendorName: 'Advanced Micro Devices, Inc. [AMD/ATI]', deviceName: 'Navi 21 [Radeon RX 6800/6800 XT / 6900 XT]', class: cls('030000', 'VGA compatible controller'), driver: 'amdgpu', iommuGroup: 13, iommuGroupPeers: ['0000:00:01.0', '0000:01:00.1'], reset: busReset }),
    pci('0000:01:00.1', { vendorId: '1002', deviceId: 'ab28', vendorName: 'Advanced Micro Devices, Inc. [AMD/ATI]', deviceName: 'Navi 21/23 HDMI/DP Audio Controller', class: cls('040300', 'Audio device'), driver: 'snd_hda_intel', iommuGroup: 13, iommuGroupPeers: ['0000:00:01.0', '0000:01:00.0'], reset: { supported: true, methods: ['flr', 'bus'], flr: true } }),
    pci('0000:02:00.0', { vendorId: '10de', deviceId: '1b80', vendorName: 'NVIDIA Corporation', deviceName: 'GP104 [GeForce GTX 1080]', class: cls('030000', 'VGA compatible controller'), driver: 'vfio-pci', iommuGroup: 14, iommuGroupPeers: ['0000:00:01.1', '0000:02:00.1'], reset: busReset }),
    pci('0000:02:00.1', { vendorId: '10de', deviceId: '10f0', vendorName: 'NVIDIA Corporation', deviceName: 'GP104 High Definition Audio Controller', class: cls('040300', 'Audio device'), driver: 'vfio-pci', iommuGroup: 14, iommuGroupPeers: ['0000:00:01.1', '0000:02:00.0'], reset: busReset }),
    pci(SAMPLE_PF, {
      vendorId: '8086', deviceId: '10fb', vendorName: 'Intel Corporation', deviceName: '82599ES 10-Gigabit SFI/SFP+ Network Connection', class: cls('020000', 'Ethernet controller'),
      driver: 'ixgbe', iommuGroup: 16, reset: { supported: true, methods: ['flr', 'bus'], flr: true }, sriov: { totalVfs: 8, numVfs: numVfs, vfs: vfs.map((v) => v.address) },
      inUseByHost: ['network interface enp3s0f0 is up'],
    }),
    ...vfs,
    pci('0000:04:00.0', {
      vendorId: '10de', deviceId: '1eb8', vendorName: 'NVIDIA Corporation', deviceName: 'TU104GL [Tesla T4]', class: cls('030200', '3D controller'), driver: 'nvidia', iommuGroup: 25, reset: { supported: true, methods: ['flr', 'bus'], flr: true },
      mdevTypes: [
        { id: 'nvidia-222', name: 'GRID T4-1B', availableInstances: 15, deviceApi: 'vfio-pci', description: 'num_heads=4, frl_config=45, framebuffer=1024M, max_resolution=5120x2880, max_instance=16' },
        { id: 'nvidia-223', name: 'GRID T4-2B', availableInstances: 0, deviceApi: 'vfio-pci', description: 'num_heads=4, frl_config=45, framebuffer=2048M, max_resolution=5120x2880, max_instance=8' },
      ],
    }),
    pci('0000:06:00.0', {
      deviceId: '0612', class: cls('010601', 'SATA controller'), numaNode: -1, reset: { supported: true, methods: [] },
      problems: ['cannot read /sys/bus/pci/devices/0000:06:00.0/vendor: missing', '/sys/bus/pci/devices/0000:06:00.0/iommu_group points to ../../../kernel/iommu_groups/99, which is missing (dangling link)'],
    }),
  ];
}


function memberPlan(d: PciDevice): GroupMemberPlan {
  const name = `${d.vendorName ?? 'unknown vendor'} ${d.deviceName ?? 'unknown device'}`;
  const base = { address: d.address, name, ...(d.driver ? { driver: d.driver } : {}) };
  if (isBridge(d)) return { ...base, action: 'bridge', reasons: [] };
  if (d.inUseByHost.length) return { ...base, action: 'blocked', reasons: d.inUseByHost };
  if (!d.driver || d.driver === 'vfio-pci') return { ...base, action: 'ready', reasons: [] };
  return { ...base, action: 'vfio', reasons: [] };
}

/** What assigning a device takes, as the core answers it (simplified: the same rules, shorter words). */
export function viabilityOf(all: readonly PciDevice[], d: PciDevice, assignments: HostDeviceReport['assignments'] = []): PciViability {
  const group = [d, ...d.iommuGroupPeers.map((a) => all.find((x) => x.address === a)).filter((x): x is PciDevice => !!x)]
    .sort((a, b) => a.address.localeCompare(b.address)).map(memberPlan);
  const blockers: string[] = [];
  if (d.iommuGroup === undefined) blockers.push('no IOMMU group: enable the IOMMU (intel_iommu=on iommu=pt on the kernel command line)');
  if (isBridge(d)) blockers.push('a PCI bridge stays with the host');
  blockers.push(...d.inUseByHost.map((r) => `in use by the host: ${r}`));
  for (const m of group) if (m.address !== d.address && m.action === 'blocked') blockers.push(`${m.address} in the same IOMMU group is in use by the host: ${m.reasons.join('; ')}`);
  const warnings: string[] = [];
  if (d.reset?.flr === false) warnings.push('no function-level reset: the device is reset through its bus, which resets the whole slot');
  for (const a of assignments) if (a.kind === 'hostpci' && a.device === d.address) warnings.push(`also assigned in VM "${a.vmName}"${a.running ? ', which runs now' : ''}`);
  return { address: d.address, assignable: blockers.length === 0, blockers, warnings, group };
}

export function withViability(report: Omit<HostDeviceReport, 'viability'>): HostDeviceReport {
  return { ...report, viability: Object.fromEntries(report.pci.map((d) => [d.address, viabilityOf(report.pci, d, report.assignments)])) };
}

export function sampleHostReport(opts: { numVfs?: number } = {}): HostDeviceReport {
  return withViability({
    sysRoot: '/sys',
    pci: samplePci(opts.numVfs ?? 4),
    usb: [
      { name: 'usb1', busnum: 1, devnum: 1, vendorId: '1d6b', productId: '0002', manufacturer: 'Linux xhci-hcd', product: 'xHCI Host Controller', vendorName: 'Linux Foundation', productName: '2.0 root hub', speed: '480', deviceClass: '09', isHub: true, isRootHub: true, problems: [] },
      { name: '1-1', busnum: 1, devnum: 2, portPath: '1', vendorId: '05e3', productId: '0610', manufacturer: 'GenesysLogic', product: 'USB2.1 Hub', vendorName: 'Genesys Logic, Inc.', productName: 'Hub', speed: '480', deviceClass: '09', isHub: true, isRootHub: false, problems: [] },
      { name: '1-1.2', busnum: 1, devnum: 5, portPath: '1.2', vendorId: '046d', productId: 'c52b', manufacturer: 'Logitech', product: 'USB Receiver', vendorName: 'Logitech, Inc.', productName: 'Unifying Receiver', speed: '12', deviceClass: '00', isHub: false, isRootHub: false, problems: [] },
      { name: '2-1', busnum: 2, devnum: 2, portPath: '1', vendorId: '0781', productId: '5583', manufacturer: 'SanDisk', product: 'Ultra Fit', serial: '4C530001230815110544', vendorName: 'SanDisk Corp.', productName: 'Ultra Fit', speed: '5000', deviceClass: '00', isHub: false, isRootHub: false, problems: [] },
    ],
    mdevs: [{ uuid: SAMPLE_MDEV_UUID, parent: '0000:04:00.0', type: 'nvidia-222' }],
    readiness: [
      { id: 'passthrough-iommu', label: 'IOMMU for device assignment', status: 'ok', detail: '21 IOMMU groups; Intel VT-d (dmar0); kernel command line has intel_iommu=on iommu=pt' },
      { id: 'interrupt-remapping', label: 'Interrupt remapping', status: 'ok', detail: 'every VT-d unit supports interrupt remapping' },
      { id: 'vfio-pci', label: 'vfio-pci driver', status: 'ok', detail: 'vfio-pci is registered' },
      { id: 'passthrough-hugepages', label: 'Hugepages for assigned-device guests', status: 'warn', detail: 'no hugepages reserved', fix: 'echo 1024 > /proc/sys/vm/nr_hugepages' },
    ],
    assignments: [],
    memlock: { limitBytes: 8 * MiB, exempt: false },
    privilege: 'sudo',
  });
}
