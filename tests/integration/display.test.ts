// The graphical console's core side, end to end through the real CLI, daemon and QEMU (TCG) with
// the real test guest: QEMU's VNC server on the private unix socket, the core's display channel,
// screenshots, send-key, `hangar display --listen` with a real RFB handshake, and the security
// promises (no TCP listener unless asked, no other user on the socket).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import { HANGAR_BIN, HangarHarness } from '../helpers/hangar.ts';
import { rfbConnect, rfbHandshake } from '../helpers/rfb-client.ts';
import { readFirstLine } from '../../core/node/rpc/framing.ts';
import { daemonSocketPath, runtimeDir } from '../../core/node/paths.ts';
import { pngSize } from '../../core/node/display/display-ops.ts';
import { daemonEndpoint } from '../../core/node/rpc/endpoint.ts';
import type { ConsoleLink } from '../../core/common/transport.ts';

/** An in-memory display link, as a window's MessagePort or a WebSocket would be. */
function memoryLink() {
  const controls: string[] = [];
  const chunks: Buffer[] = [];
  let onMsg: ((m: string | Uint8Array) => void) | null = null;
  const onClose: Array<(r: string) => void> = [];
  let closed = false;
  const link: ConsoleLink = {
    send: (m) => { if (typeof m === 'string') controls.push(m); else chunks.push(Buffer.from(m)); },
    onMessage: (cb) => { onMsg = cb; },
    onClose: (cb) => { onClose.push(cb); },
    close: () => { if (!closed) { closed = true; for (const c of onClose) c('closed'); } },
  };
  return {
    link,
    controls,
    bytes: () => Buffer.concat(chunks),
    closed: () => closed,
    /** What the viewer sends to the core. */
    viewer: (m: string | Uint8Array) => onMsg?.(m),
    async wait(pred: () => boolean, ms = 20_000): Promise<void> {
      const deadline = Date.now() + ms;
      while (!pred()) {
        if (Date.now() > deadline) throw new Error(`timed out; controls ${controls.join(' ')}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;
let vmId: string;
const VM = 'screen';

before(async () => {
  guest = await ensureTestGuest();
  h = new HangarHarness();
  ({ id: vmId } = await h.json<{ id: string }>(['create', '--name', VM, '--memory', '256', '--accel', 'tcg',
    '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE, '--video', 'vga']));
  await h.ok(['start', VM]);
  await h.waitForSerial(vmId, READY_MARKER);
});

after(async () => {
  await h?.cleanup();
});

function vmRuntime(): string {
  return join(runtimeDir({ ...process.env, HANGAR_HOME: h.home }), 'vms', vmId);
}

/** The core's display channel on its unix socket: a reply line, then QEMU's RFB bytes. */
async function openChannel(vm: string): Promise<Socket> {
  const sock = connect(daemonSocketPath(runtimeDir({ ...process.env, HANGAR_HOME: h.home })));
  await new Promise<void>((res, rej) => { sock.once('connect', () => res()); sock.once('error', rej); });
  sock.write(JSON.stringify({ channel: 'display', vm }) + '\n');
  const { line, rest } = await readFirstLine(sock, 10_000);
  const reply = JSON.parse(line) as { ok?: boolean; error?: { message: string } };
  if (!reply.ok) throw new Error(reply.error?.message ?? line);
  if (rest.length) sock.unshift(rest);
  sock.resume();
  return sock;
}

/** Inodes of the TCP sockets listening on this machine (IPv4 and IPv6). */
function tcpListenInodes(): Set<string> {
  const inodes = new Set<string>();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(f, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] === '0A') inodes.add(cols[9]!); // st 0A = LISTEN
    }
  }
  return inodes;
}

function socketInodesOf(pid: number): string[] {
  const out: string[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.push(m[1]!);
    } catch { /* fd closed meanwhile */ }
  }
  return out;
}

function startListen(args: string[]): Promise<{ child: ChildProcess; port: number; password: string; stderr: () => string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HANGAR_BIN, 'display', VM, ...args], { env: h.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const port = /vnc:\/\/[^\s]+:(\d+)/.exec(out);
      const pw = /^Password: (\S+)$/m.exec(out);
      if (port && pw) resolve({ child, port: Number(port[1]), password: pw[1]!, stderr: () => err });
    });
    child.on('exit', (code) => reject(new Error(`hangar display exited ${code}: ${out} ${err}`)));
    setTimeout(() => reject(new Error(`hangar display printed no port/password: ${out} ${err}`)), 30_000);
  });
}

describe('display', () => {
  test('a new VM gets a display where it boots firmware, none for kernel boot; flags choose', async () => {
    type Def = { definition: { video: { model: string; display: string; clipboard: boolean }; inputs: Array<{ type: string; bus: string }> } };
    const iso = await h.json<Def>(['create', '--name', 'iso-vm', '--cdrom', guest.iso]);
    assert.deepEqual(iso.definition.video, { model: 'vga', display: 'vnc', clipboard: true });
    assert.ok(iso.definition.inputs.some((i) => i.type === 'tablet' && i.bus === 'usb'), 'a USB tablet for an absolute pointer');
    const cmd = (await h.ok(['cmdline', 'iso-vm'])).trim();
    assert.match(cmd, /-vnc unix:\S+\/vnc\.sock,share=force-shared/);
    assert.doesNotMatch(cmd, /-vnc [^u]/, 'never a TCP VNC port');
    assert.match(cmd, /qemu-vdagent,id=ch_vdagent,name=vdagent,clipboard=on/);
    assert.match(cmd, /"name":"com\.redhat\.spice\.0"/);
    const kernel = await h.json<Def>(['create', '--name', 'kernel-vm', '--kernel', guest.kernel]);
    assert.equal(kernel.definition.video.model, 'none', 'kernel-boot VMs stay serial-first');
    assert.doesNotMatch(await h.ok(['cmdline', 'kernel-vm']), /-vnc/);
    const headless = await h.json<Def>(['create', '--name', 'headless-iso', '--cdrom', guest.iso, '--display', 'none']);
    assert.equal(headless.definition.video.model, 'none');
    const virtio = await h.json<Def>(['create', '--name', 'virtio-vm', '--cdrom', guest.iso, '--video', 'virtio-gpu']);
    assert.equal(virtio.definition.video.model, 'virtio-gpu');
    assert.match(await h.ok(['cmdline', 'virtio-vm']), /"driver":"virtio-vga"/);
    const bad = await h.run(['create', '--name', 'bad', '--cdrom', guest.iso, '--display', 'spice']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--display spice is not a display type[\s\S]*vnc, none/);
    for (const n of ['iso-vm', 'kernel-vm', 'headless-iso', 'virtio-vm']) await h.ok(['delete', n]);
  });

  test('hangar screenshot writes a PNG of the guest\'s resolution; the display channel serves RFB at the same size', async () => {
    const file = join(h.home, 'shot.png');
    const out = await h.ok(['screenshot', VM, file]);
    const png = readFileSync(file);
    const { width, height } = pngSize(png);
    assert.ok(width >= 640 && height >= 400, `a real screen size, got ${width}x${height}`);
    assert.match(out, new RegExp(`${width}x${height} PNG`));
    const sock = await openChannel(VM);
    const r = await rfbHandshake(sock);
    assert.ok(r.ok, r.ok ? '' : r.reason);
    assert.equal(r.session.width, width, 'the RFB framebuffer is the screenshot\'s width');
    assert.equal(r.session.height, height);
    assert.match(r.session.name, /screen/);
    const update = await r.session.requestUpdate();
    assert.ok(update.rects >= 1, 'a framebuffer update arrives');
    r.session.close();
  });

  test('two display channels at once share the session', async () => {
    const a = await rfbHandshake(await openChannel(VM));
    const b = await rfbHandshake(await openChannel(VM));
    assert.ok(a.ok && b.ok);
    assert.ok((await a.session.requestUpdate()).rects >= 1);
    assert.ok((await b.session.requestUpdate()).rects >= 1);
    a.session.close();
    b.session.close();
  });

  test('no TCP listener exists for the display; another local user cannot open the VNC socket', async () => {
    const info = await h.json<{ pid: number }>(['show', VM]);
    const daemon = await h.json<{ pid: number }>(['daemon', 'status']);
    const listening = tcpListenInodes();
    for (const pid of [info.pid, daemon.pid]) {
      const hits = socketInodesOf(pid).filter((i) => listening.has(i));
      assert.deepEqual(hits, [], `process ${pid} listens on TCP`);
    }
    const sockPath = join(vmRuntime(), 'vnc.sock');
    assert.ok(statSync(sockPath).isSocket());
    assert.equal(statSync(vmRuntime()).mode & 0o077, 0, 'the runtime dir is private (0700)');
    assert.equal(process.getuid?.(), 0, 'this check switches to another user (nobody): the test suite must run as root, as CI does');
    let failed = '';
    try {
      execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e',
        `require('net').connect(${JSON.stringify(sockPath)}).on('connect',()=>{console.log('CONNECTED');process.exit(0)}).on('error',(e)=>{console.log(e.code);process.exit(1)})`], { encoding: 'utf8' });
    } catch (e) {
      failed = String((e as { stdout?: string }).stdout ?? e);
    }
    assert.match(failed, /EACCES/, 'user nobody is refused');
  });

  test('hangar display --listen: a real RFB viewer gets in with the one-time password, not without it', async () => {
    const l = await startListen(['--listen', '127.0.0.1:0']);
    try {
      const good = await rfbConnect({ host: '127.0.0.1', port: l.port }, l.password);
      assert.ok(good.ok, good.ok ? '' : good.reason);
      assert.ok(good.session.width >= 640);
      assert.ok((await good.session.requestUpdate()).rects >= 1);
      good.session.close();
      const wrong = await rfbConnect({ host: '127.0.0.1', port: l.port }, 'not-it!!');
      assert.equal(wrong.ok, false);
      assert.match(wrong.ok ? '' : wrong.reason, /wrong password/);
      const none = await rfbConnect({ host: '127.0.0.1', port: l.port });
      assert.equal(none.ok, false, 'no way in without authentication');
      assert.match(l.stderr(), /refused: wrong password/);
    } finally {
      l.child.kill('SIGINT');
    }
    const remote = await h.run(['display', VM, '--listen', '0.0.0.0:0']);
    assert.equal(remote.code, 2);
    assert.match(remote.stderr, /not a loopback address[\s\S]*--allow-remote/);
  });

  test('errors name the problem: no display, not running, unknown key', async () => {
    await h.ok(['create', '--name', 'plain', '--memory', '128', '--kernel', guest.kernel]);
    const stopped = await h.run(['screenshot', 'plain', join(h.home, 'x.png')]);
    assert.notEqual(stopped.code, 0);
    assert.match(stopped.stderr, /not running[\s\S]*hangar start plain/);
    const key = await h.run(['send-key', VM, 'ctrl-nosuchkey']);
    assert.notEqual(key.code, 0);
    assert.match(key.stderr, /does not know a key[\s\S]*ctrl-alt-delete/);
    const notPng = await h.run(['screenshot', VM, join(h.home, 'x.jpg')]);
    assert.equal(notPng.code, 2);
    const none = await h.ok(['display', 'plain']);
    assert.match(none, /no display[\s\S]*Fix: add a display/);
    assert.match(await h.ok(['show', 'plain']), /^Display: +none \(this VM has no video device/m);
    assert.match(await h.ok(['show', VM]), /^Display: +VNC .*, shared clipboard/m);
  });

  test('a relay to the daemon (browser mode and the desktop app when a daemon runs) carries RFB both ways', async () => {
    process.env.HANGAR_HOME = h.home;
    const m = memoryLink();
    daemonEndpoint().serveDisplay(m.link, VM);
    await m.wait(() => m.bytes().length >= 12);
    assert.deepEqual(JSON.parse(m.controls[0]!), { type: 'ready', vm: VM });
    assert.equal(m.bytes().subarray(0, 12).toString('latin1'), 'RFB 003.008\n');
    m.viewer(new TextEncoder().encode('RFB 003.008\n'));
    m.viewer(JSON.stringify({ type: 'ack', bytes: 12 }));
    await m.wait(() => m.bytes().length >= 14);
    assert.deepEqual([...m.bytes().subarray(12, 14)], [1, 1], 'QEMU offers one security type, None');
    m.link.close();
    const bad = memoryLink();
    daemonEndpoint().serveDisplay(bad.link, 'no-such-vm');
    await bad.wait(() => bad.closed());
    assert.match(bad.controls[0]!, /"type":"error"[\s\S]*no VM named/);
  });

  test('send-key ctrl-alt-delete reboots the guest; the display stays connected through the reboot', async () => {
    const viewer = await rfbHandshake(await openChannel(VM));
    assert.ok(viewer.ok);
    const before = h.serialLog(vmId).split(READY_MARKER).length - 1;
    await h.ok(['send-key', VM, 'ctrl-alt-delete']);
    await h.waitForSerial(vmId, READY_MARKER, before + 1);
    assert.equal(await h.state(VM), 'running');
    assert.ok((await viewer.session.requestUpdate()).rects >= 1, 'the same connection still gets updates');
    viewer.session.close();
  });

  test('a viewer is told the VM stopped when it goes away', async () => {
    const m = memoryLink();
    daemonEndpoint().serveDisplay(m.link, VM);
    await m.wait(() => m.controls.length > 0);
    await h.ok(['destroy', VM]);
    await m.wait(() => m.closed());
    assert.deepEqual(JSON.parse(m.controls.at(-1)!), { type: 'end', reason: 'vm-stopped' });
  });
});
