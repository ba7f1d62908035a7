// `hangar host devices|usb|readiness`: the host's PCI and USB devices as device assignment sees
// them (IOMMU groups, reset, SR-IOV, what the host itself uses), and what passthrough still needs.
// Read straight from sysfs (HANGAR_SYSFS_ROOT / HANGAR_PROCFS_ROOT select fixture trees).
import { HangarError } from '../../common/errors.ts';
import { formatDoctorReport } from '../host/doctor.ts';
import { passthroughReadiness } from '../host/passthrough-readiness.ts';
import { listPciDevices } from '../host/pci-devices.ts';
import type { PciDevice } from '../host/pci-devices.ts';
import { listUsbDevices } from '../host/usb-devices.ts';
import { table } from './table.ts';

export const HOST_USAGE = `Usage:
  hangar host devices [--json]     PCI devices: class, names, driver, IOMMU group (and the group's other
                                   members), reset, SR-IOV VFs, and what the host itself uses them for
  hangar host usb [--json]         USB devices: bus, port, vendor:product, names
  hangar host readiness [--json]   what PCI passthrough needs: IOMMU, interrupt remapping, vfio-pci, hugepages
  (HANGAR_SYSFS_ROOT and HANGAR_PROCFS_ROOT read another sysfs/procfs tree, e.g. a test fixture)
`;

function roots(env: NodeJS.ProcessEnv): { sysRoot: string; procRoot: string } {
  return { sysRoot: env.HANGAR_SYSFS_ROOT || '/sys', procRoot: env.HANGAR_PROCFS_ROOT || '/proc' };
}

function pciRow(d: PciDevice): string[] {
  const names = [d.vendorName ?? d.vendorId ?? '?', d.deviceName ?? d.deviceId ?? '?'].join(' ');
  const group = d.iommuGroup === undefined ? '-' : `${d.iommuGroup}${d.iommuGroupPeers.length ? ` (+${d.iommuGroupPeers.join(', ')})` : ''}`;
  const sriov = d.sriov ? `PF ${d.sriov.numVfs ?? '?'}/${d.sriov.totalVfs ?? '?'} VFs` : d.physfn ? `VF of ${d.physfn}` : '';
  const reset = d.reset ? (d.reset.flr ? 'flr' : d.reset.methods.join('/') || (d.reset.supported ? 'yes' : 'no')) : '?';
  const notes = [...d.inUseByHost.map((r) => `in use: ${r}`), ...d.problems.map((p) => `unreadable: ${p}`)].join('; ');
  return [d.address, d.class?.subclassName ?? d.class?.className ?? d.class?.code ?? '?', names, d.driver ?? '-', group, reset, sriov, notes];
}

export async function hostCommand(sub: string | undefined, values: Record<string, unknown>, print: (s: string) => void, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  if (!sub || values.help || sub === 'help') {
    print(HOST_USAGE);
    return sub ? 0 : 2;
  }
  const r = roots(env);
  if (sub === 'devices') {
    const devs = await listPciDevices(r);
    if (values.json) print(JSON.stringify(devs, null, 2));
    else print(devs.length ? table([['ADDRESS', 'CLASS', 'DEVICE', 'DRIVER', 'IOMMU GROUP', 'RESET', 'SR-IOV', 'NOTES'], ...devs.map(pciRow)]) : `no PCI devices under ${r.sysRoot}/bus/pci/devices`);
    return 0;
  }
  if (sub === 'usb') {
    const devs = (await listUsbDevices(r)).filter((d) => !d.isRootHub);
    if (values.json) print(JSON.stringify(devs, null, 2));
    else {
      print(devs.length ? table([['BUS', 'PORT', 'ID', 'DEVICE'], ...devs.map((d) => [String(d.busnum ?? '?'), d.portPath ?? '-', `${d.vendorId ?? '?'}:${d.productId ?? '?'}`,
        [d.vendorName ?? d.manufacturer, d.productName ?? d.product].filter(Boolean).join(' ') + (d.isHub ? ' (hub)' : '')])]) : `no USB devices under ${r.sysRoot}/bus/usb/devices`);
    }
    return 0;
  }
  if (sub === 'readiness') {
    const checks = await passthroughReadiness(r);
    print(values.json ? JSON.stringify(checks, null, 2) : formatDoctorReport({ checks }).trimEnd());
    return 0;
  }
  throw new HangarError('invalid-input', `unknown subcommand "host ${sub}"`, 'use hangar host devices|usb|readiness');
}
