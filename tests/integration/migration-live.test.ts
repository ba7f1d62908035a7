// Live migration between two Hangar cores on this machine (issue 18), with real QEMU (TCG) and
// the real test guest. Two data dirs = two cores; the destination is reached as a saved
// connection in the source's config: hangar+unix:///<its socket>, and the same core as ssh://
// through a throw-away sshd (tests/helpers/sshd.ts). Proves:
//   - shared storage: a counting loop in the guest keeps counting on the destination's console
//     (no reboot: no READY marker there, uptime goes on); data written to the disk before and
//     during the migration is read back there; the source forgets the VM and keeps its definition;
//   - --copy-storage, through ssh:// (the test sshd, `hangar daemon stdio` there): the disk (only
//     the source had it) is mirrored into the destination's folder;
//     the guest's data is in the destination's image file, the source's file is untouched;
//   - cancel mid-way (Ctrl+C of `hangar migrate`, bandwidth capped): the source keeps running, the
//     destination has no VM and no folder left;
//   - the destination's QEMU killed mid-way, then its core: the source keeps running, the error
//     names what happened; the restarted destination core removes the half-made VM;
//   - a blocker (a CD-ROM file the destination lacks, a VM of the same name there) is refused with
//     the reason before anything starts; a paused VM arrives paused, and migrates back home into
//     the folder it left (migrated-away.json there until then).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CoreApi } from '../../core/common/api.ts';
import { connectCore, connectSocket, openConsoleStream } from '../../core/node/rpc/client.ts';
import type { CoreConnection } from '../../core/node/rpc/client.ts';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import { HANGAR_BIN, HangarHarness, sleep } from '../helpers/hangar.ts';
import { startSshd } from '../helpers/sshd.ts';
import type { SshdHandle } from '../helpers/sshd.ts';

let src: HangarHarness;
let dst: HangarHarness;
let sshd: SshdHandle;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;
/** The destination as a second core of this machine, and the same core through ssh (hangar daemon stdio over sshd). */
const DEST = 'dest';
const DEST_SSH = 'dest-ssh';
const conns: CoreConnection[] = [];
let srcApi: CoreApi;
let dstApi: CoreApi;
let srcSock = '';
let dstSock = '';

/** The harness's core (started by a CLI call) and its API over its socket (no CLI process per call). */
async function coreOf(h: HangarHarness): Promise<{ api: CoreApi; sock: string }> {
  await h.ok(['list']);
  const sock = (await h.json<{ socketPath: string }>(['daemon', 'status'])).socketPath;
  const c = await connectCore({ autostart: false, open: () => connectSocket(sock) });
  conns.push(c);
  return { api: c.api, sock };
}

before(async () => {
  guest = await ensureTestGuest();
  sshd = await startSshd();
  // The source core runs ssh for an ssh:// destination: it gets the test sshd's client config.
  src = new HangarHarness({ env: { HANGAR_SSH_CONFIG: sshd.configFile } });
  dst = new HangarHarness();
  ({ api: srcApi, sock: srcSock } = await coreOf(src));
  ({ api: dstApi, sock: dstSock } = await coreOf(dst));
  mkdirSync(join(src.home, 'config'), { recursive: true, mode: 0o700 });
  writeFileSync(join(src.home, 'config', 'connections.json'), JSON.stringify({ version: 1, connections: [
    { name: DEST, uri: `hangar+unix://${dstSock}` },
    { name: DEST_SSH, uri: `ssh://${sshd.user}@hangar-test-sshd?command=${HANGAR_BIN}&env.HANGAR_HOME=${dst.home}` },
  ] }));
});

after(async () => {
  for (const c of conns) c.close();
  await src?.cleanup();
  await dst?.cleanup();
  await sshd?.stop();
});

interface Info { id: string; name: string; state: string; dir: string; pid?: number; definition: { disks: Array<{ id: string; file: string }> } }

