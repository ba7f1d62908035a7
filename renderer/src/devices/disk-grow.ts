// Growing a disk from its editor: the new size typed in GiB, checked against the image's current
// size (the core never shrinks), and the line that says what happened. Pure TS.
import { formatBytes } from '../util/format.ts';

const GIB = 1024 ** 3;

export type GrowCheck = { ok: true; bytes: number } | { ok: false; error: string };

/** A size in GiB (decimals allowed) larger than the image's current virtual size. */
export function parseGrowSize(text: string, currentBytes: number | undefined): GrowCheck {
  const t = text.trim();
  if (!/^\d+(\.\d+)?$/.test(t)) return { ok: false, error: 'the new size is a number of GiB, e.g. 20 or 2.5' };
  const bytes = Math.ceil((Number(t) * GIB) / 512) * 512;
  if (currentBytes !== undefined && bytes <= currentBytes) {
    return { ok: false, error: `larger than the disk's ${formatBytes(currentBytes)}: a disk only grows (shrink it inside the guest first, then by hand)` };
  }
  return { ok: true, bytes };
}

export function growStatusText(r: { oldBytes: number; newBytes: number; online: boolean }): string {
  return `Grown from ${formatBytes(r.oldBytes)} to ${formatBytes(r.newBytes)}${r.online ? ': the guest sees the new size now; grow its partition and file system inside' : ''}`;
}
