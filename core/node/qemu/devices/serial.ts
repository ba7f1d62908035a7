// The serial console: a 16550 UART whose chardev is a unix socket the core connects to.
// QEMU is the socket's server so it keeps running (and buffering nothing) while no core is attached.
import { emptyParts } from './types.ts';
import type { DeviceParts } from './types.ts';

export const SERIAL_DEVICE_ID = 'serial0';
export const SERIAL_CHARDEV_ID = 'ch_serial0';

export function serialParts(socketPath: string): DeviceParts {
  const parts = emptyParts();
  parts.chardevs.push({
    opt: '-chardev',
    implied: 'socket',
    keyval: { id: SERIAL_CHARDEV_ID, path: socketPath, server: true, wait: false },
  });
  parts.devices.push({ driver: 'isa-serial', id: SERIAL_DEVICE_ID, chardev: SERIAL_CHARDEV_ID });
  return parts;
}
