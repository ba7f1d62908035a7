// Cases 11 and 16: local security. One real guest with every kind of back end (passt NIC with a
// port forward, swtpm TPM, a vhost-user-blk disk served by qemu-storage-daemon, VNC display, a
// virtio-serial channel, an extra serial port on a socket) and browser mode running beside it:
//  11. another local user (nobody, via setpriv) is refused (EACCES) on every socket found in the
//      runtime dir, no process of ours has an abstract (permission-less) listening unix socket, and
//      nothing of ours listens on a non-loopback TCP/UDP address;
//  16. QEMU runs under seccomp (-sandbox, /proc/PID/status Seccomp: 2) and still boots, serves the
//      console, screenshots and hotplug; a bridge NIC (QEMU would fork its helper, which seccomp
//      punishes with SIGSYS) waits for the next boot instead of killing QEMU; and with
//      HANGAR_QEMU_USER a root core runs QEMU as that unprivileged user, whose guest writes its disk.
// Runs as root (CI does): it switches to other users and makes a system user and a bridge.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureTestGuest, GUEST_CMDLINE, PCI_END, READY_MARKER } from '../guest/guest.ts';
import { HangarHarness, sleep } from '../helpers/hangar.ts';
import type { ServeProcess } from '../helpers/hangar.ts';
import { addAclLines, createBridge, testBridgeName } from '../helpers/bridge-host.ts';
import type { TestBridge } from '../helpers/bridge-host.ts';

const NOBODY = 65534;
/** A throw-away system user QEMU runs as in the HANGAR_QEMU_USER case (removed in after()). */
const QEMU_USER = `hgtq${process.pid}`;

let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;
let vm: { id: string; dir: string };
let serve: ServeProcess | undefined;
let userCreated = false;
let hUser: HangarHarness | undefined;
let bridge: TestBridge | undefined;
let restoreAcl: (() => void) | undefined;

function definitionFile(home: string, name: string, extra: Record<string, unknown>): string {
  const file = join(home, `${name}.json`);
  writeFileSync(file, JSON.stringify({ memoryMiB: 256, accel: 'tcg', boot: { kernel: { kernel: guest.kernel, initrd: guest.initrd, append: GUEST_CMDLINE } }, ...extra }));
  return file;
}

before(async () => {
  assert.equal(process.getuid?.(), 0, 'these checks switch to other users and make a system user: the test suite must run as root, as CI does');
  guest = await ensureTestGuest();
  h = new HangarHarness();
  const qsdImage = join(h.home, 'qsd.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', qsdImage, '32M']);
  const file = definitionFile(h.home, 'sec', {
    disks: [{ id: 'qsd0', file: qsdImage, format: 'qcow2', bus: 'vhost-user-blk' }],
    nics: [{ id: 'net0', network: { type: 'passt', portForwards: [{ hostPort: 20000 + (process.pid % 20000), guestPort: 22 }] } }],
    tpm: { model: 'tpm-crb' },
    video: { model: 'vga', display: 'vnc' },
    channels: [{ id: 'chan0', name: 'org.hangar.test.0' }],
    serialPorts: [{ id: 'port1', output: 'socket' }],
  });
  vm = await h.json<{ id: string; dir: string }>(['create', '--name', 'sec', '--file', file]);
  await h.ok(['start', 'sec'], { timeoutMs: 120_000 });
  await h.waitForSerial(vm.id, READY_MARKER, 1, 180_000);
  await h.waitForSerial(vm.id, PCI_END);
  serve = await h.serve();
});

after(async () => {
  await serve?.stop();
  await h?.cleanup();
  await hUser?.cleanup();
  restoreAcl?.();
  bridge?.remove();
  if (userCreated) spawnSync('userdel', [QEMU_USER]);
});

/** Every unix socket under dir (recursively), as paths. */
function socketsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) out.push(...socketsUnder(p));
    else if (st.isSocket()) out.push(p);
  }
  return out;
}

