// What the host device editors of the Devices tab offer (issue 6): the host's PCI devices with
// whether each can be assigned (the core's viability: blockers disable it, warnings are shown),
// SR-IOV VFs labelled with their PF, the IOMMU group warning (what happens to every other member),
// the consequences of passthrough (migration, pinned memory against the memlock limit, the device
// leaving the host), mediated device instances and host USB devices. Pure TS.
import type { GroupMemberPlan, HostDeviceReport, MemlockInfo, PciDevice, PciViability, UsbDevice } from '../../../core/common/host-devices.ts';
import type { VmDefinition } from '../../../core/common/model.ts';
import { MEMLOCK_HEADROOM_MIB, memlockFits, pinnedBytes } from '../../../core/common/passthrough-consequences.ts';
import { isBridge } from '../../../core/common/host-devices.ts';
import { assignmentsOf, classText, driverText, pciName, usbNames, vfLabel } from '../host/host-report.ts';
import { formatBytes } from '../util/format.ts';

export interface PciPickerOption {
  value: string;
  address: string;
  /** "0000:01:00.0 — AMD Navi 21 …" */
  label: string;
  /** Vendor and device names. */
  name: string;
  /** Class, driver, IOMMU group. */
  detail: string;
  /** "VF 2 of 0000:03:00.0" for SR-IOV virtual functions. */
  vf?: string;
  /** Physical devices first, then the VFs. */
  section: 'device' | 'vf';
  disabled: boolean;
  /** Why it cannot be chosen (the core's blockers, or "already in this VM"). */
  reasons: string[];
  warnings: string[];
  /** Other VMs whose definitions name it. */
  assignedTo: string[];
  testid: string;
}

/**
 * Every host PCI device a VM could be given (bridges left out: they stay with the host), each with
 * its viability. `current` is the address the device being edited has now (not "already used").
 */
export function pciPickerOptions(report: HostDeviceReport, def?: Pick<VmDefinition, 'id' | 'hostPci'>, current?: string): PciPickerOption[] {
  const inThisVm = new Map((def?.hostPci ?? []).map((h) => [h.address, h.id]));
  const opts = report.pci.filter((d) => !isBridge(d)).map((d): PciPickerOption => {
    const v = report.viability[d.address];
    const reasons: string[] = [];
    const used = inThisVm.get(d.address);
    if (used !== undefined && d.address !== current) reasons.push(`already assigned to this VM (${used})`);
    if (!v) reasons.push('Hangar has no assignment information for this device');
    else if (!v.assignable) reasons.push(...(v.blockers.length ? v.blockers : ['the core says it cannot be assigned']));
    const others = assignmentsOf(report, 'hostpci', d.address).filter((a) => a.vmId !== def?.id);
    const vf = vfLabel(report.pci, d);
    const group = d.iommuGroup !== undefined ? `IOMMU group ${d.iommuGroup}` : 'no IOMMU group';
    return {
      value: d.address,
      address: d.address,
      label: `${d.address} — ${pciName(d)}`,
      name: pciName(d),
      detail: `${classText(d)}, driver ${driverText(d)}, ${group}`,
      ...(vf ? { vf } : {}),
      section: d.physfn ? 'vf' : 'device',
      disabled: reasons.length > 0,
      reasons,
      warnings: v?.warnings ?? [],
      assignedTo: others.map((a) => `${a.vmName}${a.running ? ' (running)' : ''}`),
      testid: `hostpci-option-${d.address}`,
    };
  });
  return [...opts.filter((o) => o.section === 'device'), ...opts.filter((o) => o.section === 'vf')];
}

export interface GroupMemberText {
  address: string;
  name: string;
  driver?: string;
  action: GroupMemberPlan['action'];
  text: string;
}

export const memberActionText: Record<GroupMemberPlan['action'], string> = {
  vfio: 'will be bound to vfio-pci and disappear from the host while the VM runs',
  bridge: 'a PCI bridge: stays with the host',
  ready: 'already on vfio-pci',
  blocked: 'in use by the host: the group cannot be assigned',
};

