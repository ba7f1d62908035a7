// --import-disk parsing, the API schema for imports/cancel, and the checks made before a byte is written.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { checkApiArgs } from '../../core/common/api-schema.ts';
import { parseImportDisk } from '../../core/node/cli/create-args.ts';
import { checkFreeSpace, formatBytes, inspectImportSource } from '../../core/node/store/import-disk.ts';

describe('--import-disk', () => {
  it('defaults to in place; copy/convert, format and bus', () => {
    assert.deepEqual(parseImportDisk('a.qcow2'), { source: resolve('a.qcow2'), mode: 'in-place' });
    assert.deepEqual(parseImportDisk('/x/a.vmdk,convert,format=raw,bus=sata'), { source: '/x/a.vmdk', mode: 'convert', format: 'raw', bus: 'sata' });
    assert.deepEqual(parseImportDisk('/x/a,,b.img,copy'), { source: '/x/a,b.img', mode: 'copy' });
  });

  it('refuses unknown options, two modes, format in place, bad values', () => {
    assert.throws(() => parseImportDisk('/a,shrink'), /unknown option "shrink"/);
    assert.throws(() => parseImportDisk('/a,copy,convert'), /choose one of copy, convert/);
    assert.throws(() => parseImportDisk('/a,format=qcow2'), /format= applies to copy or convert/);
    assert.throws(() => parseImportDisk('/a,convert,format=vmdk'), /format must be qcow2 or raw/);
    assert.throws(() => parseImportDisk('/a,bus=floppy'), /unknown bus "floppy"/);
    assert.throws(() => parseImportDisk('/a,copy=yes'), /takes no value/);
    assert.throws(() => parseImportDisk(',copy'), /needs the path/);
  });
});

describe('API schema: importDisks, requestId, cancelCreate', () => {
  it('accepts good shapes', () => {
    checkApiArgs('create', [{ definition: {}, importDisks: [{ source: '/a', mode: 'copy', format: 'raw', bus: 'ide' }], requestId: 'r1' }]);
    checkApiArgs('cancelCreate', ['r1']);
  });
  it('rejects bad ones', () => {
    assert.throws(() => checkApiArgs('create', [{ definition: {}, importDisks: [{ source: '/a', mode: 'move' }] }]), /argument 0.importDisks.0.mode/);
    assert.throws(() => checkApiArgs('create', [{ definition: {}, importDisks: [{ source: '/a', mode: 'copy', extra: 1 }] }]), /bad request to create/);
    assert.throws(() => checkApiArgs('create', [{ definition: {}, requestId: 'x'.repeat(65) }]), /at most 64 characters/);
    assert.throws(() => checkApiArgs('cancelCreate', []), /bad request to cancelCreate/);
    assert.throws(() => checkApiArgs('cancelCreate', [42]), /bad request to cancelCreate/);
  });
});

describe('import source checks', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hgimp-'));

  it('missing, directory, text file, odd-sized raw', async () => {
    await assert.rejects(inspectImportSource(join(dir, 'nope.img')), /does not exist/);
    await assert.rejects(inspectImportSource(dir), /is a directory/);
    writeFileSync(join(dir, 'notes.txt'), 'hello\n');
    await assert.rejects(inspectImportSource(join(dir, 'notes.txt')), /does not look like a disk image.*\(6 bytes\)/);
    writeFileSync(join(dir, 'odd.img'), Buffer.alloc(1000));
    await assert.rejects(inspectImportSource(join(dir, 'odd.img')), /not a whole number of 512-byte sectors/);
  });

  it('a whole-sector raw file is a raw disk', async () => {
    writeFileSync(join(dir, 'ok.img'), Buffer.alloc(4096));
    const s = await inspectImportSource(join(dir, 'ok.img'));
    assert.equal(s.format, 'raw');
    assert.equal(s.info.virtualSize, 4096);
    rmSync(dir, { recursive: true, force: true });
  });

  it('free space: refuses with the numbers', async () => {
    await checkFreeSpace(tmpdir(), 1024);
    await assert.rejects(checkFreeSpace(tmpdir(), 2 ** 60, 'disk0'), /not enough free space in .* for disk0: needs about [\d.]+ TiB .* free/);
    assert.equal(formatBytes(1536), '1.5 KiB');
  });
});
