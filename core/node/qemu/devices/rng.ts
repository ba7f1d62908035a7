// virtio-rng: the guest's hardware RNG fed from a host entropy source (an rng-random back end).
import type { MachineType, RngDefinition } from '../../../common/model.ts';
import { emptyParts } from './types.ts';
import type { DeviceParts } from './types.ts';

export const RNG_BACKEND_ID = 'rng0-backend';
export const RNG_DEVICE_ID = 'rng0';

export function rngParts(rng: RngDefinition, machine: MachineType): DeviceParts {
  const parts = emptyParts();
  parts.objects.push({ 'qom-type': 'rng-random', id: RNG_BACKEND_ID, filename: `/dev/${rng.source}` });
  parts.devices.push({ driver: machine === 'microvm' ? 'virtio-rng-device' : 'virtio-rng-pci', id: RNG_DEVICE_ID, rng: RNG_BACKEND_ID });
  return parts;
}
