// Live migration between two Hangar cores on this machine (issue 18), with real QEMU (TCG) and
// the real test guest. Two data dirs = two cores; the destination is reached as a saved
// connection in the source's config: hangar+unix:///<its socket> (the same tunnelled path an
// ssh:// connection takes, without sshd). Proves:
//   - shared storage: a counting loop in the guest keeps counting on the destination's console
//     (no reboot: no READY marker there, uptime goes on); data written to the disk before and
//     during the migration is read back there; the source forgets the VM and keeps its definition;
//   - --copy-storage: the disk (only the source had it) is mirrored into the destination's folder;
//     the guest's data is in the destination's image file, the source's file is untouched;
//   - cancel mid-way (Ctrl+C of `hangar migrate`, bandwidth capped): the source keeps running, the
//     destination has no VM and no folder left;
//   - the destination's QEMU killed mid-way: the source keeps running, the error names it;
//   - a blocker (a CD-ROM file the destination lacks) is refused with the reason before anything starts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import { HANGAR_BIN, HangarHarness, sleep } from '../helpers/hangar.ts';

let src: HangarHarness;
let dst: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;
const DEST = 'dest';

before(async () => {
  guest = await ensureTestGuest();
  src = new HangarHarness();
  dst = new HangarHarness();
  // The destination core runs (its own data dir, runtime dir and socket).
  const status = await dst.json<{ socketPath: string }>(['daemon', 'status']).catch(async () => {
    await dst.ok(['list']);
    return dst.json<{ socketPath: string }>(['daemon', 'status']);
  });
  mkdirSync(join(src.home, 'config'), { recursive: true, mode: 0o700 });
  writeFileSync(join(src.home, 'config', 'connections.json'), JSON.stringify({ version: 1, connections: [{ name: DEST, uri: `hangar+unix://${status.socketPath}` }] }));
});

after(async () => {
  await src?.cleanup();
  await dst?.cleanup();
});

interface Info { id: string; name: string; state: string; dir: string; pid?: number; definition: { disks: Array<{ id: string; file: string }> } }

async function boot(name: string, opts: { memoryMiB?: number; extra?: Record<string, unknown>; disk?: string } = {}): Promise<Info> {
  const file = join(src.home, `${name}.json`);
  writeFileSync(file, JSON.stringify({ memoryMiB: opts.memoryMiB ?? 160, accel: 'tcg', boot: { kernel: { kernel: guest.kernel, initrd: guest.initrd, append: GUEST_CMDLINE } }, ...opts.extra }));
  const vm = await src.json<Info>(['create', '--name', name, '--file', file, '--new-disk', opts.disk ?? '16M']);
  await src.ok(['start', name]);
  await src.waitForSerial(vm.id, READY_MARKER, 1, 120_000);
  return src.json<Info>(['show', name]);
}

function lastCount(log: string): number {
  const all = [...log.matchAll(/\bC(\d+)\r?\n/g)];
  return all.length ? Number(all[all.length - 1]![1]) : 0;
}

async function waitFor(what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await pred()) return;
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const COUNTER = 'i=0; while true; do i=$((i+1)); echo C$i; sleep 0.2; done &';
// Writes W<n> to sector 4096 of the disk every 0.3 s (synced), and the last value to /tmp/lastw.
const WRITER = '(n=0; while true; do n=$((n+1)); echo W$n > /tmp/lastw; dd if=/tmp/lastw of=/dev/vda bs=512 seek=4096 conv=fsync,notrunc 2>/dev/null; sleep 0.3; done) &';

