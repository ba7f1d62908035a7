// `hangar log NAME [--tail N] [--follow]`: the serial log, fetched page by page (serialLogRead)
// so a log of any size streams through bounded memory on both sides, like `tail -n N -F`.
import type { CoreApi, SerialLogCursor } from '../../common/api.ts';
import { HangarError } from '../../common/errors.ts';

/** How often a follower asks for more once it reached the end. */
const FOLLOW_POLL_MS = 250;
/**
 * Bytes asked for per page. Small enough that each page's buffers die young in the core (V8
 * scavenges them at once; 1 MiB strings go to the large-object space and wait for a full GC,
 * which let the core's peak grow by tens of MiB over a long log), large enough to stream fast.
 */
const CLI_PAGE_BYTES = 64 * 1024;

export function parseTail(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,9}$/.test(value)) throw new HangarError('invalid-input', `--tail takes a number of lines, got "${value}"`, 'e.g. hangar log NAME --tail 100');
  return Number(value);
}

function writeOut(out: NodeJS.WritableStream, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const ok = out.write(chunk, (e) => { if (e) reject(e); });
    if (ok) resolve();
    else out.once('drain', resolve);
  });
}

/**
 * Writes the log to `out`. Following ends when the VM is no longer running and everything it
 * logged has been written (or when the caller is interrupted).
 */
export async function printLog(api: CoreApi, name: string, opts: { tailLines?: number; follow?: boolean },
  out: NodeJS.WritableStream = process.stdout, warn: (m: string) => void = (m) => process.stderr.write(`${m}\n`)): Promise<void> {
  let cursor: SerialLogCursor | undefined;
  for (;;) {
    const page = await api.serialLogRead(name, { maxBytes: CLI_PAGE_BYTES, ...(cursor ? { cursor } : opts.tailLines !== undefined ? { tailLines: opts.tailLines } : {}) });
    if (page.skipped) warn('hangar: part of the log rotated away while reading it');
    if (page.data.length > 0) await writeOut(out, Buffer.from(page.data, 'base64'));
    cursor = page.cursor;
    if (!page.eof) continue;
    if (!opts.follow || !page.active) return;
    await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
  }
}
