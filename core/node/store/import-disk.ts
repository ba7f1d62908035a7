// Existing disk images brought into a VM ("use an existing disk" in the New VM wizard,
// `hangar create --import-disk`): every check happens before anything is written.
import { constants } from 'node:fs';
import { access, stat, statfs } from 'node:fs/promises';
import { resolve } from 'node:path';
import { HangarError } from '../../common/errors.ts';
import { imageInfo } from './qemu-img.ts';
import type { ImageInfo } from './qemu-img.ts';

/** Formats Hangar imports (what `qemu-img info` reports). */
export const importableFormats = ['qcow2', 'raw', 'vmdk', 'vdi', 'vhdx'] as const;
export type ImportableFormat = (typeof importableFormats)[number];

export interface ImportSource {
  /** Absolute path. */
  path: string;
  format: ImportableFormat;
  info: ImageInfo;
  /** Bytes of the file on disk (allocated). */
  allocatedBytes: number;
}

export function formatBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${n} bytes` : `${v.toFixed(1)} ${units[i]}`;
}

/** Checks an image to import: exists, is a readable regular file, a format Hangar supports. */
export async function inspectImportSource(source: string): Promise<ImportSource> {
  const path = resolve(source);
  const st = await stat(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') throw new HangarError('invalid-input', `disk image ${path} does not exist`, 'check the path');
    throw new HangarError('invalid-input', `cannot read disk image ${path}: ${e.code ?? e.message}`);
  });
  if (st.isDirectory()) throw new HangarError('invalid-input', `${path} is a directory, not a disk image`, 'name the image file itself');
  if (!st.isFile() && !st.isBlockDevice()) throw new HangarError('invalid-input', `${path} is not a regular file`, 'name a disk image file');
  await access(path, constants.R_OK).catch(() => {
    throw new HangarError('invalid-input', `disk image ${path} is not readable by this user`, 'fix its permissions (chmod/chown) or copy it somewhere readable');
  });
  const info = await imageInfo(path).catch((e: unknown) => {
    throw new HangarError('invalid-input', `${path} is not a disk image qemu-img can read: ${(e as Error).message}`);
  });
  if (!(importableFormats as readonly string[]).includes(info.format)) {
    throw new HangarError('invalid-input', `${path} is a ${info.format} image, which Hangar does not import`,
      `supported formats: ${importableFormats.join(', ')}; convert it first with qemu-img convert -O qcow2`);
  }
  // qemu-img calls anything it does not recognize "raw" (a text file, a tarball ...). A real raw
  // disk is whole 512-byte sectors; anything else is almost surely not a disk.
  if (info.format === 'raw' && st.isFile() && (st.size < 512 || st.size % 512 !== 0)) {
    throw new HangarError('invalid-input', `${path} does not look like a disk image: qemu-img sees no known format, and as a raw disk its size (${st.size} bytes) is not a whole number of 512-byte sectors`,
      'name a disk image (qcow2, raw, vmdk, vdi, vhdx)');
  }
  // A block device has no allocated blocks of its own: count its whole size.
  return { path, format: info.format as ImportableFormat, info, allocatedBytes: st.isBlockDevice() ? info.virtualSize : st.blocks * 512 };
}

/** Bytes a converted copy may need: the source's allocated data, as qemu-img keeps holes sparse. */
export function bytesNeeded(src: ImportSource): number {
  return Math.min(src.info.actualSize ?? src.allocatedBytes, src.info.virtualSize) || src.allocatedBytes;
}

/** Refuses when the folder's file system obviously lacks room for `needBytes` (plus a margin). */
export async function checkFreeSpace(dir: string, needBytes: number, what = 'the copy'): Promise<void> {
  const fs = await statfs(dir);
  const free = fs.bavail * fs.bsize;
  const margin = Math.max(64 * 1024 * 1024, needBytes * 0.05);
  if (free < needBytes + margin) {
    throw new HangarError('invalid-input', `not enough free space in ${dir} for ${what}: needs about ${formatBytes(needBytes)} (+ ${formatBytes(margin)} margin), ${formatBytes(free)} free`,
      'free some space, or import the disk in place');
  }
}
