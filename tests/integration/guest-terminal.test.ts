// Terminals into a real guest (real CLI, daemon, QEMU under TCG, the test guest's dropbear): a VM
// with a user-mode NIC forwarding a free loopback port to guest port 22 gets a throw-away key in
// /root/.ssh/authorized_keys through its serial console; `hangar ssh` runs a command in it with the
// user's ssh options and passes the exit code through; browser mode's terminal channel
// (WS_TERMINAL_PATH, ssh in a pty in the `hangar serve` process, options from a HANGAR_SSH_CONFIG
// file) gives a shell prompt, follows resize controls (`stty size`), and ends with 'session-ended'
// and the exit code after `exit`; a stopped VM and a VM without a way in give errors with the fix,
// on the CLI and on the channel.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WS_TERMINAL_PATH } from '../../core/common/transport.ts';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import { HangarHarness, sleep } from '../helpers/hangar.ts';
import type { RunResult, ServeProcess } from '../helpers/hangar.ts';
import { WsConsole } from '../helpers/ws-client.ts';
import { freePort } from '../helpers/free-port.ts';

let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;
let dir: string;
let key: string;
let knownHosts: string;
let sshConfig: string;
let port: number;
let serve: ServeProcess | undefined;
let vmId: string;


/** `hangar ssh term --user root -- <our key and known_hosts> -- COMMAND`. */
function ssh(command: string[]): Promise<RunResult> {
  return h.run(['ssh', 'term', '--user', 'root', '--', '-i', key, '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=accept-new',
    '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=20', '--', ...command], { timeoutMs: 60_000 });
}

const created = (name: string, nic: string): Promise<unknown> => h.json(['create', '--name', name, '--memory', '256', '--accel', 'tcg', '--nic', nic,
  '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE]);

before(async () => {
  guest = await ensureTestGuest();
  h = new HangarHarness();
  dir = mkdtempSync(join(tmpdir(), 'hg-term-'));
  key = join(dir, 'id_ed25519');
  knownHosts = join(dir, 'known_hosts');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'hangar-terminal-test', '-f', key]);
  // What the serve process's ssh uses (HANGAR_SSH_CONFIG = ssh -F): our key and known_hosts only.
  sshConfig = join(dir, 'ssh_config');
  writeFileSync(sshConfig, `Host *\n  IdentityFile ${key}\n  IdentitiesOnly yes\n  UserKnownHostsFile ${knownHosts}\n  StrictHostKeyChecking accept-new\n  LogLevel ERROR\n`);
  port = await freePort();
});

