// Mediated devices (a vGPU slice, a vfio-ap queue ...): an instance the host created under
// /sys/bus/mdev/devices/UUID, opened by QEMU's vfio-pci through sysfsdev= instead of host=. It
// takes the same place as a host PCI device (its own root port on q35, pci.0 on pc).
import type { MachineType, MdevDefinition } from '../../../common/model.ts';
import type { PropObject } from '../qemu-option.ts';
import { vfioPlacement } from './host-pci.ts';
import { emptyParts } from './types.ts';
import type { DeviceParts } from './types.ts';

/** Where the kernel lists an mdev instance (QEMU always reads the real /sys). */
export function mdevSysfsPath(uuid: string): string {
  return `/sys/bus/mdev/devices/${uuid}`;
}

export function mdevDevice(dev: MdevDefinition, bus: string | undefined): PropObject {
  return { driver: 'vfio-pci', id: dev.id, sysfsdev: mdevSysfsPath(dev.uuid), bus };
}

/** `index` is the mdev's position among the VM's VFIO devices (after its hostPci ones). */
export function mdevParts(dev: MdevDefinition, index: number, machine: MachineType): DeviceParts {
  const parts = emptyParts();
  const place = vfioPlacement('mediated device', dev.id, index, machine);
  parts.controllers.push(...place.controllers);
  parts.devices.push(mdevDevice(dev, place.bus));
  return parts;
}
