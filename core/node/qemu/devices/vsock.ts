// vhost-vsock: AF_VSOCK sockets between host and guest, served by the host kernel (/dev/vhost-vsock).
import type { MachineType, VsockDefinition } from '../../../common/model.ts';
import { emptyParts } from './types.ts';
import type { DeviceParts } from './types.ts';

export const VSOCK_DEVICE_ID = 'vsock0';

export function vsockParts(vsock: VsockDefinition, machine: MachineType): DeviceParts {
  const parts = emptyParts();
  parts.devices.push({ driver: machine === 'microvm' ? 'vhost-vsock-device' : 'vhost-vsock-pci', id: VSOCK_DEVICE_ID, 'guest-cid': vsock.cid });
  return parts;
}
