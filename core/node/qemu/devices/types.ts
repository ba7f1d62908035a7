// What every device module returns: structured pieces the command-line builder orders.
import type { MachineType } from '../../../common/model.ts';
import type { PropObject, QemuOption } from '../qemu-option.ts';
import type { BusAllocator } from './buses.ts';

export interface DeviceParts {
  /** Controllers and other devices that must exist before the devices plugged into them. */
  controllers: PropObject[];
  blockdevs: PropObject[];
  netdevs: PropObject[];
  chardevs: QemuOption[];
  /** -object back ends (rng-random ...), before the devices that use them. */
  objects: PropObject[];
  /** Other options a device needs (-audiodev, -action ...). */
  options: QemuOption[];
  devices: PropObject[];
}

export function emptyParts(): DeviceParts {
  return { controllers: [], blockdevs: [], netdevs: [], chardevs: [], objects: [], options: [], devices: [] };
}

export function mergeParts(into: DeviceParts, from: DeviceParts): void {
  into.controllers.push(...from.controllers);
  into.blockdevs.push(...from.blockdevs);
  into.netdevs.push(...from.netdevs);
  into.chardevs.push(...from.chardevs);
  into.objects.push(...from.objects);
  into.options.push(...from.options);
  into.devices.push(...from.devices);
}

export interface BuildContext {
  machine: MachineType;
  /** The accelerator QEMU runs with (some device properties depend on it). */
  accel?: 'kvm' | 'tcg';
  buses: BusAllocator;
  /** Boot priority per device id (lower boots first); absent = not bootable. */
  bootIndex: Map<string, number>;
  /** The unix socket of each passt NIC's passt process, by NIC id. */
  passtSockets?: Map<string, string>;
  /** The vhost-user socket of each vhost-user-blk disk's storage daemon, by disk id. */
  qsdSockets?: Map<string, string>;
  /** The qemu-bridge-helper QEMU runs for bridge NICs. */
  bridgeHelper?: string;
  /** The vhost-user socket of each virtiofs share's virtiofsd, by share id. */
  virtiofsSockets?: Map<string, string>;
}
