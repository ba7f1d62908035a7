// Disk images are made and inspected by qemu-img, never by hand.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { HangarError } from '../../common/errors.ts';
import { requireBinary } from '../host/binaries.ts';

const run = promisify(execFile);

export interface ImageInfo {
  format: string;
  virtualSize: number;
  actualSize?: number;
  backingFile?: string;
  /** The backing file's format, when the image records it. */
  backingFormat?: string;
  /** Internal snapshots (qcow2): their tags and the size of the RAM state each holds. */
  snapshots: Array<{ name: string; vmStateSize: number }>;
}

async function qemuImg(args: string[], timeoutMs = 120_000): Promise<string> {
  const bin = requireBinary('qemu-img');
  try {
    const { stdout } = await run(bin, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    const msg = (err.stderr || err.message).trim().replace(/^qemu-img: /, '');
    throw new HangarError('io-error', `qemu-img ${args[0]} failed: ${msg}`);
  }
}

export async function createImage(path: string, format: 'qcow2' | 'raw', sizeBytes: number): Promise<void> {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) {
    throw new HangarError('invalid-input', `disk size must be a positive number of bytes, got ${sizeBytes}`);
  }
  await qemuImg(['create', '-q', '-f', format, path, String(sizeBytes)]);
}

/** Grows an image to sizeBytes (qemu-img resize; the caller refuses shrinking). */
export async function resizeImage(path: string, format: string, sizeBytes: number): Promise<void> {
  await qemuImg(['resize', '-q', '-f', format, path, String(sizeBytes)]);
}

export async function imageInfo(path: string): Promise<ImageInfo> {
  // -U: read even while a running VM holds the image's lock.
  const out = await qemuImg(['info', '-U', '--output=json', path], 30_000);
  const j = JSON.parse(out) as {
    format: string; 'virtual-size': number; 'actual-size'?: number; 'backing-filename'?: string; 'full-backing-filename'?: string;
    'backing-filename-format'?: string; snapshots?: Array<{ name: string; 'vm-state-size': number }>;
  };
  const info: ImageInfo = { format: j.format, virtualSize: j['virtual-size'], snapshots: (j.snapshots ?? []).map((s) => ({ name: s.name, vmStateSize: s['vm-state-size'] })) };
  if (j['actual-size'] !== undefined) info.actualSize = j['actual-size'];
  const backing = j['full-backing-filename'] ?? j['backing-filename'];
  if (backing !== undefined) info.backingFile = backing;
  if (j['backing-filename-format'] !== undefined) info.backingFormat = j['backing-filename-format'];
  return info;
}

/** Internal snapshots of a stopped VM's qcow2 file: create (-c), apply (-a), delete (-d). */
export async function imageSnapshot(op: 'create' | 'apply' | 'delete', file: string, tag: string): Promise<void> {
  const flag = { create: '-c', apply: '-a', delete: '-d' }[op];
  await qemuImg(['snapshot', '-q', flag, tag, file], 600_000);
}

/** A new qcow2 overlay on backing (qemu-img create -b); -u: the backing may be open in a running QEMU, so its size is given. */
export async function createOverlay(overlay: string, backing: string, backingFormat: string, sizeBytes: number): Promise<void> {
  await qemuImg(['create', '-q', '-f', 'qcow2', '-u', '-b', backing, '-F', backingFormat, overlay, String(sizeBytes)]);
}

/** Writes an overlay's data into its backing file (the overlay is then no longer needed). */
export async function commitImage(overlay: string): Promise<void> {
  await qemuImg(['commit', '-q', '-f', 'qcow2', '-d', overlay], 24 * 3600_000);
}

/**
 * Points an overlay at another backing file. Safe mode (the default) first copies into the
 * overlay whatever differs between the old and the new backing, so the overlay's content stays
 * the same (block-stream's offline twin); unsafe only rewrites the name (when both hold the same data).
 * newBacking null: copy everything in (the overlay stands alone).
 */
export async function rebaseImage(overlay: string, newBacking: string | null, newBackingFormat: string | undefined, opts: { unsafe?: boolean; shared?: boolean } = {}): Promise<void> {
  const args = ['rebase', '-q', '-f', 'qcow2'];
  if (opts.unsafe) args.push('-u');
  if (opts.shared) args.push('-U');
  args.push('-b', newBacking ?? '');
  if (newBacking && newBackingFormat) args.push('-F', newBackingFormat);
  args.push(overlay);
  await qemuImg(args, 24 * 3600_000);
}

/** `qemu-img check`: null when clean, else what it found. */
export async function checkImage(file: string): Promise<string | null> {
  try {
    await qemuImg(['check', '-q', '-U', file], 600_000);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * `qemu-img convert -p`: copies/converts SRC (opened read-only) into a new image at DEST,
 * reporting qemu-img's own "(NN.NN/100%)" progress as a fraction 0..1. Aborting the signal kills
 * qemu-img and rejects with HangarError('cancelled'); the partial DEST is the caller's to remove.
 */
export function convertImage(src: string, srcFormat: string, dest: string, format: 'qcow2' | 'raw',
  opts: { onProgress?: (fraction: number) => void; signal?: AbortSignal; shared?: boolean } = {}): Promise<void> {
  const bin = requireBinary('qemu-img');
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) { reject(cancelledError()); return; }
    // -U: the source is open in a paused QEMU (quiescent, but locked).
    const child = spawn(bin, ['convert', '-p', ...(opts.shared ? ['-U'] : []), '-f', srcFormat, '-O', format, src, dest], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let buf = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      buf += d;
      const parts = buf.split(/[\r\n]/);
      buf = parts.pop() ?? '';
      for (const p of parts) {
        const m = /\((\d+(?:\.\d+)?)\/100%\)/.exec(p);
        if (m) opts.onProgress?.(Math.min(1, parseFloat(m[1]!) / 100));
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => { if (stderr.length < 64 * 1024) stderr += d; });
    const onAbort = (): void => { child.kill('SIGKILL'); };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (e) => {
      opts.signal?.removeEventListener('abort', onAbort);
      reject(new HangarError('io-error', `cannot run qemu-img: ${e.message}`));
    });
    child.on('close', (code, sig) => {
      opts.signal?.removeEventListener('abort', onAbort);
      if (opts.signal?.aborted) { reject(cancelledError()); return; }
      if (code === 0) { resolve(); return; }
      const msg = stderr.trim().replace(/^qemu-img: /, '') || `exited with ${code ?? sig}`;
      reject(new HangarError('io-error', `qemu-img convert failed: ${msg}`));
    });
  });
}

export function cancelledError(): HangarError {
  return new HangarError('cancelled', 'cancelled by the user');
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** Parses "10G", "512M", "1.5g", "1048576" into bytes. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtb]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) throw new HangarError('invalid-input', `"${text}" is not a size`, 'write sizes like 10G, 512M or 1048576');
  const bytes = Math.round(parseFloat(m[1]!) * UNITS[m[2]!.toLowerCase()]!);
  if (bytes <= 0) throw new HangarError('invalid-input', `size "${text}" must be larger than zero`);
  return bytes;
}
