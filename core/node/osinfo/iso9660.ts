// Reads the ISO9660 Primary Volume Descriptor (ECMA-119 8.4): the labels osinfo-db uses to
// recognize install media. Only 2 KiB at offset 32 KiB are read, so it is instant for any ISO.
import { open } from 'node:fs/promises';
import { HangarError } from '../../common/errors.ts';
import type { IsoPvd } from '../../common/os-types.ts';

export const SECTOR = 2048;
export const PVD_OFFSET = 16 * SECTOR;

function text(buf: Buffer, start: number, end: number): string {
  // a-characters/d-characters are ASCII; latin1 keeps any stray byte 1:1 instead of U+FFFD.
  return buf.toString('latin1', start, end).replace(/[ \0]+$/, '');
}

/** Parses a 2048-byte volume descriptor; null if it is not a Primary Volume Descriptor. */
export function parsePvd(desc: Buffer): IsoPvd | null {
  if (desc.length < SECTOR) return null;
  if (desc[0] !== 1 || desc.toString('latin1', 1, 6) !== 'CD001') return null;
  const blocks = desc.readUInt32LE(80);
  const blockSize = desc.readUInt16LE(128) || SECTOR;
  return {
    systemId: text(desc, 8, 40),
    volumeId: text(desc, 40, 72),
    publisherId: text(desc, 318, 446),
    applicationId: text(desc, 574, 702),
    volumeSizeBytes: blocks * blockSize,
  };
}

/** Reads the PVD of an ISO image. Throws HangarError('invalid-input') with a hint for a missing
 * file, a file too short to be an ISO, or a file without an ISO9660 descriptor. */
export async function readIsoPvd(path: string): Promise<IsoPvd> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new HangarError('invalid-input', `ISO image ${path} does not exist`, 'check the path (absolute, or relative to the current directory)');
    if (code === 'EISDIR') throw new HangarError('invalid-input', `${path} is a directory, not an ISO image`, 'give the path of an .iso file');
    if (code === 'EACCES' || code === 'EPERM') throw new HangarError('invalid-input', `cannot read ${path}: permission denied`, 'make the file readable by your user');
    throw new HangarError('io-error', `cannot open ${path}: ${(e as Error).message}`);
  }
  try {
    const st = await fh.stat();
    if (st.isDirectory()) throw new HangarError('invalid-input', `${path} is a directory, not an ISO image`, 'give the path of an .iso file');
    // Volume descriptors follow one another from sector 16 until the terminator (type 255);
    // the PVD is nearly always first, but a boot record (type 0) may come before it.
    const buf = Buffer.alloc(SECTOR);
    for (let sector = 16; sector < 16 + 32; sector++) {
      const { bytesRead } = await fh.read(buf, 0, SECTOR, sector * SECTOR);
      if (bytesRead < SECTOR) {
        if (sector === 16) {
          throw new HangarError('invalid-input', `${path} is not an ISO image: it is only ${st.size} bytes, too short to hold an ISO9660 volume descriptor (${PVD_OFFSET + SECTOR} bytes at least)`,
            'the file may be truncated (an interrupted download?): download it again and compare its checksum');
        }
        throw new HangarError('invalid-input', `${path} is truncated: its ISO9660 volume descriptors end at byte ${st.size}`,
          'download the image again and compare its checksum');
      }
      if (buf.toString('latin1', 1, 6) !== 'CD001') {
        throw new HangarError('invalid-input', `${path} is not an ISO9660 image (no CD001 volume descriptor at sector ${sector})`,
          'give an installer .iso (a disk image such as .qcow2 or .img is attached as a disk, not a CD-ROM)');
      }
      const type = buf[0];
      if (type === 1) {
        const pvd = parsePvd(buf)!;
        if (pvd.volumeSizeBytes > st.size && st.isFile()) {
          throw new HangarError('invalid-input', `${path} is truncated: the ISO says it is ${pvd.volumeSizeBytes} bytes, the file has ${st.size}`,
            'the download was probably interrupted: download it again and compare its checksum', { pvd, fileSize: st.size });
        }
        return pvd;
      }
      if (type === 255) break;
    }
    throw new HangarError('invalid-input', `${path} has ISO9660 descriptors but no Primary Volume Descriptor`, 'the image is damaged or not a standard CD/DVD image');
  } finally {
    await fh.close();
  }
}
