// Reads a VM's serial log in pages, for `hangar log` (and any client): a log of any size travels
// as many small replies instead of one message that outgrows the transport and the core's memory.
//
// A position is (inode, offset) of one log file, not an offset into the concatenation: rotation
// renames serial.log to serial.log.1 and so on, which keeps inodes, so a cursor stays valid while
// the log rotates under a reader (tail -F does the same). A cursor whose file was dropped by
// rotation resumes at the oldest file still kept, and the page says bytes were skipped. The birth
// time goes with the inode, so a new file that reuses a dropped file's inode number is not taken for it.
import { open, readdir, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { HangarError } from '../../common/errors.ts';
import type { SerialLogCursor, SerialLogPage } from '../../common/api.ts';
import { errnoCode } from '../io-error-reason.ts';
import { SerialLog } from './serial-log.ts';

/** The most one page carries (before base64): well under the 16 MiB message limit. */
export const LOG_PAGE_MAX_BYTES = 1024 * 1024;
const TAIL_BLOCK = 64 * 1024;
const ROTATED_RE = /^serial\.log\.(\d+)$/;

interface LogFile {
  path: string;
  ino: number;
  /** Birth time in ms (0 where unknown): inode numbers of deleted files are reused. */
  born: number;
  size: number;
}

/** serial.log.N … serial.log.1, serial.log with their inodes, oldest first. */
async function logFiles(vmDir: string): Promise<LogFile[]> {
  const dir = SerialLog.logDir(vmDir);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return [];
    throw readError(dir, e);
  }
  const rotated = names.flatMap((n) => {
    const m = ROTATED_RE.exec(n);
    return m ? [{ n: Number(m[1]), name: n }] : [];
  }).sort((a, b) => b.n - a.n).map((r) => r.name);
  if (names.includes('serial.log')) rotated.push('serial.log');
  const out: LogFile[] = [];
  for (const name of rotated) {
    const path = join(dir, name);
    try {
      const st = await stat(path);
      out.push({ path, ino: st.ino, born: st.birthtimeMs, size: st.size });
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw readError(path, e); // rotated away meanwhile: skip it
    }
  }
  return out;
}

function readError(path: string, e: unknown): HangarError {
  return new HangarError('io-error', `could not read the serial log ${path}: ${e instanceof Error ? e.message : String(e)}`,
    'check the permissions of the VM directory', { path });
}

async function readAt(fh: FileHandle, buf: Buffer, len: number, pos: number): Promise<number> {
  let got = 0;
  while (got < len) {
    const { bytesRead } = await fh.read(buf, got, len - got, pos + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

/** Where the last `lines` lines start (a final newline does not start a line of its own). */
async function tailStart(files: LogFile[], lines: number): Promise<{ index: number; offset: number }> {
  if (lines <= 0) return { index: files.length - 1, offset: files[files.length - 1]!.size };
  let seen = 0;
  let first = true;
  for (let i = files.length - 1; i >= 0; i--) {
    const f = files[i]!;
    const fh = await open(f.path, 'r').catch(() => null);
    if (!fh) continue;
    try {
      let end = f.size;
      const buf = Buffer.allocUnsafe(TAIL_BLOCK);
      while (end > 0) {
        const start = Math.max(0, end - TAIL_BLOCK);
        const got = await readAt(fh, buf, end - start, start);
        for (let j = got - 1; j >= 0; j--) {
          if (buf[j] !== 0x0a) { first = false; continue; }
          if (first) { first = false; continue; } // the newline that ends the last line
          if (++seen === lines) return { index: i, offset: start + j + 1 };
        }
        end = start;
      }
    } finally {
      await fh.close().catch(() => undefined);
    }
  }
  return { index: 0, offset: 0 };
}

export interface ReadLogOptions {
  /** Where the previous page ended; absent: from the oldest byte kept (or see tailLines). */
  cursor?: SerialLogCursor;
  /** Without a cursor: start at the last N lines. */
  tailLines?: number;
  /** Page size (at most LOG_PAGE_MAX_BYTES). */
  maxBytes?: number;
}

/** One page of the log from a cursor; `eof` when it reached the end of serial.log. */
export async function readLogPage(vmDir: string, opts: ReadLogOptions = {}): Promise<Omit<SerialLogPage, 'active'>> {
  const limit = Math.max(1, Math.min(opts.maxBytes ?? LOG_PAGE_MAX_BYTES, LOG_PAGE_MAX_BYTES));
  const files = await logFiles(vmDir);
  if (files.length === 0) return { data: '', cursor: opts.cursor ?? { ino: 0, offset: 0 }, eof: true };
  let index = 0;
  let offset = 0;
  let skipped = false;
  if (opts.cursor) {
    const c = opts.cursor;
    const i = files.findIndex((f) => f.ino === c.ino && (c.born ?? 0) === f.born);
    if (i >= 0) {
      index = i;
      // Smaller than the cursor: truncated (keep = 0 rotation); start that file again.
      offset = opts.cursor.offset <= files[i]!.size ? opts.cursor.offset : 0;
    } else {
      skipped = opts.cursor.ino !== 0;
    }
  } else if (opts.tailLines !== undefined) {
    ({ index, offset } = await tailStart(files, opts.tailLines));
  }

  const parts: Buffer[] = [];
  let left = limit;
  for (;;) {
    const f = files[index]!;
    if (left > 0 && offset < f.size) {
      const fh = await open(f.path, 'r').catch((e: unknown) => {
        if (errnoCode(e) === 'ENOENT') return null;
        throw readError(f.path, e);
      });
      if (fh) {
        try {
          // Rotated since the listing: the name holds another file now; the next call re-lists.
          if ((await fh.stat()).ino !== f.ino) break;
          const buf = Buffer.allocUnsafe(Math.min(left, f.size - offset));
          const got = await readAt(fh, buf, buf.length, offset);
          parts.push(buf.subarray(0, got));
          offset += got;
          left -= got;
        } finally {
          await fh.close().catch(() => undefined);
        }
      }
    }
    if (offset < f.size || index === files.length - 1) break;
    index++;
    offset = 0;
  }
  const last = files[index]!;
  const page: Omit<SerialLogPage, 'active'> = {
    data: Buffer.concat(parts).toString('base64'),
    cursor: { ino: last.ino, born: last.born, offset },
    eof: index === files.length - 1 && offset >= last.size,
  };
  if (skipped) page.skipped = true;
  return page;
}
