// Privileged host changes as data: the sysfs writes (and the one modprobe / ip call) that bind
// devices to vfio-pci, create VFs and mdevs. Pure: plans are built from a device listing, shown
// to the user as shell commands, and run only by host-helper.ts after validation.

import { HUGEPAGE_KIB } from '../../common/cpu-memory.ts';
import { HangarError } from '../../common/errors.ts';
import type { PciDevice } from '../../common/host-devices.ts';
import { PCI_ADDRESS_RE } from '../../common/model.ts';
import { shellQuote } from '../../common/shell.ts';
import { isBridge } from '../../common/host-devices.ts';
import { pciViability } from './passthrough-rules.ts';

export type HostOp =
  | { op: 'write'; /** Relative to the sysfs root, e.g. bus/pci/devices/0000:01:00.0/driver_override. */ path: string; value: string }
  | { op: 'modprobe'; module: 'vfio-pci' }
  | { op: 'ip'; args: string[] };

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;
export const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
export const MDEV_TYPE_RE = /^[A-Za-z0-9_.-]{1,64}$/;

const devAttr = (address: string, attr: string) => `bus/pci/devices/${address}/${attr}`;
const write = (path: string, value: string): HostOp => ({ op: 'write', path, value });

function find(devices: PciDevice[], address: string): PciDevice {
  if (!PCI_ADDRESS_RE.test(address)) {
    throw new HangarError('invalid-input', `"${address}" is not a PCI address`, 'a PCI address looks like 0000:03:00.0, as hangar host devices lists it');
  }
  const d = devices.find((x) => x.address === address);
  if (!d) throw new HangarError('not-found', `no PCI device ${address} on this host`, 'see hangar host devices');
  return d;
}

/** The device and its non-bridge group peers. */
function groupOf(devices: PciDevice[], dev: PciDevice): PciDevice[] {
  const peers = dev.iommuGroupPeers.map((a) => devices.find((x) => x.address === a)).filter((x): x is PciDevice => !!x && !isBridge(x));
  return [dev, ...peers];
}

/**
 * Move a device and the rest of its IOMMU group to vfio-pci. driver_override (not new_id) so
 * only these functions move, not every device with the same ids. Refuses what the host uses.
 */
export function planBindVfio(devices: PciDevice[], address: string, opts: { vfioLoaded: boolean }): HostOp[] {
  const dev = find(devices, address);
  const v = pciViability(address, devices, {});
  if (!v.assignable) throw new HangarError('invalid-state', `cannot bind ${address} to vfio-pci: ${v.blockers.join('; ')}`);
  const ops: HostOp[] = [];
  for (const d of groupOf(devices, dev).filter((x) => x.driver !== 'vfio-pci')) {
    ops.push(write(devAttr(d.address, 'driver_override'), 'vfio-pci'));
    if (d.driver) ops.push(write(`bus/pci/drivers/${d.driver}/unbind`, d.address));
    ops.push(write('bus/pci/drivers_probe', d.address));
  }
  if (ops.length && !opts.vfioLoaded) ops.unshift({ op: 'modprobe', module: 'vfio-pci' });
  return ops;
}

/**
 * Give the group's vfio-pci devices back to their host drivers (the kernel picks them on probe).
 * The whole group: VFIO can use a group only whole, so half of one back on the host helps no one.
 * A vfio-pci driver_override left without the binding (a bind cut short) is cleared too.
 */
export function planReleaseVfio(devices: PciDevice[], address: string): HostOp[] {
  const dev = find(devices, address);
  const ops: HostOp[] = [];
  for (const d of groupOf(devices, dev).filter((x) => x.driver === 'vfio-pci' || x.driverOverride === 'vfio-pci')) {
    if (d.driver === 'vfio-pci') ops.push(write('bus/pci/drivers/vfio-pci/unbind', d.address));
    // A lone newline clears driver_override.
    ops.push(write(devAttr(d.address, 'driver_override'), '\n'));
    ops.push(write('bus/pci/drivers_probe', d.address));
  }
  return ops;
}

/** Set an SR-IOV physical function's number of VFs. */
export function planSetNumVfs(pf: PciDevice, count: number): HostOp[] {
  if (pf.physfn) {
    throw new HangarError('invalid-input', `${pf.address} is a virtual function, not a physical function`, `set the number of VFs on its physical function ${pf.physfn}`);
  }
  if (!pf.sriov || pf.sriov.totalVfs === undefined) {
    throw new HangarError('invalid-input', `${pf.address} is not an SR-IOV physical function (it has no sriov_totalvfs)`, 'pick a device that hangar host devices shows with SR-IOV');
  }
  const total = pf.sriov.totalVfs;
  if (!Number.isInteger(count) || count < 0 || count > total) {
    throw new HangarError('invalid-input', `${pf.address} supports 0 to ${total} VFs (sriov_totalvfs = ${total}), not ${count}`, `pick a number from 0 to ${total}`);
  }
  const current = pf.sriov.numVfs ?? 0;
  if (count === current) return [];
  const path = devAttr(pf.address, 'sriov_numvfs');
  // The kernel refuses to change a nonzero count to another nonzero count (EBUSY).
  return current > 0 && count > 0 ? [write(path, '0'), write(path, String(count))] : [write(path, String(count))];
}

