// virtio-balloon: lets the host reclaim guest memory (balloon target) and see guest memory stats.
import type { BalloonDefinition, MachineType } from '../../../common/model.ts';
import { emptyParts } from './types.ts';
import type { DeviceParts } from './types.ts';

export const BALLOON_DEVICE_ID = 'balloon0';

export function balloonParts(b: BalloonDefinition, machine: MachineType): DeviceParts {
  const parts = emptyParts();
  parts.devices.push({
    driver: machine === 'microvm' ? 'virtio-balloon-device' : 'virtio-balloon-pci',
    id: BALLOON_DEVICE_ID,
    'free-page-reporting': b.freePageReporting || undefined,
    'deflate-on-oom': b.deflateOnOom || undefined,
  });
  return parts;
}