/** Starts `hangar migrate` and hands back its process (stderr collected). */
function migrateProcess(args: string[]): { child: ReturnType<typeof spawn>; out: () => string; done: Promise<number> } {
  const child = spawn(process.execPath, [HANGAR_BIN, 'migrate', ...args], { env: src.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const done = new Promise<number>((r) => child.on('exit', (c) => r(c ?? -1)));
  return { child, out: () => out, done };
}

describe('live migration between two Hangar cores', { timeout: 600_000 }, () => {
  test('shared storage: the guest keeps counting on the destination, no restart; disk data written before and during is there', async () => {
    const vm = await boot('mig-a');
    // Data before: a known block at sector 0.
    let out = await src.consoleCommand('mig-a', 'dd if=/dev/urandom of=/tmp/blk bs=512 count=64 2>/dev/null; dd if=/tmp/blk of=/dev/vda conv=fsync 2>/dev/null; md5sum /tmp/blk; cat /proc/uptime', 4);
    const md5 = /([0-9a-f]{32})\s+\/tmp\/blk/.exec(out)?.[1];
    assert.ok(md5, out);
    const uptimeBefore = Number(/^(\d+\.\d+) /m.exec(out)?.[1]);
    await src.consoleCommand('mig-a', `${COUNTER} ${WRITER}`, 1);
    await waitFor('the counter on the source', () => lastCount(src.serialLog(vm.id)) >= 5);
    const r = await src.run(['migrate', 'mig-a', '--to', DEST, '--json'], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { downtimeMs: number; totalTimeMs: number; destination: { state: string }; definitionKeptAt: string };
    assert.equal(res.destination.state, 'running');
    assert.match(r.stderr, /memory/, 'progress was drawn');
    const atSwitch = lastCount(src.serialLog(vm.id));
    // The source forgot it, keeping its definition aside; the destination has it, running.
    const srcList = await src.json<Array<{ name: string }>>(['list']);
    assert.ok(!srcList.some((v) => v.name === 'mig-a'), 'the source no longer lists it');
    assert.ok(existsSync(res.definitionKeptAt), res.definitionKeptAt);
    assert.equal((JSON.parse(readFileSync(res.definitionKeptAt, 'utf8')) as { definition: { id: string } }).definition.id, vm.id);
    assert.ok(existsSync(vm.definition.disks[0]!.file), 'the disk stays where it is (shared storage)');
    const there = await dst.json<Info>(['show', 'mig-a']);
    assert.equal(there.state, 'running');
    assert.equal(there.id, vm.id);
    // The loop goes on there: counts past the switch-over, with no boot in between.
    await waitFor('the counter on the destination', () => lastCount(dst.serialLog(vm.id)) > atSwitch + 5);
    assert.ok(!dst.serialLog(vm.id).includes(READY_MARKER), 'the guest did not boot again');
    out = await dst.consoleCommand('mig-a', 'kill %1 %2; sleep 0.5; cat /proc/uptime; echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda bs=512 count=64 2>/dev/null | md5sum; dd if=/dev/vda bs=512 skip=4096 count=1 2>/dev/null | head -c 16; echo; echo "LAST=$(cat /tmp/lastw)"', 5);
    const uptimeAfter = Number(/^(\d+\.\d+) /m.exec(out)?.[1]);
    assert.ok(uptimeAfter > uptimeBefore, `uptime went on (${uptimeBefore} -> ${uptimeAfter}): ${out}`);
    assert.match(out, new RegExp(`${md5}\\s+-`), 'the block written before migrating is there');
    const last = /LAST=(W\d+)/.exec(out)?.[1];
    assert.ok(last && Number(last.slice(1)) > 3, out);
    assert.match(out, new RegExp(`^${last}\\r?$`, 'm'), 'the last block written (also during the migration) is on the disk');
    await dst.ok(['destroy', 'mig-a']);
    await dst.ok(['delete', 'mig-a']);
  });

  test('--copy-storage: the disk only the source has is mirrored into the destination\'s folder', async () => {
    const vm = await boot('mig-c');
    const out = await src.consoleCommand('mig-c', 'dd if=/dev/urandom of=/tmp/blk bs=1024 count=1024 2>/dev/null; dd if=/tmp/blk of=/dev/vda bs=1024 conv=fsync 2>/dev/null; md5sum /tmp/blk', 5);
    const md5 = /([0-9a-f]{32})\s+\/tmp\/blk/.exec(out)?.[1];
    assert.ok(md5, out);
    await src.consoleCommand('mig-c', COUNTER, 1);
    const srcDisk = vm.definition.disks[0]!.file;
    const r = await src.run(['migrate', 'mig-c', '--to', DEST, '--copy-storage', '--json'], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /storage|disks/);
    const there = await dst.json<Info>(['show', 'mig-c']);
    assert.equal(there.state, 'running');
    const dstDisk = there.definition.disks[0]!.file;
    assert.ok(dstDisk.startsWith(there.dir), `the copy is the destination's own (${dstDisk} in ${there.dir})`);
    assert.ok(existsSync(srcDisk), 'the source\'s disk file is kept');
    const atSwitch = lastCount(src.serialLog(vm.id));
    await waitFor('the counter on the destination', () => lastCount(dst.serialLog(vm.id)) > atSwitch + 3);
    // The data is in the destination's image file (read on the host once the VM is off).
    await dst.ok(['destroy', 'mig-c']);
    const raw = join(dst.home, 'copy.raw');
    execFileSync('qemu-img', ['dd', '-f', 'qcow2', '-O', 'raw', 'bs=1024', 'count=1024', `if=${dstDisk}`, `of=${raw}`]);
    assert.equal(createHash('md5').update(readFileSync(raw)).digest('hex'), md5);
    rmSync(raw);
    await dst.ok(['delete', 'mig-c', '--delete-disks']);
  });

  test('cancel mid-way (Ctrl+C): the source keeps running, the destination has nothing left', async () => {
    const vm = await boot('mig-x', { memoryMiB: 192 });
    await src.consoleCommand('mig-x', COUNTER, 1);
    const m = migrateProcess(['mig-x', '--to', DEST, '--bandwidth', '2']);
    await waitFor('the memory phase', () => /memory \|.*RAM/.test(m.out()), 60_000);
    const destVm = await dst.json<Array<{ id: string; state: string }>>(['list']);
    assert.ok(destVm.some((v) => v.id === vm.id), 'the destination prepared the VM');
    m.child.kill('SIGINT');
    const code = await m.done;
    assert.notEqual(code, 0, m.out());
    assert.match(m.out(), /cancel/i);
    assert.equal(await src.state('mig-x'), 'running');
    const before = lastCount(src.serialLog(vm.id));
    await waitFor('the counter going on at the source', () => lastCount(src.serialLog(vm.id)) > before + 3);
    await waitFor('the destination without the VM', async () => !(await dst.json<Array<{ id: string }>>(['list'])).some((v) => v.id === vm.id));
    assert.ok(!existsSync(join(dst.home, 'vms', vm.id)), 'no folder left there');
    // And lifecycle actions work again at the source.
    await src.ok(['pause', 'mig-x']);
    await src.ok(['resume', 'mig-x']);
  });

  test('the destination\'s QEMU killed mid-way: the source keeps running and the error says so', async () => {
    const vm = await boot('mig-k', { memoryMiB: 192 });
    await src.consoleCommand('mig-k', COUNTER, 1);
    const m = migrateProcess(['mig-k', '--to', DEST, '--bandwidth', '2']);
    await waitFor('the memory phase', () => /memory \|.*RAM/.test(m.out()), 60_000);
    const there = await dst.json<Info>(['show', vm.id]);
    assert.ok(there.pid, 'the destination QEMU runs');
    process.kill(there.pid!, 'SIGKILL');
    const code = await m.done;
    assert.notEqual(code, 0);
    assert.match(m.out(), /failed/);
    assert.match(m.out(), /destination/);
    assert.match(m.out(), /keeps running here/);
    assert.equal(await src.state('mig-k'), 'running');
    const before = lastCount(src.serialLog(vm.id));
    await waitFor('the counter going on at the source', () => lastCount(src.serialLog(vm.id)) > before + 3);
    await waitFor('the destination without the VM', async () => !(await dst.json<Array<{ id: string }>>(['list'])).some((v) => v.id === vm.id));
    await src.ok(['destroy', 'mig-k']);
    await src.ok(['destroy', 'mig-x']).catch(() => {});
  });

  test('blockers: a CD-ROM file the destination lacks, and a name the destination has, are refused before anything starts', async () => {
    const iso = join(src.home, 'gone.iso');
    copyFileSync(guest.iso, iso);
    const vm = await boot('mig-b', { extra: { cdroms: [{ id: 'cd0', file: iso }] } });
    rmSync(iso); // QEMU keeps it open here; the destination cannot open it
    let r = await src.run(['migrate', 'mig-b', '--to', DEST]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /CD-ROM "cd0" file .*gone\.iso is not usable on dest/);
    assert.match(r.stderr, /eject it first/);
    assert.ok(!(await dst.json<Array<{ id: string }>>(['list'])).some((v) => v.id === vm.id), 'nothing was made there');
    assert.equal(await src.state('mig-b'), 'running');
    // A VM of the same name there.
    await src.ok(['device', 'edit', 'mig-b', 'cdrom', 'cd0', 'file=']);
    await dst.ok(['create', '--name', 'mig-b', '--memory', '32']);
    r = await src.run(['migrate', 'mig-b', '--to', DEST]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /already has a VM named "mig-b"/);
    assert.equal(readdirSync(join(dst.home, 'vms')).length, 1, 'only the destination\'s own VM');
    await src.ok(['destroy', 'mig-b']);
  });
});
