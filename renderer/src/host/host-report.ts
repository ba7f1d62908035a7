// What the Host page shows of the core's host device report, as plain data: PCI devices grouped
// by IOMMU group, their names, reset and NUMA in words, SR-IOV roles and VF labels, the VMs each
// device is assigned to, and the forms of the SR-IOV panel (VF count, a VF's MAC/VLAN) checked
// before anything is sent. Pure TS (unit-tested in Node); the components only render it.
import type { DoctorCheckInfo } from '../../../core/common/api.ts';
import type { HostAssignment, HostChangeResult, HostDeviceReport, PciDevice } from '../../../core/common/host-devices.ts';
import { macSchema } from '../../../core/common/model.ts';

export interface IommuGroupView {
  group: number;
  /** By address (bridges included: they are what the group is made of). */
  members: PciDevice[];
}

/** PCI devices by IOMMU group (ascending), and those without a group apart. */
export function groupByIommu(pci: readonly PciDevice[]): { groups: IommuGroupView[]; ungrouped: PciDevice[] } {
  const byGroup = new Map<number, PciDevice[]>();
  const ungrouped: PciDevice[] = [];
  for (const d of pci) {
    if (d.iommuGroup === undefined) {
      ungrouped.push(d);
      continue;
    }
    const list = byGroup.get(d.iommuGroup) ?? [];
    list.push(d);
    byGroup.set(d.iommuGroup, list);
  }
  const byAddress = (a: PciDevice, b: PciDevice): number => a.address.localeCompare(b.address);
  const groups = [...byGroup.entries()].sort(([a], [b]) => a - b).map(([group, members]) => ({ group, members: members.sort(byAddress) }));
  return { groups, ungrouped: ungrouped.sort(byAddress) };
}

/** The readiness check that says whether the IOMMU is on (the core's passthrough-iommu). */
export function iommuCheck(readiness: readonly DoctorCheckInfo[]): DoctorCheckInfo | undefined {
  return readiness.find((c) => c.id === 'passthrough-iommu') ?? readiness.find((c) => /iommu/i.test(c.id) && !/interrupt/i.test(c.id));
}

/** Why devices have no IOMMU group: the IOMMU is off (the check's detail and fix), or their own link is broken. */
export function ungroupedReason(report: Pick<HostDeviceReport, 'readiness'>, device?: PciDevice): string {
  const check = iommuCheck(report.readiness);
  if (check && check.status !== 'ok') return `the IOMMU is off: ${check.detail}${check.fix ? ` — ${check.fix}` : ''}`;
  if (!device) return 'the IOMMU is on, but no group could be read for them (the problems are listed with each)';
  const broken = device.problems.find((p) => /iommu_group/.test(p));
  if (broken) return broken;
  return 'the kernel put it in no IOMMU group (without one it cannot be assigned)';
}

const hex = (v: string | undefined): string | undefined => v?.replace(/^0x/, '');

/** Vendor and device names (ids where the database has no name). */
export function pciName(d: Pick<PciDevice, 'vendorName' | 'vendorId' | 'deviceName' | 'deviceId'>): string {
  const vendor = d.vendorName ?? (d.vendorId ? `vendor ${hex(d.vendorId)}` : 'unknown vendor');
  const device = d.deviceName ?? (d.deviceId ? `device ${hex(d.deviceId)}` : 'unknown device');
  return `${vendor} ${device}`;
}

/** "[8086:10fb]", or '' when an id is missing. */
export function pciIds(d: Pick<PciDevice, 'vendorId' | 'deviceId'>): string {
  return d.vendorId && d.deviceId ? `[${hex(d.vendorId)}:${hex(d.deviceId)}]` : '';
}

export function classText(d: Pick<PciDevice, 'class'>): string {
  const c = d.class;
  if (!c) return 'unknown class';
  return c.subclassName ?? c.className ?? `class ${c.code}`;
}

export function resetText(d: Pick<PciDevice, 'reset'>): string {
  const r = d.reset;
  if (!r) return 'unknown';
  if (!r.supported) return 'none';
  return r.methods.length ? r.methods.join(', ') : 'supported';
}

