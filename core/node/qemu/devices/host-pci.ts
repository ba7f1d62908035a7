// Host PCI devices (and SR-IOV virtual functions) given to the guest through VFIO: QEMU's vfio-pci
// opens the device's IOMMU group (/dev/vfio/N), which the host side (core/node/host) bound to
// vfio-pci before QEMU starts. On q35 each assigned device sits behind a PCIe root port of its
// own, as libvirt does: the guest sees a PCIe device (a GPU's driver looks for its link), and each
// port is its own chassis. The pc machine puts it on pci.0; microvm has no PCI bus.
import { HangarError } from '../../../common/errors.ts';
import type { HostPciDefinition, MachineType } from '../../../common/model.ts';
import type { PropObject } from '../qemu-option.ts';
import { emptyParts } from './types.ts';
import type { DeviceParts } from './types.ts';

/**
 * The chassis number of the first VFIO root port. hotplug-slots.ts numbers its spare ports from 1
 * (at most 16 of them); VFIO ports count up from here, so the two never clash. chassis is a uint8.
 */
export const VFIO_CHASSIS_BASE = 100;
/** The most VFIO devices a q35 VM can have: every root port needs a chassis number below 256. */
export const MAX_VFIO_PORTS = 256 - VFIO_CHASSIS_BASE;

/** The root port a VFIO device (hostpci or mdev) sits in on q35. */
export function vfioPortId(deviceId: string): string {
  return `rp-${deviceId}`;
}

/**
 * Where a VFIO device goes: on q35 a root port of its own (returned as a controller, with the bus
 * the device names); on pc nothing (pci.0 takes it); a microvm is refused.
 * `index` is the device's position among the VM's VFIO devices (hostPci first, then mdevs).
 */
export function vfioPlacement(what: string, deviceId: string, index: number, machine: MachineType): { controllers: PropObject[]; bus?: string } {
  if (machine === 'microvm') {
    throw new HangarError('invalid-input', `${what} "${deviceId}": a microvm has no PCI bus to put a VFIO device on`, 'use machine q35 (or pc) for host devices');
  }
  if (machine !== 'q35') return { controllers: [] };
  if (index >= MAX_VFIO_PORTS) {
    throw new HangarError('invalid-input', `${what} "${deviceId}": at most ${MAX_VFIO_PORTS} VFIO devices fit in one VM (one PCIe root port each)`, 'assign fewer host devices');
  }
  const port = vfioPortId(deviceId);
  return { controllers: [{ driver: 'pcie-root-port', id: port, bus: 'pcie.0', chassis: VFIO_CHASSIS_BASE + index, slot: 0 }], bus: port };
}

/** The vfio-pci device of a host PCI device; rombar 0 hides its option ROM from the guest. */
export function hostPciDevice(dev: HostPciDefinition, bus: string | undefined): PropObject {
  return { driver: 'vfio-pci', id: dev.id, host: dev.address, bus, rombar: dev.rom ? undefined : 0 };
}

export function hostPciParts(dev: HostPciDefinition, index: number, machine: MachineType): DeviceParts {
  const parts = emptyParts();
  const place = vfioPlacement('host PCI device', dev.id, index, machine);
  parts.controllers.push(...place.controllers);
  parts.devices.push(hostPciDevice(dev, place.bus));
  return parts;
}