/** Connects to each socket as uid/gid `uid` (setpriv, no groups); returns path -> "CONNECTED" or the errno code. */
function connectAs(uid: number, paths: readonly string[]): Record<string, string> {
  const script = `
    const net = require('net');
    const paths = ${JSON.stringify(paths)};
    const out = {};
    let left = paths.length;
    for (const p of paths) {
      const s = net.connect(p);
      const done = (r) => { if (out[p] !== undefined) return; out[p] = r; s.destroy(); if (--left === 0) { console.log(JSON.stringify(out)); process.exit(0); } };
      s.on('connect', () => done('CONNECTED')).on('error', (e) => done(e.code));
      setTimeout(() => done('TIMEOUT'), 5000);
    }`;
  const r = spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, '-e', script], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, `the client as uid ${uid} did not run: ${r.error?.message ?? r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, string>;
}

function pids(): number[] {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map(Number);
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

/**
 * The processes that are ours: the daemon and browser mode (their environment names this data
 * dir), QEMU and its back ends (their command lines name a path in it, or the VM's id).
 */
function ourProcesses(home: string, vmId: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const pid of pids()) {
    if (pid === process.pid) continue;
    const args = cmdline(pid);
    let env: string;
    try { env = readFileSync(`/proc/${pid}/environ`, 'utf8'); } catch { continue; }
    if (env.split('\0').includes(`HANGAR_HOME=${home}`) || args.some((a) => a.includes(home) || a.includes(vmId))) {
      // Our own test runner's helpers (setpriv clients) are gone by now; the CLI runs are short-lived.
      out.set(pid, (args[0] ?? '').split('/').pop() ?? '');
    }
  }
  return out;
}

function socketInodes(pid: number): Set<string> {
  const out = new Set<string>();
  let fds: string[];
  try { fds = readdirSync(`/proc/${pid}/fd`); } catch { return out; }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(m[1]!);
    } catch { /* closed meanwhile */ }
  }
  return out;
}

/** /proc/net/{tcp,udp}{,6} sockets: local address, state and inode. */
function inetSockets(): Array<{ proto: string; addr: string; port: number; state: string; inode: string }> {
  const out: Array<{ proto: string; addr: string; port: number; state: string; inode: string }> = [];
  for (const proto of ['tcp', 'tcp6', 'udp', 'udp6']) {
    const lines = readFileSync(`/proc/net/${proto}`, 'utf8').trim().split('\n').slice(1);
    for (const line of lines) {
      const f = line.trim().split(/\s+/);
      const [hex, portHex] = f[1]!.split(':');
      out.push({ proto, addr: decodeAddr(hex!), port: parseInt(portHex!, 16), state: f[3]!, inode: f[9]! });
    }
  }
  return out;
}

/** Kernel's hex form of an address: IPv4 one little-endian word, IPv6 four of them. */
function decodeAddr(hex: string): string {
  const word = (w: string): number[] => [6, 4, 2, 0].map((i) => parseInt(w.slice(i, i + 2), 16));
  if (hex.length === 8) return word(hex).join('.');
  const bytes = [0, 8, 16, 24].flatMap((i) => word(hex.slice(i, i + 8)));
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|::ffff:7f\w*:\w+)$/;

function status(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

async function qemuPid(hh: HangarHarness, name: string): Promise<number> {
  const info = await hh.json<{ pid?: number }>(['show', name]);
  assert.ok(info.pid, `VM ${name} has a QEMU pid`);
  return info.pid;
}

describe('local security', { timeout: 900_000 }, () => {
  test('case 11: another local user is refused on every socket, none is abstract, nothing listens beyond loopback', async () => {
    const run = join(h.home, 'run');
    const sockets = socketsUnder(run);
    const names = sockets.map((s) => s.slice(run.length + 1).replace(vm.id, 'ID')).sort();
    // Every kind is there: the core, QEMU's (QMP, console, VNC, channel, extra UART), the back ends'.
    for (const want of ['hangar.sock', 'vms/ID/qmp.sock', 'vms/ID/serial0.sock', 'vms/ID/vnc.sock', 'vms/ID/chan0.sock', 'vms/ID/ttyS1.sock', 'vms/ID/passt0.sock', 'vms/ID/swtpm.sock', 'vms/ID/qsd0.sock']) {
      assert.ok(names.includes(want), `socket ${want} in the runtime dir (found: ${names.join(' ')})`);
    }
    const asNobody = connectAs(NOBODY, sockets);
    for (const s of sockets) assert.equal(asNobody[s], 'EACCES', `user nobody connecting to ${s}: ${asNobody[s]}`);
    // The client itself works: root (the core's own user) gets into the core's socket.
    assert.equal(connectAs(0, [join(run, 'hangar.sock')])[join(run, 'hangar.sock')], 'CONNECTED', 'the same client as root connects');
    console.log(`refused to nobody: ${names.join(', ')}`);

    const ours = ourProcesses(h.home, vm.id);
    const kinds = new Set(ours.values());
    for (const k of ['node', 'qemu-system-x86_64', 'passt', 'swtpm', 'qemu-storage-daemon']) {
      assert.ok([...kinds].some((x) => x.startsWith(k)), `process ${k} among ours: ${[...ours].map(([p, n]) => `${n}(${p})`).join(' ')}`);
    }
    const inodes = new Map<string, string>();
    for (const [pid, name] of ours) for (const i of socketInodes(pid)) inodes.set(i, `${name}(${pid})`);

    // Abstract unix sockets have no file and so no permissions: any local user could connect.
    const abstract = readFileSync('/proc/net/unix', 'utf8').trim().split('\n').slice(1)
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => inodes.has(f[6]!) && (f[7] ?? '').startsWith('@') && f[3] === '00010000');
    assert.deepEqual(abstract.map((f) => `${inodes.get(f[6]!)} ${f[7]}`), [], 'no abstract listening unix socket');

    const inet = inetSockets().filter((s) => inodes.has(s.inode));
    // Listening TCP sockets (state 0A) and bound UDP sockets (07 = unconnected) are what others can reach.
    const listeners = inet.filter((s) => (s.proto.startsWith('tcp') && s.state === '0A') || (s.proto.startsWith('udp') && s.state === '07'));
    console.log(`inet listeners of ours: ${listeners.map((s) => `${inodes.get(s.inode)} ${s.proto} ${s.addr}:${s.port}`).join(', ') || 'none'}`);
    const exposed = listeners.filter((s) => !LOOPBACK.test(s.addr));
    assert.deepEqual(exposed.map((s) => `${inodes.get(s.inode)} ${s.proto} ${s.addr}:${s.port}`), [], 'nothing listens on a non-loopback address');
    // Browser mode's listener is seen (so the walk above finds listeners at all), on loopback.
    assert.ok(listeners.some((s) => s.port === serve!.port && s.proto.startsWith('tcp')), `browser mode's port ${serve!.port} found among the listeners`);
  });

  test('case 16: QEMU runs under seccomp and still boots, serves the console, screenshots and hotplug; a bridge NIC waits for the next boot', async () => {
    const pid = await qemuPid(h, 'sec');
    const st = status(pid);
    assert.equal(st.Seccomp, '2', `QEMU ${pid} runs in seccomp filter mode: ${JSON.stringify(st)}`);
    assert.equal(st.NoNewPrivs, '1');
    const args = cmdline(pid);
    assert.equal(args[args.indexOf('-sandbox') + 1], 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny');

    const out = await h.consoleCommand('sec', 'echo sandboxed-$((6*7))', 4);
    assert.match(out, /sandboxed-42/, `the console works: ${out}`);

    const png = join(h.home, 'sec.png');
    await h.ok(['screenshot', 'sec', png]);
    assert.deepEqual([...readFileSync(png).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG screenshot');

    const disk = await h.json<{ applied: string; note?: string }>(['device', 'add', 'sec', 'disk', 'size=48M,bus=virtio-blk']);
    assert.equal(disk.applied, 'now', `hotplug under the sandbox: ${disk.note}`);
    const deadline = Date.now() + 60_000;
    let seen = '';
    while (!/ 98304\b/.test(seen) && Date.now() < deadline) {
      seen = await h.consoleCommand('sec', 'for b in /sys/block/vd*; do echo "$b $(cat $b/size)"; done', 3);
      await sleep(500);
    }
    assert.match(seen, / 98304\b/, `the guest sees the hotplugged 48 MiB disk: ${seen}`);

    // QEMU would fork qemu-bridge-helper for a bridge NIC; under spawn=deny seccomp kills it for that.
    bridge = createBridge(testBridgeName('hgtsb'));
    restoreAcl = addAclLines([`allow ${bridge.name}`]);
    const nic = await h.json<{ applied: string; note?: string }>(['device', 'add', 'sec', 'nic', `bridge,br=${bridge.name}`]);
    assert.equal(nic.applied, 'next-boot', `a bridge NIC is not hotplugged into a spawn=deny QEMU: ${JSON.stringify(nic)}`);
    assert.match(nic.note ?? '', /sandbox/);
    assert.equal(await h.state('sec'), 'running', 'QEMU lives on');
    assert.equal(status(pid).State.startsWith('Z'), false);
  });

  test('case 16: with HANGAR_QEMU_USER a root core runs QEMU as that user; the guest boots and writes its disk', async () => {
    const r = spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', QEMU_USER], { encoding: 'utf8' });
    assert.equal(r.status, 0, `useradd ${QEMU_USER}: ${r.stderr}`);
    userCreated = true;
    const uid = execFileSync('id', ['-u', QEMU_USER], { encoding: 'utf8' }).trim();
    hUser = new HangarHarness({ env: { HANGAR_QEMU_USER: QEMU_USER } });
    const image = join(hUser.home, 'data.raw');
    writeFileSync(image, Buffer.alloc(16 * 1024 * 1024));
    const file = definitionFile(hUser.home, 'runas', { disks: [{ id: 'data', file: image, format: 'raw', bus: 'virtio-blk' }] });
    const info = await hUser.json<{ id: string }>(['create', '--name', 'runas', '--file', file]);
    await hUser.ok(['start', 'runas'], { timeoutMs: 120_000 });
    await hUser.waitForSerial(info.id, READY_MARKER, 1, 180_000);
    const pid = await qemuPid(hUser, 'runas');
    const st = status(pid);
    assert.deepEqual(st.Uid!.split(/\s+/), [uid, uid, uid, uid], `QEMU runs as ${QEMU_USER} (uid ${uid}): Uid ${st.Uid}`);
    assert.equal(st.Seccomp, '2', 'and still under seccomp');
    assert.match(st.CapEff ?? '', /^0+$/, 'with no capabilities');
    const out = await hUser.consoleCommand('runas', 'echo HANGAR-RUNAS-DATA | dd of=/dev/vda bs=512 seek=4 conv=notrunc 2>/dev/null; sync; echo wrote-$?', 5);
    assert.match(out, /wrote-0/, `the guest wrote its disk: ${out}`);
    await hUser.ok(['shutdown', 'runas'], { timeoutMs: 120_000 });
    await hUser.waitForState('runas', 'stopped', 60_000);
    const data = readFileSync(image).subarray(4 * 512, 4 * 512 + 17).toString();
    assert.equal(data, 'HANGAR-RUNAS-DATA', 'the data is in the image');
    assert.equal(existsSync(image), true);
  });
});
