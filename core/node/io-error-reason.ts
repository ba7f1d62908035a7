// Turns a failed file-system call into one line a user can act on: what happened (disk full,
// read-only file system, no permission), which path, and the fix. Used wherever the core writes
// into the data dir (definitions, serial logs), so "ENOSPC: no space left on device, open
// '/x/.vm.json.tmp-1a2b'" reaches the user as "the disk holding /x is full".
import { dirname } from 'node:path';
import { HangarError } from '../common/errors.ts';

export function errnoCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : undefined;
}

/** What went wrong with `path` while doing `what` ("save the definition", "write the serial log"), and the fix. */
export function ioFailure(what: string, path: string, e: unknown): { message: string; hint: string } {
  const code = errnoCode(e);
  const where = dirname(path);
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return {
        message: `could not ${what}: the disk holding ${where} is full${code === 'EDQUOT' ? ' (quota exceeded)' : ''}`,
        hint: `free space on the file system of ${where} (df -h ${where}), then try again`,
      };
    case 'EROFS':
      return {
        message: `could not ${what}: ${where} is on a read-only file system`,
        hint: `remount it read-write (mount -o remount,rw), or point HANGAR_HOME at a writable directory`,
      };
    case 'EACCES':
    case 'EPERM':
      return {
        message: `could not ${what}: no permission to write ${path}`,
        hint: `make ${where} writable by this user (ls -ld ${where}), or point HANGAR_HOME at a directory of your own`,
      };
    default:
      return {
        message: `could not ${what} (${path}): ${e instanceof Error ? e.message : String(e)}`,
        hint: `check ${where}: free space, permissions and that its file system is mounted read-write`,
      };
  }
}

/** A HangarError('io-error') for a failed write; HangarErrors pass through unchanged. */
export function ioError(what: string, path: string, e: unknown): HangarError {
  if (e instanceof HangarError) return e;
  const { message, hint } = ioFailure(what, path, e);
  return new HangarError('io-error', message, hint, { path, code: errnoCode(e) });
}

/** A short reason for a VM's status line: "serial log not written: disk full". */
export function shortIoReason(e: unknown): string {
  switch (errnoCode(e)) {
    case 'ENOSPC': return 'disk full';
    case 'EDQUOT': return 'quota exceeded';
    case 'EROFS': return 'read-only file system';
    case 'EACCES':
    case 'EPERM': return 'permission denied';
    default: return e instanceof Error ? e.message : String(e);
  }
}

const SERIAL_LOG_REASON = 'serial log not written: ';

/**
 * The VM's reason line after its serial log reported `error` (null: writing works again). A
 * running VM keeps running; only this line tells the user the log is missing output, and why.
 */
export function serialLogReason(current: string | undefined, error: HangarError | null): string | undefined {
  if (error) {
    process.stderr.write(`hangar: ${error.message}${error.hint ? ` (${error.hint})` : ''}\n`);
    return `${SERIAL_LOG_REASON}${error.message}${error.hint ? `; ${error.hint}` : ''}`;
  }
  return current?.startsWith(SERIAL_LOG_REASON) ? undefined : current;
}

/** What query-block says about one drive (the fields used here). */
interface BlockStatus {
  qdev?: string;
  inserted?: { 'node-name'?: string; image?: { filename?: string } };
  'io-status'?: 'ok' | 'failed' | 'nospace';
}

/**
 * Why QEMU paused a VM on an I/O error, naming the disk: QEMU stops the guest on ENOSPC by default
 * (werror=enospc for -blockdev drives) and keeps an io-status per drive, so query-block tells which
 * disk and whether its host file system is full. Undefined when no drive reports an error.
 */
export async function ioErrorPauseReason(qmp: { queryBlock(): Promise<BlockStatus[]> },
  disks: ReadonlyArray<{ id: string; file?: string }>): Promise<string | undefined> {
  const blocks = await qmp.queryBlock();
  const bad = blocks.filter((b) => b['io-status'] === 'nospace' || b['io-status'] === 'failed');
  if (bad.length === 0) return undefined;
  const parts = bad.map((b) => {
    const node = b.inserted?.['node-name'] ?? '';
    const disk = disks.find((d) => node === `${d.id}-fmt` || node === `${d.id}-file` || b.qdev === d.id || b.qdev?.includes(`/${d.id}/`));
    const file = disk?.file ?? b.inserted?.image?.filename;
    const name = `disk ${disk?.id ?? (node || b.qdev || '?')}${file ? ` (${file})` : ''}`;
    return b['io-status'] === 'nospace'
      ? { text: `disk full: ${name}`, fix: `free space on the file system holding ${file ? dirname(file) : 'it'}` }
      : { text: `I/O error on ${name}`, fix: 'check the host storage (dmesg)' };
  });
  return `paused: ${parts.map((p) => p.text).join('; ')}; ${parts.map((p) => p.fix).join('; ')}, then resume`;
}
