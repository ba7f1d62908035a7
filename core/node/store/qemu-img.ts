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
  const j = JSON.parse(out) as { format: string; 'virtual-size': number; 'actual-size'?: number; 'backing-filename'?: string };
  const info: ImageInfo = { format: j.format, virtualSize: j['virtual-size'] };
  if (j['actual-size'] !== undefined) info.actualSize = j['actual-size'];
  if (j['backing-filename'] !== undefined) info.backingFile = j['backing-filename'];
  return info;
}

/**
 * `qemu-img convert -p`: copies/converts SRC (opened read-only) into a new image at DEST,
 * reporting qemu-img's own "(NN.NN/100%)" progress as a fraction 0..1. Aborting the signal kills
 * qemu-img and rejects with HangarError('cancelled'); the partial DEST is the caller's to remove.
 */
export function convertImage(src: string, srcFormat: string, dest: string, format: 'qcow2' | 'raw',
  opts: { onProgress?: (fraction: number) => void; signal?: AbortSignal } = {}): Promise<void> {
  const bin = requireBinary('qemu-img');
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) { reject(cancelledError()); return; }
    const child = spawn(bin, ['convert', '-p', '-f', srcFormat, '-O', format, src, dest], { stdio: ['ignore', 'pipe', 'pipe'] });
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
