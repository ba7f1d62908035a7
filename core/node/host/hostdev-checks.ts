// Start-time checks for VMs with host devices, run before any process starts or anything is
// written: each refusal names the device and the fix. Returns what start must still do (bind
// managed devices to vfio-pci, then check the /dev/vfio nodes of the groups).

import { memlockFits, pinnedBytes } from '../../common/passthrough-consequences.ts';
import { access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import { HangarError } from '../../common/errors.ts';
import type { HostAssignment, MemlockInfo, PciDevice } from '../../common/host-devices.ts';
import type { VmDefinition } from '../../common/model.ts';
import { IOMMU_CMDLINE_FIX } from './passthrough-readiness.ts';
import { pciViability } from './passthrough-rules.ts';
import { listPciDevices } from './pci-devices.ts';
import type { PciIds } from './pci-ids.ts';
import { listNames, readLinkTarget, readQuiet } from './sysfs-read.ts';

export interface HostDeviceCheckOptions {
  /** Default /sys. */
  sysRoot?: string;
  /** Default /proc (mounts, swaps, and the memlock limit when `memlock` is not given). */
  procRoot?: string;
  /** Default /dev. */
  devRoot?: string;
  assignments?: HostAssignment[];
  memlock?: MemlockInfo;
  pciIds?: PciIds;
}

export interface HostDevicePlan {
  /** Managed devices to bind to vfio-pci (hangar's bind-vfio), one per IOMMU group: binding one binds its group. */
  bind: string[];
  /** IOMMU groups QEMU opens (/dev/vfio/N), sorted. */
  groups: number[];
  /** Warnings worth showing at start (no FLR, peers that move to vfio-pci ...). */
  notes: string[];
}

const MiB = 1024 * 1024;

function mib(bytes: number): string {
  return bytes >= MiB ? `${Math.round((bytes / MiB) * 10) / 10} MiB` : `${Math.round(bytes / 1024)} KiB`;
}

export async function checkHostDevices(def: VmDefinition, opts: HostDeviceCheckOptions = {}): Promise<HostDevicePlan> {
  const plan: HostDevicePlan = { bind: [], groups: [], notes: [] };
  const hostPci = def.hostPci ?? [];
  const mdevs = def.mdevs ?? [];
  if (hostPci.length === 0 && mdevs.length === 0) return plan;
  const sysRoot = opts.sysRoot ?? '/sys';
  const cannot = `cannot start VM "${def.name}"`;

  // First, before anything reads further or writes: no IOMMU, no PCI assignment at all.
  // (mdevs alone need none: their parent's driver translates their DMA.)
  if (hostPci.length) {
    const groupsDir = join(sysRoot, 'kernel/iommu_groups');
    if (!(await listNames(groupsDir, [])).some((n) => /^\d+$/.test(n))) {
      const h = hostPci[0];
      throw new HangarError('host-missing', `${cannot}: PCI host device ${h.id} (${h.address}) needs an IOMMU, and this host has none enabled (no groups in ${groupsDir})`,
        `${IOMMU_CMDLINE_FIX}, reboot, and enable VT-d / AMD-Vi (IOMMU) in the firmware setup`);
    }
  }

  const groups = new Set<number>();
  const ready: number[] = [];
  if (hostPci.length) {
    const devices = await listPciDevices({ sysRoot, procRoot: opts.procRoot, pciIds: opts.pciIds });
    const alsoAssigned = hostPci.map((h) => h.address);
    const boundGroups = new Set<number>();
    for (const h of hostPci) {
      const label = `PCI host device ${h.id} (${h.address})`;
      const v = pciViability(h.address, devices, { assignments: opts.assignments, forVmId: def.id, alsoAssigned });
      if (!v.assignable) {
        const missing = !devices.some((d) => d.address === h.address);
        throw new HangarError(missing ? 'not-found' : 'invalid-state', `${cannot}: ${label} cannot be assigned: ${v.blockers.join('; ')}`,
          missing ? 'pick a device from hangar host devices, or remove it from the VM' : 'see hangar host devices for the device and its IOMMU group');
      }
      const dev = devices.find((d) => d.address === h.address) as PciDevice;
      const group = dev.iommuGroup as number;
      groups.add(group);
      const toMove = v.group.filter((m) => m.action === 'vfio');
      if (!h.managed) {
        if (toMove.length) {
          const what = toMove.map((m) => `${m.address} is on ${m.driver}`).join(', ');
          throw new HangarError('invalid-state', `${cannot}: ${label} is not managed by Hangar, and its IOMMU group is not on vfio-pci (${what})`,
            `bind it first: hangar host bind ${h.address} (or set managed: true so Hangar binds it at start and gives it back at stop)`);
        }
      } else if (toMove.length && !boundGroups.has(group)) {
        boundGroups.add(group);
        plan.bind.push(h.address);
      }
      plan.notes.push(...v.warnings.map((w) => `${h.id}: ${w}`));
    }
    for (const g of groups) if (!boundGroups.has(g)) ready.push(g);
  }

  for (const m of mdevs) {
    const dir = join(sysRoot, 'bus/mdev/devices', m.uuid);
    if ((await listNames(dir, [])).length === 0) {
      const create = m.parent && m.type ? `hangar host mdev create ${m.parent} ${m.type} ${m.uuid}` : 'hangar host mdev create PARENT TYPE (see hangar host devices for parents and types)';
      throw new HangarError('not-found', `${cannot}: mediated device ${m.id} (${m.uuid}) does not exist (no ${dir})`, `create it: ${create}`);
    }
    const group = await readLinkTarget(join(dir, 'iommu_group'), []);
    if (group && /^\d+$/.test(group.name) && !groups.has(Number(group.name))) {
      groups.add(Number(group.name));
      ready.push(Number(group.name));
    }
    const type = (await readLinkTarget(join(dir, 'mdev_type'), []))?.name;
    if (m.type && type && type !== m.type) plan.notes.push(`${m.id}: ${m.uuid} is of type ${type}, not ${m.type} as the definition says`);
  }

  const memlock = opts.memlock ?? (await readMemlock(opts.procRoot));
  const needBytes = pinnedBytes(def.memoryMiB);
  if (!memlockFits(def.memoryMiB, memlock) && memlock.limitBytes !== null) {
    const kib = needBytes / 1024;
    throw new HangarError('host-missing',
      `${cannot}: with host devices assigned all ${def.memoryMiB} MiB of guest memory is locked (pinned) in RAM, but the locked-memory limit is ` +
      `${mib(memlock.limitBytes)}; it needs at least ${mib(needBytes)} (${def.memoryMiB} MiB + ${needBytes / MiB - def.memoryMiB} MiB for QEMU's own mappings)`,
      `raise the limit of the process that starts Hangar (QEMU inherits it): ulimit -l ${kib} (KiB, or unlimited) in its shell; for a login session add ` +
      `"USER soft memlock ${kib}" and "USER hard memlock ${kib}" to /etc/security/limits.conf and log in again; for a systemd service set LimitMEMLOCK=${needBytes} (or infinity)`,
      { limitBytes: memlock.limitBytes, neededBytes: needBytes });
  }

  plan.groups = [...groups].sort((a, b) => a - b);
  // Groups that need no binding must be usable now; the others are checked after binding.
  if (ready.length) await checkVfioGroupNodes(ready.sort((a, b) => a - b), opts.devRoot);
  return plan;
}

/** RLIMIT_MEMLOCK from /proc/self/limits; exempt as root or with CAP_IPC_LOCK that survives exec into QEMU. */
export async function readMemlock(procRoot = '/proc'): Promise<MemlockInfo> {
  const limits = (await readQuiet(join(procRoot, 'self/limits'))) ?? '';
  const status = (await readQuiet(join(procRoot, 'self/status'))) ?? '';
  // The soft limit is the one mlock and VFIO enforce; an unreadable file counts as no limit.
  const soft = /^Max locked memory\s+(\S+)/m.exec(limits)?.[1];
  const limitBytes = soft === undefined || soft === 'unlimited' || !/^\d+$/.test(soft) ? null : Number(soft);
  const euid = /^Uid:\s+\d+\s+(\d+)/m.exec(status)?.[1];
  // An effective capability is lost when the core execs QEMU; an ambient one is kept.
  const hasCap = (line: string) => {
    const hex = new RegExp(`^${line}:\\s+([0-9a-f]+)`, 'mi').exec(status)?.[1];
    return hex !== undefined && (BigInt(`0x${hex}`) & (1n << 14n)) !== 0n;
  };
  return { limitBytes, exempt: euid === '0' || (hasCap('CapEff') && hasCap('CapAmb')) };
}

/** After binding: QEMU opens /dev/vfio/vfio and /dev/vfio/GROUP; refuse before QEMU fails on them. */
export async function checkVfioGroupNodes(groups: number[], devRoot = '/dev'): Promise<void> {
  const nodes = [join(devRoot, 'vfio/vfio'), ...groups.map((g) => join(devRoot, 'vfio', String(g)))];
  for (const node of nodes) {
    try {
      await access(node, constants.F_OK);
    } catch {
      throw new HangarError('host-missing', `${node} is missing: ${node.endsWith('/vfio') ? 'the VFIO driver is not loaded' : 'its IOMMU group is not bound to vfio-pci'}`,
        'modprobe vfio-pci (as root), then bind the devices: hangar host bind ADDR');
    }
    try {
      await access(node, constants.R_OK | constants.W_OK);
    } catch {
      throw new HangarError('permission', `${node} exists but this user cannot open it, so QEMU could not use the device`,
        `as root: chown ${process.getuid?.() ?? 'USER'} ${node} (or a udev rule: SUBSYSTEM=="vfio", OWNER="USER")`, { commands: [`chown ${process.getuid?.() ?? 'USER'} ${node}`] });
    }
  }
}
