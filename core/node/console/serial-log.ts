// The on-disk serial log of one VM: <vmDir>/logs/serial.log, rotated to serial.log.1 … serial.log.N
// (serial.log.1 is the newest rotated file). Appends never block the caller: chunks are queued and
// written in order by a single background drain loop; flush() waits for the queue to empty.

import { chmod, lstat, mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { HangarError } from '../../common/errors.ts';
import { ioError as writeError } from '../io-error-reason.ts';

/** Rotate once serial.log would pass 8 MiB (HANGAR_SERIAL_LOG_MAX_BYTES sets another size). */
export const DEFAULT_LOG_MAX_BYTES = 8 * 1024 * 1024;

/** The size cap of one log file: HANGAR_SERIAL_LOG_MAX_BYTES (at least 4 KiB) or 8 MiB. */
export function logMaxBytesFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number(env.HANGAR_SERIAL_LOG_MAX_BYTES);
  return Number.isSafeInteger(n) && n >= 4096 ? n : DEFAULT_LOG_MAX_BYTES;
}
/** Keep serial.log.1 … serial.log.3. */
export const DEFAULT_LOG_KEEP = 3;

const LOG_NAME = 'serial.log';
const ROTATED_RE = /^serial\.log\.(\d+)$/;

export interface SerialLogOptions {
  /** Maximum size of one log file in bytes (default 8 MiB). Files never exceed it. */
  maxBytes?: number;
  /** Number of rotated files to keep (default 3; 0 = truncate instead of rotating). */
  keep?: number;
  /**
   * Told when writing starts failing (once per failure streak, with the reason) and when it works
   * again (null). A failed write never throws into append(): the guest's console keeps working
   * and only the log misses those bytes.
   */
  onStatus?: (error: HangarError | null) => void;
}

function errCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : undefined;
}

function errMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class SerialLog {
  readonly vmDir: string;
  readonly dir: string;
  readonly path: string;
  readonly maxBytes: number;
  readonly keep: number;

  private fh: FileHandle | null = null;
  private curSize = 0;
  private pending: Buffer[] = [];
  private running = false;
  private drainPromise: Promise<void> = Promise.resolve();
  private error: unknown = null;
  private closed = false;
  private closing: Promise<void> | null = null;
  private failing = false;
  private readonly onStatus: ((error: HangarError | null) => void) | undefined;

  constructor(vmDir: string, opts: SerialLogOptions = {}) {
    const maxBytes = opts.maxBytes ?? logMaxBytesFromEnv();
    const keep = opts.keep ?? DEFAULT_LOG_KEEP;
    if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
      throw new HangarError('invalid-input', `serial log maxBytes must be a positive integer, got ${String(maxBytes)}`);
    }
    if (!Number.isSafeInteger(keep) || keep < 0) {
      throw new HangarError('invalid-input', `serial log keep must be a non-negative integer, got ${String(keep)}`);
    }
    this.vmDir = vmDir;
    this.dir = SerialLog.logDir(vmDir);
    this.path = join(this.dir, LOG_NAME);
    this.maxBytes = maxBytes;
    this.keep = keep;
    this.onStatus = opts.onStatus;
  }

  static logDir(vmDir: string): string {
    return join(vmDir, 'logs');
  }

  static logPath(vmDir: string): string {
    return join(SerialLog.logDir(vmDir), LOG_NAME);
  }

  /**
   * Queue bytes for writing. Returns immediately; the bytes are copied, so the caller may reuse
   * its buffer. Throws invalid-state after close().
   */
  append(chunk: Uint8Array): void {
    if (this.closed) throw new HangarError('invalid-state', `the serial log ${this.path} is closed`);
    if (chunk.length === 0) return;
    this.pending.push(Buffer.from(chunk));
    if (!this.running) {
      this.running = true;
      this.drainPromise = this.drain();
    }
  }

  /**
   * Resolves once everything appended so far is on disk. Rejects with io-error if a write failed
   * since the last flush (the failed bytes are lost; later appends retry opening the file).
   */
  async flush(): Promise<void> {
    while (this.running) await this.drainPromise;
    if (this.error !== null) {
      const e = this.error;
      this.error = null;
      throw writeError('write the serial log', this.path, e);
    }
  }

  /** Flush and close the file. Idempotent; append() throws afterwards. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      this.closing = (async () => {
        try {
          await this.flush();
        } finally {
          await this.closeHandle();
        }
      })();
    }
    return this.closing;
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const chunks = this.pending;
        this.pending = [];
        const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
        try {
          await this.writeData(data);
          if (this.failing) this.report(null);
        } catch (e) {
          if (this.error === null) this.error = e;
          if (!this.failing) this.report(writeError('write the serial log', this.path, e));
          await this.closeHandle();
        }
      }
    } finally {
      this.running = false;
    }
  }

  private report(error: HangarError | null): void {
    this.failing = error !== null;
    try {
      this.onStatus?.(error);
    } catch {
      // A listener's bug must not break logging.
    }
  }

  private async writeData(data: Buffer): Promise<void> {
    let off = 0;
    while (off < data.length) {
      const fh = await this.ensureOpen();
      if (this.curSize >= this.maxBytes) {
        await this.rotate();
        continue;
      }
      const n = Math.min(this.maxBytes - this.curSize, data.length - off);
      await writeAll(fh, data.subarray(off, off + n));
      this.curSize += n;
      off += n;
    }
  }

  private async ensureOpen(): Promise<FileHandle> {
    if (this.fh) return this.fh;
    await securePrivateDir(this.dir);
    const fh = await open(this.path, 'a', 0o600);
    try {
      this.curSize = (await fh.stat()).size;
    } catch (e) {
      await fh.close().catch(() => undefined);
      throw e;
    }
    this.fh = fh;
    return fh;
  }

  private async closeHandle(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    if (fh) await fh.close().catch(() => undefined);
  }

  private async rotate(): Promise<void> {
    await this.closeHandle();
    if (this.keep === 0) {
      const fh = await open(this.path, 'w', 0o600);
      this.fh = fh;
      this.curSize = 0;
      return;
    }
    // Drop the oldest kept file and anything beyond `keep` (left by an earlier, larger setting).
    for (const { n, path } of await listRotated(this.dir)) {
      if (n >= this.keep) await rm(path, { force: true });
    }
    for (let i = this.keep - 1; i >= 1; i--) {
      await renameIfExists(join(this.dir, `${LOG_NAME}.${i}`), join(this.dir, `${LOG_NAME}.${i + 1}`));
    }
    await renameIfExists(this.path, join(this.dir, `${LOG_NAME}.1`));
    this.fh = await open(this.path, 'a', 0o600);
    this.curSize = 0;
  }

  /** All logged bytes still on disk: rotated files oldest→newest, then serial.log. */
  static async readAll(vmDir: string): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (const path of await logFilesOldestFirst(SerialLog.logDir(vmDir))) {
      try {
        parts.push(await readFile(path));
      } catch (e) {
        if (errCode(e) !== 'ENOENT') throw ioError(path, e);
      }
    }
    return Buffer.concat(parts);
  }

  /** The last `maxBytes` of readAll(vmDir), reading only the files (and parts) it needs. */
  static async tail(vmDir: string, maxBytes: number): Promise<Buffer> {
    if (!(maxBytes > 0)) return Buffer.alloc(0);
    const files = (await logFilesOldestFirst(SerialLog.logDir(vmDir))).reverse();
    const parts: Buffer[] = [];
    let remaining = Math.floor(maxBytes);
    for (const path of files) {
      if (remaining <= 0) break;
      let fh: FileHandle;
      try {
        fh = await open(path, 'r');
      } catch (e) {
        if (errCode(e) === 'ENOENT') continue;
        throw ioError(path, e);
      }
      try {
        const size = (await fh.stat()).size;
        const take = Math.min(size, remaining);
        if (take === 0) continue;
        const buf = Buffer.allocUnsafe(take);
        let got = 0;
        while (got < take) {
          const { bytesRead } = await fh.read(buf, got, take - got, size - take + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        parts.push(got === take ? buf : buf.subarray(0, got));
        remaining -= got;
      } catch (e) {
        throw ioError(path, e);
      } finally {
        await fh.close().catch(() => undefined);
      }
    }
    return Buffer.concat(parts.reverse());
  }
}

function ioError(path: string, e: unknown): HangarError {
  return new HangarError('io-error', `could not read the serial log ${path}: ${errMessage(e)}`, undefined, { path });
}

/**
 * Creates the logs dir 0700 and tightens what earlier versions left readable by others (the dir
 * was 0755 and serial.log 0644): guest output may hold passwords and keys. Regular files only;
 * symlinks are never followed.
 */
export async function securePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await lstat(dir);
  if ((st.mode & 0o077) !== 0) await chmod(dir, 0o700);
  for (const name of await readdir(dir)) {
    const p = join(dir, name);
    const f = await lstat(p).catch(() => null);
    if (f?.isFile() && (f.mode & 0o077) !== 0) await chmod(p, f.mode & 0o700).catch(() => undefined);
  }
}

async function writeAll(fh: FileHandle, data: Buffer): Promise<void> {
  let off = 0;
  while (off < data.length) {
    const { bytesWritten } = await fh.write(data, off, data.length - off);
    off += bytesWritten;
  }
}

async function renameIfExists(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (e) {
    if (errCode(e) !== 'ENOENT') throw e;
  }
}

async function readNames(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (e) {
    if (errCode(e) === 'ENOENT') return [];
    throw e;
  }
}

function rotatedIn(dir: string, names: string[]): { n: number; path: string }[] {
  const out: { n: number; path: string }[] = [];
  for (const name of names) {
    const m = ROTATED_RE.exec(name);
    if (m) out.push({ n: Number(m[1]), path: join(dir, name) });
  }
  return out;
}

async function listRotated(dir: string): Promise<{ n: number; path: string }[]> {
  return rotatedIn(dir, await readNames(dir));
}

/** serial.log.N … serial.log.1, serial.log (those that exist at listing time). */
async function logFilesOldestFirst(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readNames(dir);
  } catch (e) {
    throw ioError(dir, e);
  }
  const files = rotatedIn(dir, names).sort((a, b) => b.n - a.n).map((r) => r.path);
  if (names.includes(LOG_NAME)) files.push(join(dir, LOG_NAME));
  return files;
}
