// passt NICs end to end: a per-NIC passt supervised with QEMU (real CLI, daemon, QEMU under TCG,
// the test guest booted by kernel + initrd). The guest configures its NIC by passt's DHCP and a
// port forward carries data from the host into the guest and back; passt is gone (and its socket
// removed) after a shutdown, a QEMU crash, a destroy and a failed start.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { runtimeDir, vmRuntimePaths } from '../../core/node/paths.ts';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import { HangarHarness, sleep } from '../helpers/hangar.ts';
import { freePort } from '../helpers/free-port.ts';

let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;

interface Info { id: string; dir: string; pid?: number; state: string; definition: { nics: Array<{ id: string; model: string; network: Record<string, unknown> }> } }

/** Pids of passt processes serving `socket` (passt re-executes itself as passt.avx2, same argv). */
function passtPids(socket: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      const i = argv.indexOf('--socket');
      if (/(^|\/)passt(\.avx2)?$/.test(argv[0] ?? '') && i >= 0 && argv[i + 1] === socket) pids.push(Number(name));
    } catch { /* gone meanwhile */ }
  }
  return pids;
}

async function waitNoPasst(socket: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (passtPids(socket).length) {
    if (Date.now() > deadline) throw new Error(`passt still running for ${socket}: ${passtPids(socket).join(' ')}`);
    await sleep(100);
  }
}

function runPaths(id: string) {
  return vmRuntimePaths(runtimeDir({ HANGAR_HOME: h.home }), id);
}


/** Connects to 127.0.0.1:port, sends `send`, returns what came back until `expect` (retried while the guest is not listening yet). */
async function exchange(port: number, send: string, expect: string, timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const got = await new Promise<string>((resolve) => {
      let data = '';
      const s = createConnection({ host: '127.0.0.1', port });
      const t = setTimeout(() => { s.destroy(); resolve(data); }, 10_000);
      s.setEncoding('utf8');
      s.on('connect', () => { s.write(send); });
      s.on('data', (d: string) => { data += d; if (data.includes(expect)) { clearTimeout(t); s.end(); resolve(data); } });
      s.on('error', (e) => { clearTimeout(t); last = e.message; resolve(data); });
      s.on('close', () => { clearTimeout(t); resolve(data); });
    });
    if (got.includes(expect)) return got;
    if (Date.now() > deadline) throw new Error(`no "${expect}" through the port forward 127.0.0.1:${port} within ${timeoutMs} ms (last: ${last || JSON.stringify(got)})`);
    await sleep(500);
  }
}

before(async () => {
  guest = await ensureTestGuest();
  h = new HangarHarness();
});

after(async () => {
  await h?.cleanup();
});