export function flrText(d: Pick<PciDevice, 'reset'>): string {
  const flr = d.reset?.flr;
  return flr === true ? 'yes' : flr === false ? 'no' : 'unknown';
}

export function numaText(d: Pick<PciDevice, 'numaNode'>): string {
  if (d.numaNode === undefined) return 'unknown';
  return d.numaNode < 0 ? 'none' : String(d.numaNode);
}

export function driverText(d: Pick<PciDevice, 'driver'>): string {
  return d.driver ?? 'none';
}

export type SriovRole = 'pf' | 'vf' | undefined;

export function sriovRole(d: Pick<PciDevice, 'sriov' | 'physfn'>): SriovRole {
  return d.sriov ? 'pf' : d.physfn ? 'vf' : undefined;
}

/** A VF's index on its PF (as ip link's `vf N` counts: from 0), or undefined. */
export function vfIndex(pci: readonly PciDevice[], vf: Pick<PciDevice, 'address' | 'physfn'>): number | undefined {
  if (!vf.physfn) return undefined;
  const pf = pci.find((d) => d.address === vf.physfn);
  const i = pf?.sriov?.vfs.indexOf(vf.address) ?? -1;
  return i >= 0 ? i : undefined;
}

/** "VF 2 of 0000:03:00.0" for an SR-IOV virtual function; undefined for any other device. */
export function vfLabel(pci: readonly PciDevice[], d: Pick<PciDevice, 'address' | 'physfn'>): string | undefined {
  if (!d.physfn) return undefined;
  const i = vfIndex(pci, d);
  return i === undefined ? `VF of ${d.physfn}` : `VF ${i} of ${d.physfn}`;
}

export const sriovPfs = (pci: readonly PciDevice[]): PciDevice[] => pci.filter((d) => d.sriov);
export const mdevParents = (pci: readonly PciDevice[]): PciDevice[] => pci.filter((d) => d.mdevTypes.length > 0);

/** The VM definitions that name a device (a PCI address, an mdev UUID, a USB id or bus-port). */
export function assignmentsOf(report: Pick<HostDeviceReport, 'assignments'>, kind: HostAssignment['kind'], ...names: Array<string | undefined>): HostAssignment[] {
  const wanted = new Set(names.filter((n): n is string => !!n));
  return report.assignments.filter((a) => a.kind === kind && wanted.has(a.device));
}

/** A USB device as a definition may name it: "vendor:product" or "bus-port". */
export function usbNames(u: { vendorId?: string; productId?: string; busnum?: number; portPath?: string }): string[] {
  const out: string[] = [];
  if (u.vendorId && u.productId) out.push(`${u.vendorId}:${u.productId}`);
  if (u.busnum !== undefined && u.portPath) out.push(`${u.busnum}-${u.portPath}`);
  return out;
}

export function assignmentText(a: HostAssignment): string {
  return `${a.vmName} (${a.running ? 'running: the guest has it now' : 'not running'})`;
}

/** A running VM has it: the host cannot take it back (release, remove) now. */
export const heldByRunningVm = (as: readonly HostAssignment[]): HostAssignment | undefined => as.find((a) => a.running);

export const privilegeText: Record<HostDeviceReport['privilege'], string> = {
  root: 'The core runs as root: host changes (vfio-pci binding, VFs, mediated devices) are made directly.',
  sudo: 'Host changes are made through sudo (no password prompt: sudo -n) with Hangar\'s narrow helper.',
  pkexec: 'Host changes are made through pkexec: the desktop asks for your password for each one.',
  none: 'Hangar may not change host devices here (not root, no sudo -n, no pkexec): each action shows the exact commands to run as root instead.',
};

export const checkLook: Record<DoctorCheckInfo['status'], { icon: string; tone: 'ok' | 'warn' | 'bad'; text: string }> = {
  ok: { icon: '✔', tone: 'ok', text: 'OK' },
  warn: { icon: '⚠', tone: 'warn', text: 'Warning' },
  missing: { icon: '✖', tone: 'bad', text: 'Missing' },
  error: { icon: '✖', tone: 'bad', text: 'Error' },
};

