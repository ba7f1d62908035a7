// The paged serial log reader: cursors by inode survive rotation, tails span files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialLog } from '../../core/node/console/serial-log.ts';
import { readLogPage } from '../../core/node/console/serial-log-reader.ts';
import type { SerialLogCursor } from '../../core/common/api.ts';

async function readAllPaged(vmDir: string, cursor?: SerialLogCursor, maxBytes = 1000): Promise<{ text: string; cursor: SerialLogCursor; skipped: boolean }> {
  let text = '';
  let skipped = false;
  for (;;) {
    const page = await readLogPage(vmDir, cursor ? { cursor, maxBytes } : { maxBytes });
    text += Buffer.from(page.data, 'base64').toString('latin1');
    skipped ||= page.skipped === true;
    cursor = page.cursor;
    if (page.eof) return { text, cursor, skipped };
  }
}

test('pages through rotated files in order; a cursor keeps its place while the log rotates', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hgt-slr-'));
  try {
    const log = new SerialLog(dir, { maxBytes: 4096, keep: 3 });
    const line = (n: number): string => `line ${String(n).padStart(6, '0')}\n`;
    let written = '';
    for (let n = 0; n < 2000; n++) { log.append(Buffer.from(line(n))); written += line(n); }
    await log.flush();
    const first = await readAllPaged(dir);
    assert.equal(first.text, written.slice(-first.text.length), 'the newest bytes, in order');
    assert.ok(first.text.length > 3 * 4096, 'three full rotated files and serial.log kept');
    // More output rotates the files under the cursor: the next read continues exactly where it stopped.
    let more = '';
    for (let n = 2000; n < 2200; n++) { log.append(Buffer.from(line(n))); more += line(n); }
    await log.flush();
    const next = await readAllPaged(dir, first.cursor);
    assert.equal(next.text, more);
    assert.equal(next.skipped, false);
    // So much more that the cursor's file is dropped: resumes at the oldest kept byte, says so.
    for (let n = 2200; n < 4000; n++) log.append(Buffer.from(line(n)));
    await log.flush();
    const after = await readAllPaged(dir, next.cursor);
    assert.equal(after.skipped, true);
    assert.match(after.text, /line 003999\n$/);
    // Tails: the last lines, across a file boundary, and none.
    const tail = await readLogPage(dir, { tailLines: 300 });
    assert.equal(Buffer.from(tail.data, 'base64').toString().split('\n').length - 1, 300);
    const none = await readLogPage(dir, { tailLines: 0 });
    assert.equal(none.data, '');
    assert.equal(none.eof, true);
    await log.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('no log yet: an empty page at eof', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hgt-slr-'));
  try {
    const page = await readLogPage(dir);
    assert.deepEqual(page, { data: '', cursor: { ino: 0, offset: 0 }, eof: true });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
