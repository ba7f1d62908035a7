// "Use an existing disk image": in place, copied or converted (qemu-img convert with progress
// events), cancelled half-way (nothing left behind), and refused inputs; with the real test guest.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { CoreEvents } from '../../core/common/api.ts';
import { HangarError } from '../../core/common/errors.ts';
import { connectCore } from '../../core/node/rpc/client.ts';
import type { CoreConnection } from '../../core/node/rpc/client.ts';
import { ensureTestGuest, READY_MARKER } from '../guest/guest.ts';
import { HANGAR_BIN, HangarHarness, sleep } from '../helpers/hangar.ts';

let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;
let src: string;
let conn: CoreConnection;
const progress: Array<Parameters<CoreEvents['createProgress']>[0]> = [];

const BOOT = ['--memory', '256', '--accel', 'tcg', '--firmware', 'bios'];

function imgInfo(path: string): { format: string; 'backing-filename'?: string } {
  return JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', path], { encoding: 'utf8' })) as { format: string };
}

async function bootToReady(name: string, id: string): Promise<void> {
  await h.ok(['start', name]);
  await h.waitForSerial(id, READY_MARKER, 1, 120_000);
  await h.ok(['destroy', name]);
}

/** A sparse raw image with 1 MiB of real data every 2 MiB: qemu-img needs seconds to convert it. */
function bigRaw(path: string, gib: number): void {
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, gib * 1024 ** 3);
    const blk = randomBytes(1024 * 1024);
    for (let mib = 0; mib < gib * 1024; mib += 2) writeSync(fd, blk, 0, blk.length, mib * 1024 * 1024);
  } finally {
    closeSync(fd);
  }
}

function qemuImgRunning(path: string): boolean {
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes('qemu-img') && cmd.includes(path)) return true;
    } catch { /* gone */ }
  }
  return false;
}

function vmFolders(): string[] {
  const dir = join(h.home, 'vms');
  return existsSync(dir) ? readdirSync(dir) : [];
}

before(async () => {
  guest = await ensureTestGuest();
  h = new HangarHarness();
  src = join(h.home, 'images');
  mkdirSync(src);
  // The API client below talks to the same daemon as the CLI.
  process.env.HANGAR_HOME = h.home;
  await h.ok(['list']);
  conn = await connectCore({ autostart: false, events: { createProgress: (e) => { progress.push(e); } } });
});

after(async () => {
  conn?.close();
  await h?.cleanup();
});

