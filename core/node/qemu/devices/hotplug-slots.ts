// Spare PCIe root ports on q35. Its root bus (pcie.0) has no hotplug, so a device plugged into a
// running VM needs a root port of its own; Hangar adds `hotplugSlots` empty ones at start, as
// libvirt does. The pc machine's pci.0 takes hotplugged devices directly (ACPI); microvm none.
import type { MachineType } from '../../../common/model.ts';
import type { PropObject } from '../qemu-option.ts';

export function hotplugSlotId(n: number): string {
  return `hp${n}`;
}

export function hotplugSlotIds(machine: MachineType, count: number): string[] {
  return machine === 'q35' ? Array.from({ length: count }, (_, n) => hotplugSlotId(n)) : [];
}

export function hotplugSlotControllers(machine: MachineType, count: number): PropObject[] {
  // Each root port is its own chassis: QEMU refuses two ports with the same chassis and slot.
  return hotplugSlotIds(machine, count).map((id, n) => ({ driver: 'pcie-root-port', id, bus: 'pcie.0', chassis: n + 1, slot: 0 }));
}