/** The other members of the chosen device's IOMMU group and what happens to each; null when it is alone. */
export function groupWarning(v: PciViability | undefined): { members: GroupMemberText[]; blocked: boolean } | null {
  if (!v) return null;
  const others = v.group.filter((m) => m.address !== v.address);
  if (!others.length) return null;
  const members = others.map((m): GroupMemberText => ({
    address: m.address,
    name: m.name,
    ...(m.driver ? { driver: m.driver } : {}),
    action: m.action,
    text: m.action === 'blocked' && m.reasons.length ? `${memberActionText.blocked} (${m.reasons.join('; ')})` : memberActionText[m.action],
  }));
  return { members, blocked: members.some((m) => m.action === 'blocked') };
}

export interface Consequence {
  id: 'migration' | 'memlock' | 'host' | 'warning';
  tone: 'info' | 'warn';
  text: string;
  fix?: string;
}

const MiB = 1024 ** 2;

const raiseFix = (need: number): string =>
  `raise the locked-memory limit of the user running Hangar to at least ${formatBytes(need)} (or unlimited): e.g. "USER hard memlock unlimited" and "USER soft memlock unlimited" in /etc/security/limits.conf, then log in again (LimitMEMLOCK=infinity for a systemd service); or give the core CAP_IPC_LOCK`;

/** VFIO pins all guest memory: whether the core's RLIMIT_MEMLOCK (QEMU inherits it) covers this VM, by the core's own start rule. */
export function memlockConsequence(memoryMiB: number, memlock: MemlockInfo): Consequence {
  const mem = memoryMiB * MiB;
  const pinned = `All ${formatBytes(mem)} of guest memory is pinned in host RAM while the VM runs (the device reads and writes it directly)`;
  if (memlock.exempt) return { id: 'memlock', tone: 'info', text: `${pinned}; the core runs as root or with CAP_IPC_LOCK, so the locked-memory limit does not apply.` };
  if (memlock.limitBytes === null) return { id: 'memlock', tone: 'info', text: `${pinned}; the locked-memory limit is unlimited.` };
  const limit = memlock.limitBytes;
  const need = pinnedBytes(memoryMiB);
  if (!memlockFits(memoryMiB, memlock)) {
    return {
      id: 'memlock', tone: 'warn',
      text: `${pinned}, but the locked-memory limit is ${formatBytes(limit)}, less than the VM's ${formatBytes(mem)} plus ${MEMLOCK_HEADROOM_MIB / 1024} GiB for QEMU's own mappings: the VM will not start.`,
      fix: raiseFix(need),
    };
  }
  return { id: 'memlock', tone: 'info', text: `${pinned}; the locked-memory limit (${formatBytes(limit)}) covers it.` };
}

/** The box shown with a PCI host device: what passthrough costs this VM. */
export function passthroughConsequences(opts: { memoryMiB: number; memlock: MemlockInfo; device?: string; managed: boolean; warnings?: readonly string[] }): Consequence[] {
  const dev = opts.device ?? 'The device';
  return [
    { id: 'migration', tone: 'info', text: 'Live migration and snapshots with memory are blocked while the VM has a passthrough device (its state lives in the hardware).' },
    memlockConsequence(opts.memoryMiB, opts.memlock),
    {
      id: 'host', tone: 'info',
      text: opts.managed
        ? `${dev} disappears from the host while assigned: Hangar binds it to vfio-pci when the VM starts and gives it back to its host driver when the VM stops.`
        : `${dev} disappears from the host while assigned; not managed: it must be on vfio-pci before the VM starts (Bind to vfio-pci on the Host page) and stays there after it stops.`,
    },
    ...(opts.warnings ?? []).map((w): Consequence => ({ id: 'warning', tone: 'warn', text: w })),
  ];
}

// ---- mediated devices

export interface MdevPickerOption {
  value: string;
  uuid: string;
  parent: string;
  type?: string;
  label: string;
  detail: string;
  disabled: boolean;
  reasons: string[];
  assignedTo: string[];
  testid: string;
}

