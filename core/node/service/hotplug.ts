// Hotplug and hot-unplug of devices in a running VM over QMP, from the same structured pieces
// the command-line builder uses (blockdev-add = -blockdev, netdev_add = -netdev, device_add =
// -device). What cannot be plugged live is told apart here, with the reason in words.
import { HangarError } from '../../common/errors.ts';
import type { DeviceKindName } from '../../common/api.ts';
import type { DiskDefinition, InputDefinition, NicDefinition, UsbHostDefinition, VmDefinition } from '../../common/model.ts';
import type { QmpClient } from '../qmp/client.ts';
import { BusAllocator, SCSI_CONTROLLER_ID } from '../qemu/devices/buses.ts';
import { diskBlockdevs, diskFrontend, diskIothreadId, diskNodeNames } from '../qemu/devices/disk.ts';
import { hotplugSlotIds } from '../qemu/devices/hotplug-slots.ts';
import { inputParts } from '../qemu/devices/input.ts';
import { netdevId, netdevProps, nicDriver } from '../qemu/devices/nic.ts';
import { usbHostDevice } from '../qemu/devices/usb-host.ts';
import { usbControllerOf } from '../qemu/vm-argv.ts';
import { releaseDiskChain } from '../snapshots/block-nodes.ts';
import type { PropObject } from '../qemu/qemu-option.ts';

/** What QEMU runs right now: the definition it started with plus what was plugged since. */
export interface LiveHardware {
  definition: VmDefinition;
  /** The hotplug slot (q35 root port) each hotplugged PCI device sits in, by device id. */
  slots: Record<string, string>;
}

/** The first q35 root port no hotplugged device sits in; undefined when all are taken. */
function firstFreeSlot(live: LiveHardware): string | undefined {
  const used = new Set(Object.values(live.slots));
  return hotplugSlotIds('q35', live.definition.hotplugSlots).find((s) => !used.has(s));
}

/** A free q35 root port, or null on pc (pci.0 takes the device itself). Throws when all are used. */
function freeSlot(live: LiveHardware): string | null {
  const def = live.definition;
  if (def.machine !== 'q35') return null;
  const free = firstFreeSlot(live);
  if (!free) throw new HangarError('invalid-state', `all ${def.hotplugSlots} hotplug slots of the running VM are in use`, 'the device is added at next boot; raise hotplugSlots for more');
  return free;
}

function slotsLeft(live: LiveHardware): boolean {
  return live.definition.machine !== 'q35' || firstFreeSlot(live) !== undefined;
}

/** Why a VFIO device waits for the next start: the host side (binding its group) happens then. */
export const VFIO_PLUG_REASON = 'VFIO devices are assigned at start (the group is bound to vfio-pci then)';
export const VFIO_UNPLUG_REASON = 'VFIO devices are given back at stop (the group returns to its host drivers then)';

function hasScsiController(def: VmDefinition): boolean {
  return def.disks.some((d) => d.bus === 'scsi') || def.cdroms.some((c) => c.bus === 'scsi');
}

/** Why this device cannot be plugged into the running VM (it then waits for the next boot), or null. */
export function plugBlocker(kind: DeviceKindName, device: Record<string, unknown>, live: LiveHardware): string | null {
  const def = live.definition;
  if (def.machine === 'microvm') return 'a microvm has no hotplug';
  const needsSlot = (): string | null => (slotsLeft(live) ? null : `all ${def.hotplugSlots} hotplug slots of the running VM are in use (hotplugSlots)`);
  if (kind === 'disk') {
    const d = device as DiskDefinition;
    if (d.bus === 'virtio-blk') return needsSlot();
    if (d.bus === 'scsi') return hasScsiController(def) ? null : 'the VM started without a SCSI controller to plug a SCSI disk into';
    if (d.bus === 'vhost-user-blk') return 'a vhost-user-blk disk\'s storage daemon starts with the VM';
    return `${d.bus === 'ide' ? 'IDE' : 'SATA (AHCI)'} has no hotplug in QEMU`;
  }
  if (kind === 'nic') {
    const n = device as NicDefinition;
    if (n.network.type === 'passt') return 'a passt NIC\'s passt process starts with the VM';
    if (n.network.type === 'vhost-user') return 'a vhost-user NIC is connected when the VM starts';
    return needsSlot();
  }
  if (kind === 'input') {
    const i = device as InputDefinition;
    if (i.bus === 'ps2') return 'PS/2 devices are built into the machine';
    if (i.bus === 'usb') return usbControllerOf(def) ? null : 'the VM started without a USB controller';
    return needsSlot();
  }
  if (kind === 'usbhost') return usbControllerOf(def) ? null : 'the VM started without a USB controller (one is added at next boot)';
  if (kind === 'hostpci' || kind === 'mdev') return VFIO_PLUG_REASON;
  return `a ${kind === 'cdrom' ? 'CD-ROM drive' : `${kind} device`} cannot be added to a running VM`;
}

