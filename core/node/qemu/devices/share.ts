// Shared folders over virtio-9p: a "local" fsdev on the host folder and a virtio-9p front end the
// guest mounts by its tag. (virtiofs needs a virtiofsd binary, which Debian 12 does not ship.)
import type { MachineType, ShareDefinition } from '../../../common/model.ts';
import { emptyParts } from './types.ts';
import type { DeviceParts } from './types.ts';

export function fsdevId(share: ShareDefinition): string {
  return `${share.id}-fsdev`;
}

export function shareParts(share: ShareDefinition, machine: MachineType): DeviceParts {
  const parts = emptyParts();
  // -fsdev only has the key=value syntax; keyval() doubles any comma in the path.
  parts.options.push({
    opt: '-fsdev', implied: 'local',
    keyval: { id: fsdevId(share), path: share.source, security_model: share.securityModel, readonly: share.readOnly || undefined },
  });
  parts.devices.push({ driver: machine === 'microvm' ? 'virtio-9p-device' : 'virtio-9p-pci', id: share.id, fsdev: fsdevId(share), mount_tag: share.tag });
  return parts;
}