after(async () => {
  await serve?.stop();
  await h?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('terminals into the guest over ssh', () => {
  before(async () => {
    const vm = await created('term', `user,hostfwd=tcp:127.0.0.1:${port}-:22`) as { id: string };
    vmId = vm.id;
    await h.ok(['start', 'term']);
    await h.waitForSerial(vm.id, READY_MARKER, 1, 240_000);
    // No persistent storage in the guest: the key goes in through the serial console each boot.
    const pub = readFileSync(`${key}.pub`, 'utf8').trim();
    const out = await h.consoleCommand('term', `mkdir -p /root/.ssh && echo '${pub}' > /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys && echo KEY-IN-PLACE`);
    assert.match(out, /KEY-IN-PLACE/);
  });

  test('hangar ssh runs a command in the guest with the user\'s ssh options, through the port forward', { timeout: 150_000 }, async () => {
    // The guest's DHCP lease (the forward's destination) comes a little after the ready marker.
    const deadline = Date.now() + 120_000;
    let r: RunResult;
    for (;;) {
      r = await ssh(['hostname;', 'cat', '/etc/os-release']);
      if (r.code === 0 || Date.now() > deadline) break;
      await sleep(2000);
    }
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^hangar-guest$/m);
    assert.match(r.stdout, /PRETTY_NAME="Hangar Test Guest 1"/);
    // The host key is filed under the VM (HostKeyAlias), not under 127.0.0.1:PORT that other VMs reuse.
    // (ssh-keygen -F finds hashed entries too: HashKnownHosts is Debian's default.)
    const filed = (name: string): boolean => { try { execFileSync('ssh-keygen', ['-F', name, '-f', knownHosts], { stdio: 'ignore' }); return true; } catch { return false; } };
    assert.ok(filed(`hangar-vm-${vmId}`), readFileSync(knownHosts, 'utf8'));
    assert.ok(!filed(`[127.0.0.1]:${port}`));
  });

  test('hangar ssh passes the guest command\'s exit code through', { timeout: 60_000 }, async () => {
    const r = await ssh(['exit', '7']);
    assert.equal(r.code, 7, r.stderr);
  });

  test('browser mode: a terminal channel gives a shell prompt, follows resizes, ends with the exit code', { timeout: 120_000 }, async () => {
    serve = await h.serve([], { HANGAR_SSH_CONFIG: sshConfig });
    const t = await WsConsole.openAt(serve, WS_TERMINAL_PATH, { vm: 'term', user: 'root', cols: '100', rows: '30' });
    try {
      await t.until(() => t.controls.some((c) => c.type === 'ready'), 'the ready control', 10_000);
      assert.deepEqual(t.controls[0], { type: 'ready', vm: 'term' });
      await t.until(() => t.text.includes('guest# '), 'the shell prompt', 60_000);
      // The pty was opened at the viewer's size: ssh passed it on to the guest's pty.
      t.type('stty size\r');
      await t.until(() => /\r\n30 100\r\n/.test(t.text), 'the initial size 30 100', 20_000);
      t.control({ type: 'resize', cols: 132, rows: 43 });
      await sleep(300);
      t.type('stty size\r');
      await t.until(() => /\r\n43 132\r\n/.test(t.text), 'the new size 43 132 after the resize control', 20_000);
      t.type('exit 3\r');
      await t.until(() => t.closed, 'the channel to close after exit', 20_000);
      assert.deepEqual(t.controls.at(-1), { type: 'end', reason: 'session-ended', exitCode: 3 });
    } finally {
      t.close();
    }
  });

  test('a stopped VM: the state and how to start it, on the CLI and on the channel', { timeout: 60_000 }, async () => {
    await created('off', `user,hostfwd=tcp:127.0.0.1:${await freePort()}-:22`);
    const r = await h.run(['ssh', 'off', '--user', 'root']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /VM "off" is not running \(stopped\): there is no guest to log in to/);
    assert.match(r.stderr, /hangar start off/);
    serve ??= await h.serve([], { HANGAR_SSH_CONFIG: sshConfig });
    const t = await WsConsole.openAt(serve, WS_TERMINAL_PATH, { vm: 'off', user: 'root' });
    await t.until(() => t.closed, 'the channel to close', 20_000);
    const err = t.controls.find((c) => c.type === 'error');
    assert.ok(err && err.type === 'error', JSON.stringify(t.controls));
    assert.equal(err.error.code, 'invalid-state');
    assert.match(err.error.hint ?? '', /hangar start off/);
  });

  test('a running VM without a way in: why, and the exact command that adds a port forward', { timeout: 90_000 }, async () => {
    await created('noway', 'user');
    await h.ok(['start', 'noway']);
    try {
      const r = await h.run(['ssh', 'noway', '--user', 'root']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /no way to reach VM "noway" over ssh: no NIC forwards a host port to guest port 22/);
      assert.match(r.stderr, /hangar device edit noway nic net0 user,hostfwd=tcp::2222-:22/);
      assert.match(r.stderr, /qemu-guest-agent/);
      serve ??= await h.serve([], { HANGAR_SSH_CONFIG: sshConfig });
      const t = await WsConsole.openAt(serve, WS_TERMINAL_PATH, { vm: 'noway' });
      await t.until(() => t.closed, 'the channel to close', 20_000);
      const err = t.controls.find((c) => c.type === 'error');
      assert.ok(err && err.type === 'error', JSON.stringify(t.controls));
      assert.match(err.error.message, /no way to reach VM "noway"/);
    } finally {
      await h.run(['destroy', 'noway']);
    }
  });

  test('the channel refuses a bad size or login name before running anything', { timeout: 30_000 }, async () => {
    serve ??= await h.serve([], { HANGAR_SSH_CONFIG: sshConfig });
    const queries: Array<Record<string, string>> = [{ vm: 'term', cols: '0', rows: '24' }, { vm: 'term', cols: '80', rows: '5000' }, { vm: 'term', user: '-oProxyCommand=touch /tmp/x' }];
    for (const q of queries) {
      const t = await WsConsole.openAt(serve, WS_TERMINAL_PATH, q);
      await t.until(() => t.closed, 'the channel to close', 10_000);
      const err = t.controls.find((c) => c.type === 'error');
      assert.ok(err && err.type === 'error' && err.error.code === 'invalid-input', JSON.stringify(t.controls));
    }
  });
});