/** Why this device cannot be unplugged from the running VM, or null. */
export function unplugBlocker(kind: DeviceKindName, device: Record<string, unknown>, live: LiveHardware): string | null {
  const def = live.definition;
  if (def.machine === 'microvm') return 'a microvm has no hot-unplug';
  const id = device.id as string;
  // On q35 only devices in a root port can leave; those on pcie.0 (all present at start) cannot.
  const pciOnQ35 = def.machine === 'q35' && !live.slots[id] ? 'it sits on the q35 root bus (pcie.0), which has no hot-unplug' : null;
  if (kind === 'disk') {
    const d = device as DiskDefinition;
    if (d.bus === 'scsi') return null;
    if (d.bus === 'virtio-blk') return pciOnQ35;
    if (d.bus === 'vhost-user-blk') return 'a vhost-user-blk disk stays until its storage daemon stops with the VM';
    return `${d.bus === 'ide' ? 'IDE' : 'SATA (AHCI)'} has no hot-unplug in QEMU`;
  }
  if (kind === 'nic') {
    const n = device as NicDefinition;
    if (n.network.type === 'passt') return 'a passt NIC stays until its passt process stops with the VM';
    if (n.network.type === 'vhost-user') return 'a vhost-user NIC stays connected until the VM stops';
    return pciOnQ35;
  }
  if (kind === 'input') {
    const i = device as InputDefinition;
    if (i.bus === 'ps2') return 'PS/2 devices are built into the machine';
    return i.bus === 'usb' ? null : pciOnQ35;
  }
  if (kind === 'usbhost') return null;
  if (kind === 'hostpci' || kind === 'mdev') return VFIO_UNPLUG_REASON;
  return `a ${kind === 'cdrom' ? 'CD-ROM drive' : `${kind} device`} cannot be removed from a running VM`;
}

/** The next free SCSI target on the controller, beside the ones the VM has. */
function scsiFront(disk: DiskDefinition, def: VmDefinition): PropObject {
  const used = def.disks.filter((d) => d.bus === 'scsi').length + def.cdroms.filter((c) => c.bus === 'scsi').length;
  const buses = new BusAllocator(def.machine);
  // Replay the allocations so the new disk gets the next target id, as at the next boot.
  for (let i = 0; i < used; i++) buses.allocate('scsi', `scsi${i}`);
  const front = diskFrontend(disk, { machine: def.machine, buses, bootIndex: new Map() }).device;
  return { ...front, bus: `${SCSI_CONTROLLER_ID}.0` };
}

/** Runs steps in order; when one fails, undoes the ones done (newest first) and rethrows. */
async function inOrder(steps: Array<{ run: () => Promise<unknown>; undo: () => Promise<unknown> }>): Promise<void> {
  const done: Array<() => Promise<unknown>> = [];
  try {
    for (const s of steps) {
      await s.run();
      done.push(s.undo);
    }
  } catch (e) {
    for (const undo of done.reverse()) await undo().catch(() => {});
    throw e;
  }
}

/**
 * Plugs the device in; returns the slot it took (q35) or null. On a QMP error every step done so
 * far is undone, and the error says what QEMU answered.
 */
