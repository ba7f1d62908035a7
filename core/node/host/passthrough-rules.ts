// Can a PCI device be given to a guest, and what happens to the rest of its IOMMU group?
// Pure rules over what pci-devices.ts read: VFIO hands out whole IOMMU groups, so one device's
// answer depends on its peers, on the host's own use of them and on other VMs' definitions.

import { isBridge } from '../../common/host-devices.ts';
import type { GroupMemberPlan, HostAssignment, PciDevice, PciViability } from '../../common/host-devices.ts';

export interface ViabilityOptions {
  /** Every VM definition's host devices (to see who else wants the device). */
  assignments?: HostAssignment[];
  /** The VM the device is for: its own assignments are no conflict. */
  forVmId?: string;
  /** Other addresses given to the same VM (its group peers may be among them). */
  alsoAssigned?: string[];
}

/** Drivers that may keep a bridge in a group VFIO owns (they declare driver_managed_dma). */
const BRIDGE_DRIVERS = new Set(['pcieport', 'shpchp']);

export function deviceLabel(d: PciDevice): string {
  const vendor = d.vendorName ?? (d.vendorId ? `vendor ${d.vendorId}` : undefined);
  const device = d.deviceName ?? (d.deviceId ? `device ${d.deviceId}` : undefined);
  return [vendor, device].filter(Boolean).join(' ') || 'unknown device';
}

/** Why the host needs it, with the way to stop needing it where the reason says. */
function withFix(reason: string): string {
  const net = /^network interface (\S+) is up$/.exec(reason);
  if (net) return `${reason} (take it down first: ip link set dev ${net[1]} down)`;
  if (/ is mounted at /.test(reason)) return `${reason} (unmount it first)`;
  if (/ in use as swap$/.test(reason)) return `${reason} (swapoff it first)`;
  if (reason.startsWith('boot VGA')) return `${reason} (give the host console another GPU in the firmware setup)`;
  return reason;
}

/** What the host loses if this device leaves it; [] when nothing. */
function hostUse(d: PciDevice): string[] {
  const reasons = d.inUseByHost.map(withFix);
  const vfs = d.sriov?.numVfs ?? 0;
  if (vfs > 0) {
    reasons.push(`it is an SR-IOV physical function with ${vfs} virtual function${vfs === 1 ? '' : 's'}, which unbinding it would destroy ` +
      '(assign one of its VFs instead, or set its number of VFs to 0 first)');
  }
  return reasons;
}

function memberPlan(d: PciDevice): GroupMemberPlan {
  const base = { address: d.address, name: deviceLabel(d), driver: d.driver };
  if (isBridge(d)) {
    if (d.driver === undefined || BRIDGE_DRIVERS.has(d.driver)) return { ...base, action: 'bridge', reasons: [] };
    return { ...base, action: 'blocked', reasons: [`bridge bound to ${d.driver}, which cannot share its group with VFIO`] };
  }
  const use = hostUse(d);
  if (use.length) return { ...base, action: 'blocked', reasons: use };
  return { ...base, action: d.driver === undefined || d.driver === 'vfio-pci' ? 'ready' : 'vfio', reasons: [] };
}

export function pciViability(address: string, devices: PciDevice[], opts: ViabilityOptions = {}): PciViability {
  const byAddress = new Map(devices.map((d) => [d.address, d]));
  const dev = byAddress.get(address);
  const blockers: string[] = [];
  const warnings: string[] = [];
  if (!dev) {
    return { address, assignable: false, blockers: [`no PCI device ${address} on this host (see hangar host devices)`], warnings, group: [] };
  }
  if (isBridge(dev)) {
    const kind = dev.class?.subclassId === '00' ? 'a host bridge' : 'a PCI bridge';
    blockers.push(`${address} is ${kind}: bridges stay with the host and cannot be assigned (assign the devices behind it)`);
    return { address, assignable: false, blockers, warnings, group: [memberPlan(dev), ...dev.iommuGroupPeers.flatMap((a) => byAddress.get(a) ?? []).map(memberPlan)] };
  }
  if (dev.problems.length) blockers.push(`parts of ${address} could not be read: ${dev.problems.join('; ')}`);
  if (dev.iommuGroup === undefined && !dev.problems.some((p) => p.includes('iommu_group'))) {
    // Short: every device says it when the IOMMU is off; the readiness check carries the whole fix.
    blockers.push(`${address} has no IOMMU group: the IOMMU is off (the fix is under passthrough readiness: hangar host readiness)`);
  }
  for (const r of hostUse(dev)) blockers.push(`the host uses ${address}: ${r}`);

  const also = new Set(opts.alsoAssigned ?? []);
  const others = (opts.assignments ?? []).filter((a) => a.kind === 'hostpci' && a.vmId !== opts.forVmId);
  for (const a of others.filter((x) => x.device === address)) {
    if (a.running) blockers.push(`${address} is assigned to VM "${a.vmName}" (${a.deviceId}), which is running: stop that VM first`);
    else warnings.push(`${address} is also in VM "${a.vmName}"'s definition (${a.deviceId}): only one of the two can run at a time`);
  }

  const group: GroupMemberPlan[] = [memberPlan(dev)];
  for (const peerAddress of dev.iommuGroupPeers) {
    const peer = byAddress.get(peerAddress);
    if (!peer) {
      group.push({ address: peerAddress, name: 'unknown device', action: 'blocked', reasons: ['in the IOMMU group but not in bus/pci/devices'] });
      blockers.push(`shares IOMMU group ${dev.iommuGroup} with ${peerAddress}, which sysfs does not list`);
      continue;
    }
    const plan = memberPlan(peer);
    group.push(plan);
    const shares = `shares IOMMU group ${dev.iommuGroup} with ${peerAddress} (${plan.name})`;
    if (plan.action === 'blocked') blockers.push(`${shares}, which the host uses: ${plan.reasons.join('; ')}`);
    if (plan.action === 'bridge' || also.has(peerAddress)) continue;
    for (const a of others.filter((x) => x.device === peerAddress)) {
      if (a.running) blockers.push(`${shares}, which VM "${a.vmName}" (${a.deviceId}) is using: stop that VM first`);
      else warnings.push(`${shares}, which VM "${a.vmName}"'s definition also uses (${a.deviceId})`);
    }
    if (plan.action === 'vfio') {
      warnings.push(`${shares}: it moves from ${peer.driver} to vfio-pci too and is gone from the host while the VM runs`);
    }
  }

  if (dev.reset?.supported === false) {
    warnings.push(`no reset the kernel can use: the guest gets the device as the last user left it (some then fail until the host reboots)`);
  } else if (dev.reset?.flr === false) {
    warnings.push(`${address} has no function-level reset (FLR): the kernel resets it by ${dev.reset.methods.join(', ')}, which can also reset other functions on the same slot or bus`);
  }
  if (dev.mdevTypes.length) {
    warnings.push(`${address} also offers mediated devices (${dev.mdevTypes.map((t) => t.id).join(', ')}): assigning the whole device leaves none for other guests`);
  }
  return { address, assignable: blockers.length === 0, blockers, warnings, group };
}

/** Viability of every listed device, by address. */
export function viabilityMap(devices: PciDevice[], opts: ViabilityOptions = {}): Record<string, PciViability> {
  return Object.fromEntries(devices.map((d) => [d.address, pciViability(d.address, devices, opts)]));
}
