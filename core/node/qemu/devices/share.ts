// Shared folders. virtio-9p: a "local" fsdev on the host folder and a virtio-9p front end the
// guest mounts by its tag, all inside QEMU. virtiofs: a virtiofsd process (started by the core,
// see service/virtiofsd.ts) serves the folder over vhost-user; QEMU only connects its
// vhost-user-fs front end to virtiofsd's socket (guest memory is shared for it).
import { HangarError } from '../../../common/errors.ts';
import type { ShareDefinition } from '../../../common/model.ts';
import { emptyParts } from './types.ts';
import type { BuildContext, DeviceParts } from './types.ts';

export function fsdevId(share: ShareDefinition): string {
  return `${share.id}-fsdev`;
}

export function virtiofsChardevId(share: ShareDefinition): string {
  return `${share.id}-virtiofs`;
}

function virtiofsParts(share: ShareDefinition, ctx: Pick<BuildContext, 'machine' | 'virtiofsSockets'>): DeviceParts {
  const parts = emptyParts();
  const socket = ctx.virtiofsSockets?.get(share.id);
  if (!socket) throw new HangarError('internal', `share "${share.id}" uses virtiofs but no virtiofsd socket was given`);
  parts.chardevs.push({ opt: '-chardev', implied: 'socket', keyval: { id: virtiofsChardevId(share), path: socket } });
  parts.devices.push({ driver: ctx.machine === 'microvm' ? 'vhost-user-fs-device' : 'vhost-user-fs-pci', id: share.id, chardev: virtiofsChardevId(share), tag: share.tag });
  return parts;
}

export function shareParts(share: ShareDefinition, ctx: Pick<BuildContext, 'machine' | 'virtiofsSockets'>): DeviceParts {
  if (share.driver === 'virtiofs') return virtiofsParts(share, ctx);
  const parts = emptyParts();
  // -fsdev only has the key=value syntax; keyval() doubles any comma in the path.
  parts.options.push({
    opt: '-fsdev', implied: 'local',
    keyval: { id: fsdevId(share), path: share.source, security_model: share.securityModel, readonly: share.readOnly || undefined },
  });
  parts.devices.push({ driver: ctx.machine === 'microvm' ? 'virtio-9p-device' : 'virtio-9p-pci', id: share.id, fsdev: fsdevId(share), mount_tag: share.tag });
  return parts;
}
