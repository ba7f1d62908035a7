// The core's host-device operations: the report the Host page shows, and the privileged changes
// (vfio-pci binding, SR-IOV VFs, mdev instances) with the rules that keep running guests safe: a
// device a running VM has is never released, destroyed or re-bound under it.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { HostAssignment, HostChangeResult, HostDeviceReport, PciDevice } from '../../common/host-devices.ts';
import { HangarError } from '../../common/errors.ts';
import type { VmDefinition } from '../../common/model.ts';
import { listMdevInstances } from '../host/mdev-instances.ts';
import { passthroughReadiness } from '../host/passthrough-readiness.ts';
import { pciViability, viabilityMap } from '../host/passthrough-rules.ts';
import { listPciDevices } from '../host/pci-devices.ts';
import { privilegeMode, runHostChange } from '../host/privileged.ts';
import { readMemlock } from '../host/hostdev-checks.ts';
import { listNames } from '../host/sysfs-read.ts';
import { listUsbDevices } from '../host/usb-devices.ts';

/** Where host state is read: the real /sys, /proc and /dev, or fixture trees (HANGAR_SYSFS_ROOT ...). */
export interface HostRoots {
  sysRoot: string;
  procRoot: string;
  devRoot: string;
}

export function hostRootsFromEnv(env: NodeJS.ProcessEnv = process.env): HostRoots {
  return { sysRoot: env.HANGAR_SYSFS_ROOT || '/sys', procRoot: env.HANGAR_PROCFS_ROOT || '/proc', devRoot: env.HANGAR_DEVFS_ROOT || '/dev' };
}

/** What the operations need to know about each VM. */
export interface VmView {
  id: string;
  name: string;
  definition?: VmDefinition;
  /** QEMU runs (running, paused, starting ...): its devices are the guest's. */
  active: boolean;
}

export function usbKey(u: VmDefinition['hostUsb'][number]): string {
  return u.vendorId && u.productId ? `${u.vendorId}:${u.productId}` : `${u.hostbus}-${u.hostport}`;
}

/** Every host device any VM definition names. */
export function hostAssignments(vms: readonly VmView[]): HostAssignment[] {
  const out: HostAssignment[] = [];
  for (const vm of vms) {
    const d = vm.definition;
    if (!d) continue;
    const base = { vmId: vm.id, vmName: vm.name, running: vm.active };
    for (const p of d.hostPci) out.push({ ...base, kind: 'hostpci', device: p.address, deviceId: p.id });
    for (const m of d.mdevs) out.push({ ...base, kind: 'mdev', device: m.uuid, deviceId: m.id });
    for (const u of d.hostUsb) out.push({ ...base, kind: 'usbhost', device: usbKey(u), deviceId: u.id });
  }
  return out;
}

export async function hostDeviceReport(roots: HostRoots, vms: readonly VmView[]): Promise<HostDeviceReport> {
  const assignments = hostAssignments(vms);
  const [pci, usb, mdevs, readiness, memlock, privilege] = await Promise.all([
    listPciDevices(roots),
    listUsbDevices(roots),
    listMdevInstances(roots.sysRoot),
    passthroughReadiness(roots),
    readMemlock(roots.procRoot),
    privilegeMode(),
  ]);
  return {
    sysRoot: roots.sysRoot, pci, viability: viabilityMap(pci, { assignments }), usb: usb.filter((u) => !u.isRootHub), mdevs, readiness, assignments, memlock, privilege,
  };
}

function findPci(devices: readonly PciDevice[], address: string): PciDevice {
  const dev = devices.find((d) => d.address === address);
  if (!dev) throw new HangarError('not-found', `there is no PCI device ${address} on this host`, 'pick one from hangar host devices');
  return dev;
}

/** The running VM holding any of these host devices, if one does. */
function runningHolder(vms: readonly VmView[], devices: readonly string[]): HostAssignment | undefined {
  return hostAssignments(vms).find((a) => a.running && devices.includes(a.device));
}

function refuseWhileRunning(what: string, holder: HostAssignment | undefined, after: string): void {
  if (!holder) return;
  throw new HangarError('invalid-state', `${what}: VM "${holder.vmName}" is running with ${holder.device} (${holder.deviceId})`, `shut down "${holder.vmName}" (or remove the device from it) first, then ${after}`);
}