// ---- the SR-IOV panel's forms

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/** A typed number: v-model on a number input hands numbers back, so both forms arrive. */
function wholeNumber(text: string | number): number | null {
  const t = String(text).trim();
  return /^\d+$/.test(t) ? Number(t) : null;
}

/** The VF count typed for a PF: a whole number 0..sriov_totalvfs. */
export function parseVfCount(text: string | number, totalVfs: number | undefined): Parsed<number> {
  if (totalVfs === undefined) return { ok: false, error: 'the device does not say how many VFs it supports (sriov_totalvfs could not be read)' };
  const n = wholeNumber(text);
  if (n === null) return { ok: false, error: `the VF count is a whole number from 0 to ${totalVfs}` };
  if (n > totalVfs) return { ok: false, error: `this device supports at most ${totalVfs} VFs` };
  return { ok: true, value: n };
}

export interface VfConfigForm { mac: string; vlan: string | number }
export type VfConfig = { mac?: string; vlan?: number };

/** A VF's MAC and/or VLAN (0 = none); an empty field leaves that setting as it is. */
export function parseVfConfig(form: VfConfigForm): { ok: true; value: VfConfig } | { ok: false; errors: Record<string, string> } {
  const errors: Record<string, string> = {};
  const value: VfConfig = {};
  const mac = form.mac.trim().toLowerCase();
  if (mac) {
    const r = macSchema.safeParse(mac);
    if (r.success) value.mac = mac;
    else errors.mac = r.error.issues[0]?.message ?? 'not a MAC address';
  }
  const vlanText = String(form.vlan).trim();
  if (vlanText) {
    const n = wholeNumber(vlanText);
    if (n === null || n > 4095) errors.vlan = 'a VLAN id is a whole number from 0 (none) to 4095';
    else value.vlan = n;
  }
  if (!mac && !vlanText) errors.form = 'give a MAC address, a VLAN id, or both';
  return Object.keys(errors).length ? { ok: false, errors } : { ok: true, value };
}

// ---- what an action did, in words

const viaText: Record<HostChangeResult['via'], string> = { root: 'as root', sudo: 'through sudo', pkexec: 'through pkexec' };

export type HostAction =
  | { type: 'bind'; address: string }
  | { type: 'release'; address: string }
  | { type: 'sriov'; pf: string; count: number }
  | { type: 'vf'; pf: string; vf: number; cfg: VfConfig }
  | { type: 'mdev-create'; parent: string; mdevType: string }
  | { type: 'mdev-remove'; uuid: string };

/** The key an action's busy flag and error go by (one per thing acted on). */
export function actionKey(a: HostAction): string {
  switch (a.type) {
    case 'bind':
    case 'release': return `pci:${a.address}`;
    case 'sriov': return `sriov:${a.pf}`;
    case 'vf': return `vf:${a.pf}:${a.vf}`;
    case 'mdev-create': return `mdev-create:${a.parent}:${a.mdevType}`;
    case 'mdev-remove': return `mdev-remove:${a.uuid}`;
  }
}

export function actionStatus(a: HostAction, r: HostChangeResult): string {
  const via = viaText[r.via] ?? r.via;
  switch (a.type) {
    case 'bind': return `${a.address} (and the rest of its IOMMU group) is on vfio-pci now (${via})`;
    case 'release': return `${a.address} is back with its host driver (${via})`;
    case 'sriov': return `${a.pf} has ${a.count} VF${a.count === 1 ? '' : 's'} now (${via})`;
    case 'vf': {
      const what = [a.cfg.mac ? `MAC ${a.cfg.mac}` : '', a.cfg.vlan !== undefined ? (a.cfg.vlan === 0 ? 'no VLAN' : `VLAN ${a.cfg.vlan}`) : ''].filter(Boolean).join(', ');
      return `VF ${a.vf} of ${a.pf}: ${what} set (${via})`;
    }
    case 'mdev-create': return `Mediated device ${r.uuid ?? ''} of type ${a.mdevType} created on ${a.parent} (${via})`.replace('  ', ' ');
    case 'mdev-remove': return `Mediated device ${a.uuid} removed (${via})`;
  }
}