describe('import an existing disk image', () => {
  test('in place: boots from the image where it is; delete --delete-disks keeps it', async () => {
    // An overlay on the shared guest disk (which must never be written).
    const overlay = join(src, 'inplace.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', guest.disk, '-F', 'qcow2', overlay]);
    const vm = await h.json<{ id: string; definition: { disks: Array<{ file: string; format: string; owned: boolean }> } }>(
      ['create', '--name', 'inplace', ...BOOT, '--import-disk', overlay]);
    assert.equal(vm.definition.disks.length, 1);
    const { file, format, owned } = vm.definition.disks[0]!;
    assert.deepEqual({ file, format, owned }, { file: overlay, format: 'qcow2', owned: false });
    await bootToReady('inplace', vm.id);
    await h.ok(['delete', 'inplace', '--delete-disks']);
    assert.deepEqual(vmFolders(), [], 'the VM folder is gone');
    assert.ok(existsSync(overlay), 'the imported image is not the VM\'s: it stays');
    assert.equal(imgInfo(overlay)['backing-filename'], guest.disk);
  });

  test('convert a vmdk: a qcow2 in the VM folder, progress events, boots', async () => {
    const vmdk = join(src, 'guest.vmdk');
    execFileSync('qemu-img', ['convert', '-O', 'vmdk', guest.disk, vmdk]);
    const before = readFileSync(vmdk);
    progress.length = 0;
    const info = await conn.api.create({
      definition: { name: 'fromvmdk', memoryMiB: 256, accel: 'tcg', firmware: 'bios' },
      importDisks: [{ source: vmdk, mode: 'convert' }],
      requestId: 'req-vmdk',
    });
    const disk = info.definition!.disks[0]!;
    assert.equal(disk.file, join(info.dir, 'disk0.qcow2'));
    assert.equal(disk.owned, true);
    assert.equal(imgInfo(disk.file).format, 'qcow2');
    const mine = progress.filter((e) => e.requestId === 'req-vmdk');
    assert.ok(mine.length >= 2, `progress events: ${JSON.stringify(progress)}`);
    assert.equal(mine[0]!.step, 'converting disk0');
    assert.equal(mine.at(-1)!.fraction, 1);
    assert.ok(mine.every((e, i) => i === 0 || e.fraction >= mine[i - 1]!.fraction), 'fractions only grow');
    assert.deepEqual(readFileSync(vmdk), before, 'the source is not modified');
    await bootToReady('fromvmdk', info.id);

    // The same through the CLI (copy of a vmdk makes a qcow2): percentage lines when stderr is no terminal.
    const r = await h.run(['create', '--name', 'vmdkcopy', ...BOOT, '--import-disk', `${vmdk},copy`, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^converting disk0: 100%$/m);
    const copy = JSON.parse(r.stdout) as { dir: string; definition: { disks: Array<{ file: string; format: string }> } };
    assert.equal(copy.definition.disks[0]!.format, 'qcow2');
    assert.equal(imgInfo(copy.definition.disks[0]!.file).format, 'qcow2');
  });

  test('cancel half-way: create rejects as cancelled, nothing is left behind', async () => {
    const big = join(src, 'big.raw');
    bigRaw(big, 3);
    const foldersBefore = vmFolders();
    progress.length = 0;
    const t0 = Date.now();
    const create = conn.api.create({
      definition: { name: 'big', memoryMiB: 256, accel: 'tcg' },
      importDisks: [{ source: big, mode: 'copy' }],
      requestId: 'req-big',
    });
    const outcome = create.then(() => 'created', (e: unknown) => e);
    // Wait until qemu-img really copies.
    while (!progress.some((e) => e.requestId === 'req-big' && e.fraction > 0.02) && Date.now() - t0 < 30_000) await sleep(20);
    assert.ok(qemuImgRunning(big), 'qemu-img runs');
    assert.equal(await conn.api.cancelCreate('req-big'), true);
    const err = await outcome;
    assert.ok(err instanceof HangarError, `create should fail, got ${String(err)}`);
    assert.equal(err.code, 'cancelled');
    assert.match(err.message, /cancelled/);
    assert.ok(Math.max(...progress.filter((e) => e.requestId === 'req-big').map((e) => e.fraction)) < 1, 'cancelled before the end');
    assert.equal(await conn.api.cancelCreate('req-big'), false, 'nothing left to cancel');
    assert.ok(!(await conn.api.list()).some((v) => v.name === 'big'), 'no VM listed');
    assert.deepEqual(vmFolders(), foldersBefore, 'no VM folder left');
    assert.equal(qemuImgRunning(big), false, 'no qemu-img left');

    // Ctrl+C in the CLI does the same.
    const child = spawn(process.execPath, [HANGAR_BIN, 'create', '--name', 'bigcli', '--import-disk', `${big},copy`], { env: h.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const exited = new Promise<number>((r) => child.on('exit', (code) => r(code ?? -1)));
    const t1 = Date.now();
    while (!/copying disk0: [1-9]0%/.test(stderr) && child.exitCode === null && Date.now() - t1 < 30_000) await sleep(20);
    assert.match(stderr, /copying disk0: [1-9]0%/, 'progress lines before the Ctrl+C');
    child.kill('SIGINT');
    assert.equal(await exited, 130, stderr);
    assert.match(stderr, /cancelled; nothing was created/);
    assert.ok(!(await conn.api.list()).some((v) => v.name === 'bigcli'));
    assert.deepEqual(vmFolders(), foldersBefore);
    assert.equal(qemuImgRunning(big), false);
  });

  test('bad inputs are refused before anything is written', async () => {
    const dir = join(src, 'adir');
    mkdirSync(dir);
    const text = join(src, 'notes.txt');
    writeFileSync(text, 'not a disk image\n');
    const foldersBefore = vmFolders();
    const cases: Array<[string, RegExp]> = [
      [join(src, 'missing.qcow2'), /does not exist/],
      [dir, /is a directory/],
      [text, /does not look like a disk image.*17 bytes/],
      [`${join(src, 'inplace.qcow2')},shrink`, /--import-disk: unknown option "shrink"/],
      [`${join(src, 'inplace.qcow2')},copy,convert`, /choose one of copy, convert/],
      [`${join(src, 'inplace.qcow2')},format=raw`, /format= applies to copy or convert/],
    ];
    for (const [spec, re] of cases) {
      const r = await h.run(['create', '--name', 'bad', '--import-disk', spec]);
      assert.equal(r.code, 2, `${spec}: ${r.stderr}`);
      assert.match(r.stderr, re, spec);
    }
    await assert.rejects(conn.api.create({ definition: { name: 'bad' }, importDisks: [{ source: text, mode: 'copy' }] }), /does not look like a disk image/);
    assert.ok(!(await conn.api.list()).some((v) => v.name === 'bad'));
    assert.deepEqual(vmFolders(), foldersBefore);
  });
});
