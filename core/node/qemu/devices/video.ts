// Video adapters. vga = QEMU's standard VGA (Bochs VBE extensions, any OS); virtio-gpu needs a
// guest driver (virtio-vga keeps a VGA mode for firmware and boot loaders); qxl for SPICE-era
// guests; bochs = the same framebuffer without legacy VGA (UEFI guests). none = headless.
import type { VideoDefinition } from '../../../common/model.ts';
import { emptyParts } from './types.ts';
import type { DeviceParts } from './types.ts';

export const VIDEO_DEVICE_ID = 'video0';

export function videoParts(v: VideoDefinition): DeviceParts {
  const parts = emptyParts();
  const vram = v.vramMiB;
  switch (v.model) {
    case 'none': break;
    case 'vga': parts.devices.push({ driver: 'VGA', id: VIDEO_DEVICE_ID, vgamem_mb: vram }); break;
    case 'virtio-gpu': parts.devices.push({ driver: 'virtio-vga', id: VIDEO_DEVICE_ID }); break;
    case 'qxl': parts.devices.push({ driver: 'qxl-vga', id: VIDEO_DEVICE_ID, vgamem_mb: vram }); break;
    case 'bochs': parts.devices.push({ driver: 'bochs-display', id: VIDEO_DEVICE_ID, vgamem: vram === undefined ? undefined : vram * 1024 * 1024 }); break;
  }
  return parts;
}