describe('passt', () => {
  test('passt runs with the VM, the guest gets its address by DHCP, a port forward carries data; stopped on shutdown, a QEMU crash and destroy',
    { timeout: 600_000 }, async () => {
      const port = await freePort();
      const vm = await h.json<Info>(['create', '--name', 'pn', '--memory', '256', '--accel', 'tcg',
        '--nic', `passt,model=virtio-net,hostfwd=tcp::${port}-:8080`,
        '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE]);
      assert.deepEqual(vm.definition.nics[0]!.network, { type: 'passt', portForwards: [{ protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: port, guestPort: 8080 }] });
      assert.match(await h.ok(['show', 'pn']), /^NIC net0: +virtio-net \S+ passt \(user-mode\) tcp\/127\.0\.0\.1:\d+->8080$/m);
      const paths = runPaths(vm.id);
      const socket = paths.passtSocket(0);
      const log = join(vm.dir, 'logs', 'passt-net0.log');

      await h.ok(['start', 'pn']);
      const pid = Number(readFileSync(paths.passtPidfile(0), 'utf8').trim());
      assert.deepEqual(passtPids(socket), [pid], 'one passt, the one in its pidfile');
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      assert.ok(argv.includes('--one-off') && argv.includes(`127.0.0.1/${port}:8080`), argv.join(' '));
      assert.ok(existsSync(socket), 'passt socket in the runtime dir');
      const qemuArgv = readFileSync(`/proc/${(await h.json<Info>(['show', 'pn'])).pid!}/cmdline`, 'utf8').split('\0');
      assert.ok(qemuArgv.includes(`{"type":"stream","id":"net0-net","server":false,"addr":{"type":"unix","path":"${socket}"}}`), qemuArgv.join(' '));

      await h.waitForSerial(vm.id, READY_MARKER, 1, 240_000);
      const dhcp = await h.consoleCommand('pn', 'udhcpc -i eth0 -s /etc/udhcpc.script -q -n -t 10', 15);
      const m = /udhcpc: eth0 (\d+\.\d+\.\d+\.\d+)\/\d+ router (\S+)/.exec(dhcp);
      assert.ok(m, `the guest got an address from passt's DHCP: ${dhcp}`);
      const assigned = /assign: (\d+\.\d+\.\d+\.\d+)/.exec(readFileSync(log, 'utf8'))?.[1];
      assert.equal(m[1], assigned, 'passt hands out the address it logged (the host\'s own)');

      // Host -> guest -> host through passt's port forward: the guest answers one connection.
      await h.consoleCommand('pn', '(echo PONG-FROM-GUEST | nc -l -p 8080 > /tmp/got) &', 2);
      const reply = await exchange(port, 'PING-FROM-HOST\n', 'PONG-FROM-GUEST');
      assert.match(reply, /PONG-FROM-GUEST/);
      await sleep(1000);
      const got = await h.consoleCommand('pn', 'cat /tmp/got', 3);
      assert.match(got, /^PING-FROM-HOST\r?$/m, got);

      // A restarted core leaves the running VM's passt alone.
      await h.ok(['daemon', 'stop']);
      assert.equal(await h.state('pn'), 'running');
      assert.deepEqual(passtPids(socket), [pid]);

      await h.ok(['shutdown', 'pn', '--timeout', '60'], { timeoutMs: 120_000 });
      await h.waitForState('pn', 'stopped');
      await waitNoPasst(socket);
      assert.ok(!existsSync(socket) && !existsSync(paths.passtPidfile(0)), 'socket and pidfile removed after shutdown');
      assert.ok(existsSync(log), 'passt log kept in the VM folder');

      // QEMU killed behind Hangar's back: the VM is crashed and its passt gone.
      await h.ok(['start', 'pn']);
      assert.equal(passtPids(socket).length, 1);
      process.kill((await h.json<Info>(['show', 'pn'])).pid!, 'SIGKILL');
      await h.waitForState('pn', 'crashed');
      await waitNoPasst(socket);
      assert.ok(!existsSync(socket) && !existsSync(paths.passtPidfile(0)), 'socket and pidfile removed after a crash');

      // Force off.
      await h.ok(['start', 'pn']);
      assert.equal(passtPids(socket).length, 1);
      await h.ok(['destroy', 'pn']);
      assert.equal(await h.state('pn'), 'stopped');
      await waitNoPasst(socket);
      assert.ok(!existsSync(socket) && !existsSync(paths.passtPidfile(0)), 'socket and pidfile removed after destroy');
    });

  test('a failed start stops passt: a forwarded port in use, QEMU refusing to start; two passt NICs', { timeout: 120_000 }, async () => {
    // The host port is taken: passt refuses, with its reason, before QEMU runs.
    const busy: Server = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as { port: number }).port;
    try {
      const vm = await h.json<Info>(['create', '--name', 'busy', '--accel', 'tcg',
        '--nic', 'passt', '--nic', `passt,model=e1000,hostfwd=tcp::${port}-:22`,
        '--kernel', guest.kernel, '--initrd', guest.initrd]);
      const r = await h.run(['start', 'busy']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /passt \(NIC "net1"\) failed to start: Failed to bind any port for '-t 127\.0\.0\.1\/\d+:22'/, r.stderr);
      assert.equal(await h.state('busy'), 'stopped');
      const paths = runPaths(vm.id);
      await waitNoPasst(paths.passtSocket(0), 5000);
      assert.ok(!existsSync(paths.passtSocket(0)) && !existsSync(paths.passtPidfile(0)), 'the first NIC\'s passt, already started, is gone too');
    } finally {
      await new Promise((r) => busy.close(r));
    }

    // QEMU refuses to start (an unknown CPU model) after passt was started: passt must go too.
    const bad = await h.json<Info>(['create', '--name', 'bad', '--accel', 'tcg', '--cpu', 'no-such-cpu', '--nic', 'passt',
      '--kernel', guest.kernel, '--initrd', guest.initrd]);
    const r = await h.run(['start', 'bad']);
    assert.notEqual(r.code, 0);
    assert.equal(await h.state('bad'), 'stopped');
    const paths = runPaths(bad.id);
    await waitNoPasst(paths.passtSocket(0), 5000);
    assert.ok(!existsSync(paths.passtSocket(0)));
  });

  test('--nic passt refuses the user-only options with the fix', async () => {
    const r = await h.run(['create', '--name', 'x', '--nic', 'passt,tftp=/srv/tftp']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--nic passt: tftp= is only for --nic user/);
  });
});