async function boot(name: string, opts: { memoryMiB?: number; extra?: Record<string, unknown> } = {}): Promise<Info> {
  const vm = await srcApi.create({
    definition: { name, memoryMiB: opts.memoryMiB ?? 160, accel: 'tcg', boot: { kernel: { kernel: guest.kernel, initrd: guest.initrd, append: GUEST_CMDLINE } }, ...opts.extra },
    newDisks: [{ sizeBytes: 16 * 1024 * 1024 }],
  });
  await srcApi.start(name);
  await src.waitForSerial(vm.id, READY_MARKER, 1, 120_000);
  return await srcApi.get(name) as unknown as Info;
}

/** Types a command into the guest's shell through the core's console channel; what it printed within graceMs. */
async function guestRun(sock: string, name: string, command: string, graceMs = 2500): Promise<string> {
  const { socket } = await openConsoleStream(name, false, () => connectSocket(sock));
  let out = '';
  socket.on('data', (d: Buffer) => { out += d.toString(); });
  socket.on('error', () => {});
  socket.resume();
  // Busybox's prompt queries the cursor first: input after a moment is read by the shell.
  await sleep(400);
  socket.write(command + '\n');
  await sleep(graceMs);
  socket.destroy();
  return out;
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
    let out = await guestRun(srcSock, 'mig-a', 'dd if=/dev/urandom of=/tmp/blk bs=512 count=64 2>/dev/null; dd if=/tmp/blk of=/dev/vda conv=fsync 2>/dev/null; md5sum /tmp/blk; cat /proc/uptime', 3000);
    const md5 = /([0-9a-f]{32})\s+\/tmp\/blk/.exec(out)?.[1];
    assert.ok(md5, out);
    const uptimeBefore = Number(/^(\d+\.\d+) /m.exec(out)?.[1]);
    await guestRun(srcSock, 'mig-a', `${COUNTER} ${WRITER}`, 500);
    await waitFor('the counter on the source', () => lastCount(src.serialLog(vm.id)) >= 5);
    const r = await src.run(['migrate', 'mig-a', '--to', DEST, '--json'], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { downtimeMs: number; totalTimeMs: number; destination: { state: string }; definitionKeptAt: string };
    assert.equal(res.destination.state, 'running');
    assert.match(r.stderr, /memory/, 'progress was drawn');
    const atSwitch = lastCount(src.serialLog(vm.id));
    // The source forgot it, keeping its definition aside; the destination has it, running.
    const srcList = await srcApi.list();
    assert.ok(!srcList.some((v) => v.name === 'mig-a'), 'the source no longer lists it');
    assert.ok(existsSync(res.definitionKeptAt), res.definitionKeptAt);
    assert.equal((JSON.parse(readFileSync(res.definitionKeptAt, 'utf8')) as { definition: { id: string } }).definition.id, vm.id);
    assert.ok(existsSync(vm.definition.disks[0]!.file), 'the disk stays where it is (shared storage)');
    const there = await dstApi.get('mig-a') as unknown as Info;
    assert.equal(there.state, 'running');
    assert.equal(there.id, vm.id);
    // The loop goes on there: counts past the switch-over, with no boot in between.
    await waitFor('the counter on the destination', () => lastCount(dst.serialLog(vm.id)) > atSwitch + 5);
    assert.ok(!dst.serialLog(vm.id).includes(READY_MARKER), 'the guest did not boot again');
    out = await guestRun(dstSock, 'mig-a', 'kill %1 %2; sleep 0.5; cat /proc/uptime; echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda bs=512 count=64 2>/dev/null | md5sum; dd if=/dev/vda bs=512 skip=4096 count=1 2>/dev/null | head -c 16; echo; echo "LAST=$(cat /tmp/lastw)"', 3500);
    const uptimeAfter = Number(/^(\d+\.\d+) /m.exec(out)?.[1]);
    assert.ok(uptimeAfter > uptimeBefore, `uptime went on (${uptimeBefore} -> ${uptimeAfter}): ${out}`);
    assert.match(out, new RegExp(`${md5}\\s+-`), 'the block written before migrating is there');
    const last = /LAST=(W\d+)/.exec(out)?.[1];
    assert.ok(last && Number(last.slice(1)) > 3, out);
    assert.match(out, new RegExp(`^${last}\\r?$`, 'm'), 'the last block written (also during the migration) is on the disk');
    await dstApi.destroy('mig-a');
    await dstApi.delete('mig-a');
  });

  test('--copy-storage: the disk only the source has is mirrored into the destination\'s folder', async () => {
    const vm = await boot('mig-c');
    const out = await guestRun(srcSock, 'mig-c', 'dd if=/dev/urandom of=/tmp/blk bs=1024 count=1024 2>/dev/null; dd if=/tmp/blk of=/dev/vda bs=1024 conv=fsync 2>/dev/null; md5sum /tmp/blk', 4000);
    const md5 = /([0-9a-f]{32})\s+\/tmp\/blk/.exec(out)?.[1];
    assert.ok(md5, out);
    await guestRun(srcSock, 'mig-c', COUNTER, 500);
    const srcDisk = vm.definition.disks[0]!.file;
    const r = await src.run(['migrate', 'mig-c', '--to', DEST_SSH, '--copy-storage', '--json'], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /storage|disks/);
    const there = await dstApi.get('mig-c') as unknown as Info;
    assert.equal(there.state, 'running');
    const dstDisk = there.definition.disks[0]!.file;
    assert.ok(dstDisk.startsWith(there.dir), `the copy is the destination's own (${dstDisk} in ${there.dir})`);
    assert.ok(existsSync(srcDisk), 'the source\'s disk file is kept');
    const atSwitch = lastCount(src.serialLog(vm.id));
    await waitFor('the counter on the destination', () => lastCount(dst.serialLog(vm.id)) > atSwitch + 3);
    // The data is in the destination's image file (read on the host once the VM is off).
    await dstApi.destroy('mig-c');
    const raw = join(dst.home, 'copy.raw');
    execFileSync('qemu-img', ['dd', '-f', 'qcow2', '-O', 'raw', 'bs=1024', 'count=1024', `if=${dstDisk}`, `of=${raw}`]);
    assert.equal(createHash('md5').update(readFileSync(raw)).digest('hex'), md5);
    rmSync(raw);
    await dstApi.delete('mig-c', { deleteDisks: true });
  });

  test('cancel mid-way (Ctrl+C): the source keeps running, the destination has nothing left', async () => {
    const vm = await boot('mig-x', { memoryMiB: 192 });
    await guestRun(srcSock, 'mig-x', COUNTER, 500);
    const m = migrateProcess(['mig-x', '--to', DEST, '--bandwidth', '2']);
    await waitFor('the memory phase', () => /memory \|.*RAM/.test(m.out()), 60_000);
    const destVm = await dstApi.list();
    assert.ok(destVm.some((v) => v.id === vm.id), 'the destination prepared the VM');
    m.child.kill('SIGINT');
    const code = await m.done;
    assert.notEqual(code, 0, m.out());
    assert.match(m.out(), /cancel/i);
    assert.equal((await srcApi.get('mig-x')).state, 'running');
    const before = lastCount(src.serialLog(vm.id));
    await waitFor('the counter going on at the source', () => lastCount(src.serialLog(vm.id)) > before + 3);
    await waitFor('the destination without the VM', async () => !(await dstApi.list()).some((v) => v.id === vm.id));
    assert.ok(!existsSync(join(dst.home, 'vms', vm.id)), 'no folder left there');
    // And lifecycle actions work again at the source.
    await srcApi.pause('mig-x');
    await srcApi.resume('mig-x');
    await srcApi.destroy('mig-x');
  });

  test('the destination\'s QEMU, then its core, killed mid-way: the source keeps running and the error says so', async () => {
    const vm = await boot('mig-k', { memoryMiB: 192 });
    await guestRun(srcSock, 'mig-k', COUNTER, 500);
    const m = migrateProcess(['mig-k', '--to', DEST, '--bandwidth', '2']);
    await waitFor('the memory phase', () => /memory \|.*RAM/.test(m.out()), 60_000);
    const there = await dstApi.get(vm.id);
    assert.ok(there.pid, 'the destination QEMU runs');
    process.kill(there.pid!, 'SIGKILL');
    const code = await m.done;
    assert.notEqual(code, 0);
    assert.match(m.out(), /failed/);
    assert.match(m.out(), /destination/);
    assert.match(m.out(), /keeps running here/);
    assert.equal((await srcApi.get('mig-k')).state, 'running');
    const before = lastCount(src.serialLog(vm.id));
    await waitFor('the counter going on at the source', () => lastCount(src.serialLog(vm.id)) > before + 3);
    await waitFor('the destination without the VM', async () => !(await dstApi.list()).some((v) => v.id === vm.id));
    // The destination core itself killed mid-way: the same, and its restart removes the half-made VM.
    const m2 = migrateProcess(['mig-k', '--to', DEST, '--bandwidth', '2']);
    await waitFor('the memory phase', () => /memory \|.*RAM/.test(m2.out()), 60_000);
    process.kill((await dstApi.daemonStatus()).pid, 'SIGKILL');
    assert.notEqual(await m2.done, 0);
    assert.match(m2.out(), /destination core dest went away/, m2.out());
    assert.match(m2.out(), /keeps running here/);
    assert.equal((await srcApi.get('mig-k')).state, 'running');
    ({ api: dstApi } = await coreOf(dst));
    await waitFor('the restarted destination without the VM', async () => !(await dstApi.list()).some((v) => v.id === vm.id), 20_000);
    assert.ok(!existsSync(join(dst.home, 'vms', vm.id)), 'no folder left there');
    const later = lastCount(src.serialLog(vm.id));
    await waitFor('the counter going on at the source', () => lastCount(src.serialLog(vm.id)) > later + 3);
    await srcApi.destroy('mig-k');
  });

  test('blockers: a CD-ROM file the destination lacks, and a name the destination has, are refused before anything starts; a paused VM arrives paused and comes back home', async () => {
    const iso = join(src.home, 'gone.iso');
    copyFileSync(guest.iso, iso);
    const vm = await boot('mig-b', { extra: { cdroms: [{ id: 'cd0', file: iso }] } });
    rmSync(iso); // QEMU keeps it open here; the destination cannot open it
    let r = await src.run(['migrate', 'mig-b', '--to', DEST]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /CD-ROM "cd0" file .*gone\.iso is not usable on dest/);
    assert.match(r.stderr, /eject it first/);
    assert.ok(!(await dstApi.list()).some((v) => v.id === vm.id), 'nothing was made there');
    assert.equal((await srcApi.get('mig-b')).state, 'running');
    // A VM of the same name there.
    await srcApi.editDevice('mig-b', 'cdrom', 'cd0', { file: null });
    await dstApi.create({ definition: { name: 'mig-b', memoryMiB: 32 } });
    r = await src.run(['migrate', 'mig-b', '--to', DEST]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /already has a VM named "mig-b"/);
    assert.equal(readdirSync(join(dst.home, 'vms')).length, 1, 'only the destination\'s own VM');
    // Without the clash: a paused VM arrives paused, and comes back home into the folder it left.
    await dstApi.delete('mig-b');
    await srcApi.pause('mig-b');
    r = await src.run(['migrate', 'mig-b', '--to', DEST]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /it is paused there/);
    assert.equal((await dstApi.get('mig-b')).state, 'paused');
    assert.ok(existsSync(join(vm.dir, 'migrated-away.json')) && !existsSync(join(vm.dir, 'vm.json')));
    mkdirSync(join(dst.home, 'config'), { recursive: true, mode: 0o700 });
    writeFileSync(join(dst.home, 'config', 'connections.json'), JSON.stringify({ version: 1, connections: [{ name: 'home', uri: `hangar+unix://${srcSock}` }] }));
    r = await dst.run(['migrate', 'mig-b', '--to', 'home']);
    assert.equal(r.code, 0, r.stderr);
    const back = await srcApi.get('mig-b');
    assert.equal(back.state, 'paused');
    assert.equal(back.dir, vm.dir);
    assert.ok(existsSync(join(vm.dir, 'vm.json')) && !existsSync(join(vm.dir, 'migrated-away.json')), 'home again, in its own folder');
    await srcApi.resume('mig-b');
    await srcApi.destroy('mig-b');
  });
});