export async function bindVfio(roots: HostRoots, vms: readonly VmView[], address: string): Promise<HostChangeResult> {
  const devices = await listPciDevices(roots);
  findPci(devices, address);
  // A device a running guest has is on vfio-pci already: binding again is harmless; other blockers are real.
  const v = pciViability(address, devices, { assignments: hostAssignments(vms).filter((a) => !a.running) });
  if (v.blockers.length) {
    throw new HangarError('invalid-input', `cannot bind ${address} to vfio-pci: ${v.blockers.join('; ')}`, 'pick a device the host does not use (hangar host devices shows what each one is used for)');
  }
  return runHostChange('bind-vfio', [address], { sysRoot: roots.sysRoot });
}

export async function releaseVfio(roots: HostRoots, vms: readonly VmView[], address: string): Promise<HostChangeResult> {
  const devices = await listPciDevices(roots);
  const dev = findPci(devices, address);
  refuseWhileRunning(`cannot give ${address} back to the host`, runningHolder(vms, [address, ...dev.iommuGroupPeers]), 'give it back');
  return runHostChange('release-vfio', [address], { sysRoot: roots.sysRoot });
}

export async function setSriovVfs(roots: HostRoots, vms: readonly VmView[], pf: string, count: number): Promise<HostChangeResult> {
  const dev = findPci(await listPciDevices(roots), pf);
  if (!dev.sriov) {
    throw new HangarError('invalid-input', `${pf} is not an SR-IOV physical function (it has no sriov_totalvfs)`, 'pick a PF from hangar host devices (SR-IOV column "PF")');
  }
  if (dev.sriov.numVfs === count) return { commands: [], via: 'root' };
  // Any change of the VF count destroys every current VF (the kernel goes through 0).
  refuseWhileRunning(`cannot change the VF count of ${pf}`, runningHolder(vms, dev.sriov.vfs), 'change the count');
  return runHostChange('set-numvfs', [pf, String(count)], { sysRoot: roots.sysRoot });
}

export async function setVfConfig(roots: HostRoots, pf: string, vf: number, cfg: { mac?: string; vlan?: number }): Promise<HostChangeResult> {
  const dev = findPci(await listPciDevices(roots), pf);
  if (!dev.sriov) throw new HangarError('invalid-input', `${pf} is not an SR-IOV physical function`, 'pick a PF from hangar host devices');
  if (cfg.mac === undefined && cfg.vlan === undefined) throw new HangarError('invalid-input', 'nothing to set: give a MAC, a VLAN or both', 'e.g. mac=52:54:00:12:34:56 vlan=10');
  if (vf >= dev.sriov.vfs.length) {
    throw new HangarError('invalid-input', `${pf} has ${dev.sriov.vfs.length} VFs: there is no VF ${vf}`, dev.sriov.vfs.length ? `use 0..${dev.sriov.vfs.length - 1}` : 'create VFs first (hangar host sriov PF N)');
  }
  // MAC and VLAN are set on the PF's network interface (the PF driver programs the VF).
  const ifaces = await listNames(join(roots.sysRoot, 'bus/pci/devices', pf, 'net'), []);
  if (!ifaces.length) throw new HangarError('host-missing', `${pf} has no network interface, so its VFs' MAC and VLAN cannot be set`, 'bind the PF to its network driver (it must not be on vfio-pci)');
  const args = [ifaces[0]!, String(vf)];
  if (cfg.mac !== undefined) args.push(`mac=${cfg.mac}`);
  if (cfg.vlan !== undefined) args.push(`vlan=${cfg.vlan}`);
  return runHostChange('vf-config', args, { sysRoot: roots.sysRoot });
}

export async function createMdev(roots: HostRoots, parent: string, type: string, wanted?: string): Promise<HostChangeResult> {
  findPci(await listPciDevices(roots), parent);
  const uuid = wanted ?? randomUUID();
  if ((await listMdevInstances(roots.sysRoot)).some((m) => m.uuid === uuid)) {
    throw new HangarError('already-exists', `mdev ${uuid} exists already`, 'use it as it is, or remove it first (hangar host mdev remove UUID)');
  }
  return { ...(await runHostChange('create-mdev', [parent, type, uuid], { sysRoot: roots.sysRoot })), uuid };
}

export async function removeMdev(roots: HostRoots, vms: readonly VmView[], uuid: string): Promise<HostChangeResult> {
  if (!(await listMdevInstances(roots.sysRoot)).some((m) => m.uuid === uuid)) {
    throw new HangarError('not-found', `there is no mdev instance ${uuid} on this host`, 'hangar host mdev list shows the instances');
  }
  refuseWhileRunning(`cannot remove mdev ${uuid}`, runningHolder(vms, [uuid]), 'remove it');
  return runHostChange('remove-mdev', [uuid], { sysRoot: roots.sysRoot });
}
