// Disks: a file node, a format node, and a front end on the chosen bus.
import { HangarError } from '../../../common/errors.ts';
import type { CacheMode, DiskDefinition } from '../../../common/model.ts';
import type { PropObject } from '../qemu-option.ts';
import { emptyParts } from './types.ts';
import type { BuildContext, DeviceParts } from './types.ts';

/** How each cache mode maps to QEMU's three knobs (the same table libvirt uses). */
export const cacheModeProps: Record<CacheMode, { direct: boolean; noFlush: boolean; writeCache: boolean }> = {
  writeback: { direct: false, noFlush: false, writeCache: true },
  none: { direct: true, noFlush: false, writeCache: true },
  writethrough: { direct: false, noFlush: false, writeCache: false },
  directsync: { direct: true, noFlush: false, writeCache: false },
  unsafe: { direct: false, noFlush: true, writeCache: true },
};

export function diskNodeNames(id: string): { file: string; format: string } {
  return { file: `${id}-file`, format: `${id}-fmt` };
}

export function diskBlockdevs(disk: DiskDefinition): PropObject[] {
  const c = cacheModeProps[disk.cache];
  const cache = { direct: c.direct, 'no-flush': c.noFlush };
  const nodes = diskNodeNames(disk.id);
  // discard on both nodes: the format layer frees its clusters, the file layer punches holes.
  const discard = disk.discard ? 'unmap' : undefined;
  return [
    { driver: 'file', 'node-name': nodes.file, filename: disk.file, cache, 'read-only': disk.readOnly, aio: disk.aio, discard },
    { driver: disk.format, 'node-name': nodes.format, file: nodes.file, cache, 'read-only': disk.readOnly, discard },
  ];
}

export function diskFrontend(disk: DiskDefinition, ctx: BuildContext): { controllers: PropObject[]; device: PropObject } {
  const nodes = diskNodeNames(disk.id);
  const common: PropObject = {
    id: disk.id,
    drive: nodes.format,
    'write-cache': cacheModeProps[disk.cache].writeCache ? 'on' : 'off',
    bootindex: ctx.bootIndex.get(disk.id),
  };
  if (disk.bus === 'virtio-blk') {
    const driver = ctx.machine === 'microvm' ? 'virtio-blk-device' : 'virtio-blk-pci';
    return { controllers: [], device: { driver, ...common, iothread: disk.iothread ? diskIothreadId(disk.id) : undefined } };
  }
  if (disk.bus === 'vhost-user-blk') throw new HangarError('internal', `disk "${disk.id}": vhost-user-blk has no QEMU block node`);
  const before = ctx.buses.controllers.length;
  const slot = ctx.buses.allocate(disk.bus, disk.id);
  const controllers = ctx.buses.controllers.slice(before);
  if (disk.bus === 'scsi') return { controllers, device: { driver: 'scsi-hd', bus: slot.bus, ...slot.scsi, ...common } };
  return { controllers, device: { driver: 'ide-hd', bus: slot.bus, unit: slot.unit, ...common } };
}

/** Short, so QEMU can name the thread "IO io-disk0" (a Linux thread name holds 15 bytes; longer ones stay unnamed). */
export function diskIothreadId(id: string): string {
  return `io-${id}`;
}

export function vhostUserChardevId(id: string): string {
  return `${id}-vhost-user`;
}

/** A vhost-user-blk disk: QEMU only connects to the storage daemon's socket (the daemon owns the image). */
function vhostUserBlkParts(disk: DiskDefinition, ctx: BuildContext): DeviceParts {
  const parts = emptyParts();
  const socket = ctx.qsdSockets?.get(disk.id);
  if (!socket) throw new HangarError('internal', `disk "${disk.id}" is vhost-user-blk but no storage daemon socket was given`);
  parts.chardevs.push({ opt: '-chardev', implied: 'socket', keyval: { id: vhostUserChardevId(disk.id), path: socket } });
  parts.devices.push({ driver: 'vhost-user-blk-pci', id: disk.id, chardev: vhostUserChardevId(disk.id), bootindex: ctx.bootIndex.get(disk.id) });
  return parts;
}

export function diskParts(disk: DiskDefinition, ctx: BuildContext): DeviceParts {
  if (disk.bus === 'vhost-user-blk') return vhostUserBlkParts(disk, ctx);
  const parts = emptyParts();
  if (disk.iothread) parts.objects.push({ 'qom-type': 'iothread', id: diskIothreadId(disk.id) });
  const fe = diskFrontend(disk, ctx);
  parts.controllers.push(...fe.controllers);
  parts.blockdevs.push(...diskBlockdevs(disk));
  parts.devices.push(fe.device);
  return parts;
}