export async function plugDevice(qmp: QmpClient, kind: DeviceKindName, device: Record<string, unknown>, live: LiveHardware, bridgeHelper?: string): Promise<string | null> {
  const def = live.definition;
  const blocker = plugBlocker(kind, device, live);
  if (blocker) throw new HangarError('invalid-state', `cannot hotplug: ${blocker}`);
  const steps: Array<{ run: () => Promise<unknown>; undo: () => Promise<unknown> }> = [];
  let slot: string | null = null;
  if (kind === 'disk') {
    const disk = device as DiskDefinition;
    if (disk.iothread) {
      steps.push({ run: () => qmp.execute('object-add', { 'qom-type': 'iothread', id: diskIothreadId(disk.id) }), undo: () => qmp.execute('object-del', { id: diskIothreadId(disk.id) }) });
    }
    for (const node of diskBlockdevs(disk)) {
      steps.push({ run: () => qmp.blockdevAdd(node), undo: () => qmp.blockdevDel(node['node-name'] as string) });
    }
    let front: PropObject;
    if (disk.bus === 'scsi') {
      front = scsiFront(disk, def);
    } else {
      slot = freeSlot(live);
      front = { ...diskFrontend(disk, { machine: def.machine, buses: new BusAllocator(def.machine), bootIndex: new Map() }).device, bus: slot ?? undefined };
    }
    steps.push({ run: () => qmp.deviceAdd(clean(front)), undo: () => qmp.deviceDel(disk.id) });
  } else if (kind === 'nic') {
    const nic = device as NicDefinition;
    slot = freeSlot(live);
    const netdev = netdevProps(nic, { machine: def.machine, buses: new BusAllocator(def.machine), bootIndex: new Map(), ...(bridgeHelper ? { bridgeHelper } : {}) });
    steps.push({ run: () => qmp.execute('netdev_add', clean(netdev)), undo: () => qmp.execute('netdev_del', { id: netdevId(nic) }) });
    const front = { driver: nicDriver(nic.model, def.machine), id: nic.id, netdev: netdevId(nic), mac: nic.mac, bus: slot ?? undefined };
    steps.push({ run: () => qmp.deviceAdd(clean(front)), undo: () => qmp.deviceDel(nic.id) });
  } else if (kind === 'input') {
    const input = device as InputDefinition;
    if (input.bus !== 'usb') slot = freeSlot(live);
    for (const d of inputParts(input, def.machine).devices) {
      steps.push({ run: () => qmp.deviceAdd(clean({ ...d, bus: input.bus === 'usb' ? d.bus : slot ?? undefined })), undo: () => qmp.deviceDel(input.id) });
    }
  } else if (kind === 'usbhost') {
    // The same usb-host object as at boot, on the VM's USB controller (an absent device is fine: QEMU waits for it).
    const usb = device as UsbHostDefinition;
    steps.push({ run: () => qmp.deviceAdd(clean(usbHostDevice(usb))), undo: () => qmp.deviceDel(usb.id) });
  }
  try {
    await inOrder(steps);
  } catch (e) {
    throw new HangarError('qmp-error', `QEMU refused to hotplug ${kind} "${String(device.id)}": ${(e as Error).message}`,
      'nothing was changed; shut the VM down and add the device then, or fix what QEMU names');
  }
  return slot;
}

/** Frees what stays behind after the guest let go of a device (DEVICE_DELETED): block nodes, netdev, iothread. */
export async function releaseBackends(qmp: QmpClient, kind: DeviceKindName, device: Record<string, unknown>): Promise<void> {
  if (kind === 'disk') {
    const disk = device as DiskDefinition;
    // disk.file is the top of the chain (a live external snapshot moves it onto its overlay).
    await releaseDiskChain(qmp, disk.file, diskNodeNames(disk.id).format);
    if (disk.iothread) await qmp.execute('object-del', { id: diskIothreadId(disk.id) }).catch(() => {});
  } else if (kind === 'nic') {
    await qmp.execute('netdev_del', { id: netdevId(device as NicDefinition) }).catch(() => {});
  }
}

/** Drops undefined fields: QMP arguments are a JSON object, not a property list. */
function clean(o: PropObject): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}
