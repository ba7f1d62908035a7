// Extra 16550 UARTs beside the console (ttyS1..ttyS3): each on a chardev that appends to a log
// file in the VM folder, or on a unix socket QEMU serves in the runtime dir.
import { HangarError } from '../../../common/errors.ts';
import type { SerialPortDefinition } from '../../../common/model.ts';
import { emptyParts } from './types.ts';
import type { DeviceParts } from './types.ts';

/** The PC has four legacy COM port addresses; index 0 (ttyS0) is the console's. */
export const MAX_EXTRA_SERIAL_PORTS = 3;

export function serialPortChardevId(port: SerialPortDefinition): string {
  return `${port.id}-chardev`;
}

/** Where a port's output goes: its log file, or its socket. */
export interface SerialPortTarget {
  logFile?: string;
  socket?: string;
}

/** The port at position `index` in serialPorts: always ttyS(index + 1), console or not. */
export function serialPortParts(port: SerialPortDefinition, index: number, target: SerialPortTarget): DeviceParts {
  const parts = emptyParts();
  const id = serialPortChardevId(port);
  const path = port.output === 'log' ? target.logFile : target.socket;
  if (!path) throw new HangarError('internal', `serial port "${port.id}" goes to a ${port.output} but no ${port.output === 'log' ? 'log file' : 'socket'} path was given`);
  if (port.output === 'log') {
    parts.chardevs.push({ opt: '-chardev', implied: 'file', keyval: { id, path, append: true } });
  } else {
    parts.chardevs.push({ opt: '-chardev', implied: 'socket', keyval: { id, path, server: true, wait: false } });
  }
  // An explicit index pins the I/O port (0x2f8, 0x3e8, 0x2e8), so the guest's ttyS numbering
  // does not shift when the console is turned off.
  parts.devices.push({ driver: 'isa-serial', id: port.id, chardev: id, index: index + 1 });
  return parts;
}