export function mdevPickerOptions(report: HostDeviceReport, def?: Pick<VmDefinition, 'id' | 'mdevs'>, current?: string): MdevPickerOption[] {
  const inThisVm = new Map((def?.mdevs ?? []).map((m) => [m.uuid, m.id]));
  return report.mdevs.map((m): MdevPickerOption => {
    const parent = report.pci.find((d) => d.address === m.parent);
    const type = parent?.mdevTypes.find((t) => t.id === m.type);
    const used = inThisVm.get(m.uuid);
    const reasons = used !== undefined && m.uuid !== current ? [`already assigned to this VM (${used})`] : [];
    const others = assignmentsOf(report, 'mdev', m.uuid).filter((a) => a.vmId !== def?.id);
    return {
      value: m.uuid,
      uuid: m.uuid,
      parent: m.parent,
      ...(m.type ? { type: m.type } : {}),
      label: `${type?.name ?? m.type ?? 'mediated device'} on ${m.parent}`,
      detail: [parent ? pciName(parent) : '', m.type ? `type ${m.type}` : ''].filter(Boolean).join(', '),
      disabled: reasons.length > 0,
      reasons,
      assignedTo: others.map((a) => `${a.vmName}${a.running ? ' (running)' : ''}`),
      testid: `mdev-option-${m.uuid}`,
    };
  });
}

// ---- USB

export interface UsbPickerOption {
  value: string;
  name: string;
  vendorId?: string;
  productId?: string;
  busnum?: number;
  portPath?: string;
  label: string;
  detail: string;
  /** Cannot be matched one of the two ways (missing ids, or no port path). */
  byId: boolean;
  byPort: boolean;
  assignedTo: string[];
  testid: string;
}

export function usbName(u: UsbDevice): string {
  const vendor = u.vendorName ?? u.manufacturer ?? (u.vendorId ? `vendor ${u.vendorId}` : 'unknown vendor');
  const product = u.productName ?? u.product ?? (u.productId ? `product ${u.productId}` : 'unknown product');
  return `${vendor} ${product}`;
}

/** Host USB devices a guest can take: not hubs (root hubs are the controllers themselves). */
export function usbPickerOptions(report: Pick<HostDeviceReport, 'usb' | 'assignments'>, vmId?: string): UsbPickerOption[] {
  return report.usb.filter((u) => !u.isHub && !u.isRootHub).map((u): UsbPickerOption => {
    const ids = u.vendorId && u.productId ? `${u.vendorId}:${u.productId}` : 'no ids';
    const others = assignmentsOf(report, 'usbhost', ...usbNames(u)).filter((a) => a.vmId !== vmId);
    return {
      value: u.name,
      name: u.name,
      ...(u.vendorId ? { vendorId: u.vendorId } : {}),
      ...(u.productId ? { productId: u.productId } : {}),
      ...(u.busnum !== undefined ? { busnum: u.busnum } : {}),
      ...(u.portPath ? { portPath: u.portPath } : {}),
      label: `${ids} ${usbName(u)}`,
      detail: `bus ${u.busnum ?? '?'}, port ${u.portPath ?? '?'}${u.speed ? `, ${u.speed} Mbit/s` : ''}${u.serial ? `, serial ${u.serial}` : ''}`,
      byId: !!(u.vendorId && u.productId),
      byPort: u.busnum !== undefined && !!u.portPath,
      assignedTo: others.map((a) => `${a.vmName}${a.running ? ' (running)' : ''}`),
      testid: `usbhost-option-${u.name}`,
    };
  });
}

/** The host device a hostpci row names, for the Devices tab ("AMD Navi 21 …, VF 2 of …"). */
export function hostPciText(report: HostDeviceReport | null, address: string): string | undefined {
  const d: PciDevice | undefined = report?.pci.find((x) => x.address === address);
  if (!d) return undefined;
  const vf = vfLabel(report!.pci, d);
  return `${pciName(d)}${vf ? ` (${vf})` : ''}`;
}