/** Create a mediated device of one of the parent's types. */
export function planCreateMdev(parent: PciDevice, type: string, uuid: string): HostOp[] {
  if (!UUID_RE.test(uuid)) throw new HangarError('invalid-input', `"${uuid}" is not an mdev UUID`, 'use lower-case 8-4-4-4-12 hex, e.g. from uuidgen');
  const t = parent.mdevTypes.find((x) => x.id === type);
  if (!t) {
    const known = parent.mdevTypes.map((x) => `${x.id}${x.name ? ` (${x.name})` : ''}`);
    throw new HangarError('invalid-input', `${parent.address} has no mdev type "${type}"`,
      known.length ? `its types: ${known.join(', ')}` : `${parent.address} supports no mediated devices`);
  }
  if (!((t.availableInstances ?? 0) > 0)) {
    throw new HangarError('invalid-state', `${parent.address} has no free instances of mdev type ${type}${t.name ? ` (${t.name})` : ''}`,
      'remove an mdev of this parent first, or pick a smaller type');
  }
  return [write(`bus/pci/devices/${parent.address}/mdev_supported_types/${type}/create`, uuid)];
}

export function planRemoveMdev(uuid: string): HostOp[] {
  if (!UUID_RE.test(uuid)) throw new HangarError('invalid-input', `"${uuid}" is not an mdev UUID`, 'see /sys/bus/mdev/devices for the existing ones');
  return [write(`bus/mdev/devices/${uuid}/remove`, '1')];
}

/** Set a VF's MAC address and/or VLAN through its physical function's interface. */
export function planVfConfig(ifname: string, vf: number, cfg: { mac?: string; vlan?: number }): HostOp[] {
  if (!IFNAME_RE.test(ifname) || ifname === '.' || ifname === '..') {
    throw new HangarError('invalid-input', `"${ifname}" is not a network interface name`, 'use the physical function\'s interface, e.g. enp3s0f0');
  }
  if (!Number.isInteger(vf) || vf < 0 || vf > 65535) throw new HangarError('invalid-input', `VF index ${vf} is not a number from 0 up`, 'VFs are numbered from 0, as virtfnN in sysfs');
  if (cfg.mac === undefined && cfg.vlan === undefined) throw new HangarError('invalid-input', 'nothing to set on the VF', 'give mac=M and/or vlan=V');
  const args = ['link', 'set', 'dev', ifname, 'vf', String(vf)];
  if (cfg.mac !== undefined) {
    const mac = cfg.mac.toLowerCase();
    // Bit 0 of the first octet marks multicast, which no NIC may take as its own address.
    if (!MAC_RE.test(mac) || (Number.parseInt(mac.slice(0, 2), 16) & 1) === 1) {
      throw new HangarError('invalid-input', `"${cfg.mac}" is not a unicast MAC address`, 'use six hex pairs with an even first octet, e.g. 52:54:00:12:34:56');
    }
    args.push('mac', mac);
  }
  if (cfg.vlan !== undefined) {
    if (!Number.isInteger(cfg.vlan) || cfg.vlan < 0 || cfg.vlan > 4095) throw new HangarError('invalid-input', `VLAN ${cfg.vlan} is out of range`, 'a VLAN id is 0 (none) to 4095');
    args.push('vlan', String(cfg.vlan));
  }
  return [{ op: 'ip', args }];
}

/** The plan as commands a root user could paste into a shell. */
/** KSM on or off (kernel/mm/ksm/run: 1 runs the merger, 0 stops it and keeps merged pages). */
export function planSetKsm(now: string, value: '0' | '1'): HostOp[] {
  return now.trim() === value ? [] : [write('kernel/mm/ksm/run', value)];
}

export const hugepagePoolAttr = (size: '2M' | '1G'): string => `kernel/mm/hugepages/hugepages-${HUGEPAGE_KIB[size]}kB/nr_hugepages`;

/** The persistent huge page pool of one size (the kernel gives fewer when memory is fragmented). */
export function planSetHugepages(now: string, size: '2M' | '1G', count: number): HostOp[] {
  return Number(now.trim()) === count ? [] : [write(hugepagePoolAttr(size), String(count))];
}

export function shellCommands(ops: HostOp[], sysRoot: string): string[] {
  const root = sysRoot.replace(/\/+$/, '');
  return ops.map((o) => {
    if (o.op === 'modprobe') return `modprobe ${o.module}`;
    if (o.op === 'ip') return ['ip', ...o.args].map(shellQuote).join(' ');
    const target = shellQuote(`${root}/${o.path}`);
    // echo adds the newline the kernel strips; a lone newline is a bare echo.
    const value = o.value.replace(/\n$/, '');
    return value === '' ? `echo > ${target}` : `echo ${shellQuote(value)} > ${target}`;
  });
}
