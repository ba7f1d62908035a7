// A Hangar core on "another machine": a real sshd on 127.0.0.1 with a throw-away key, and a second
// data dir. The local CLI and browser mode reach it as ssh://, through the user's own ssh running
// `hangar daemon stdio` there; VMs, their consoles and errors travel that way.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import { freePort } from '../helpers/free-port.ts';
import { HangarHarness, HANGAR_BIN, sleep } from '../helpers/hangar.ts';
import { startSshd } from '../helpers/sshd.ts';
import type { SshdHandle } from '../helpers/sshd.ts';
import { spawnPty } from '../../core/node/pty/pty-session.ts';
import { WsConsole, wsCoreClient } from '../helpers/ws-client.ts';
import { WS_TERMINAL_PATH } from '../../core/common/transport.ts';
import { ensureLibvirtd, libvirtGuestFiles, removeDomains, testDomainXml, testPrefix, virsh } from '../helpers/libvirtd.ts';

const APPEND = 'console=ttyS0 quiet panic=-1';

let sshd: SshdHandle;
let here: HangarHarness;
let there: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;
let uri = '';

before(async () => {
  guest = await ensureTestGuest();
  sshd = await startSshd();
  here = new HangarHarness({ env: { HANGAR_SSH_CONFIG: sshd.configFile } });
  there = new HangarHarness();
  uri = `ssh://hangar-test-sshd?command=${HANGAR_BIN}&env.HANGAR_HOME=${there.home}`;
  await here.ok(['connect', 'add', 'lab', uri]);
});

after(async () => {
  await there?.cleanup();
  await here?.cleanup();
  await sshd?.stop();
});

describe('Hangar over ssh', () => {
  test('create, start, console and list on the remote core; nothing lands here', async () => {
    const created = await here.json<{ id: string; dir: string }>(['--connect', 'lab', 'create', '--name', 'far', '--memory', '256', '--accel', 'tcg',
      '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', APPEND]);
    assert.ok(created.dir.startsWith(there.home), `the VM lives in the remote data dir (${created.dir})`);
    await here.ok(['--connect', 'lab', 'start', 'far']);
    await there.waitForSerial(created.id, READY_MARKER);
    // The console through its own ssh session: input typed here, the guest's answer back.
    const r = await here.run(['--connect', 'lab', 'console', 'far', '--no-replay', '--grace', '3'], { input: 'echo remote-$((6*7))\n', inputDelayMs: 700 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^remote-42\r?$/m);
    const remote = await here.json<Array<{ name: string; state: string }>>(['--connect', 'lab', 'list']);
    assert.deepEqual(remote.map((v) => [v.name, v.state]), [['far', 'running']]);
    // The remote core itself agrees; the local one never heard of the VM.
    assert.equal(await there.state('far'), 'running');
    assert.deepEqual(await here.json<unknown[]>(['list']), []);
    const caps = await here.json<{ driver: string; connection: string; label: string }>(['connect', 'test', 'lab']);
    assert.deepEqual([caps.driver, caps.connection, caps.label], ['hangar', 'lab', 'Hangar on hangar-test-sshd']);
    await here.ok(['--connect', 'lab', 'destroy', 'far']);
    assert.equal(await there.state('far'), 'stopped');
  });

  test('browser mode serves the remote core on a channel that names the connection', async () => {
    const serve = await here.serve();
    try {
      const remote = await wsCoreClient(serve, {}, 'lab');
      try {
        assert.deepEqual((await remote.api.list()).map((v) => v.name), ['far']);
        assert.equal((await remote.api.capabilities()).connection, 'lab');
        // The connection list is this computer's, whichever connection the channel is for.
        assert.deepEqual((await remote.api.connections()).map((c) => c.name), ['local', 'lab']);
      } finally {
        remote.close();
      }
      const local = await wsCoreClient(serve);
      try {
        assert.deepEqual(await local.api.list(), []);
        assert.equal((await local.api.capabilities()).connection, 'local');
      } finally {
        local.close();
      }
    } finally {
      await serve.stop();
    }
  });

  test('a remote VM\'s terminal goes through its host (ssh -J): the forwarded port is on that host\'s loopback', { timeout: 300_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hg-rterm-'));
    try {
      const key = join(dir, 'id_ed25519');
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
      const port = await freePort();
      const vm = await here.json<{ id: string }>(['--connect', 'lab', 'create', '--name', 'near', '--memory', '256', '--accel', 'tcg',
        '--nic', `user,hostfwd=tcp:127.0.0.1:${port}-:22`, '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE]);
      await here.ok(['--connect', 'lab', 'start', 'near']);
      await there.waitForSerial(vm.id, READY_MARKER, 1, 240_000);
      const pub = readFileSync(`${key}.pub`, 'utf8').trim();
      assert.match(await there.consoleCommand('near', `mkdir -p /root/.ssh && echo '${pub}' > /root/.ssh/authorized_keys && echo KEY-IN-PLACE`), /KEY-IN-PLACE/);
      // -v shows the route ssh took; the jump hop finds hangar-test-sshd in HANGAR_SSH_CONFIG (ssh -F).
      const run = () => here.run(['--connect', 'lab', 'ssh', 'near', '--user', 'root', '--', '-v', '-i', key, '-o', 'IdentitiesOnly=yes',
        '-o', 'StrictHostKeyChecking=accept-new', '-o', `UserKnownHostsFile=${join(dir, 'known_hosts')}`, '-o', 'BatchMode=yes', '--', 'hostname'], { timeoutMs: 60_000 });
      let r = await run();
      // The guest's DHCP lease (the forward's destination) comes a little after the ready marker.
      for (const deadline = Date.now() + 120_000; r.code !== 0 && Date.now() < deadline;) {
        await sleep(2000);
        r = await run();
      }
      assert.equal(r.code, 0, r.stderr.slice(-2000));
      assert.match(r.stdout, /^hangar-guest$/m);
      assert.match(r.stderr, /ProxyJump/, 'ssh went through the VM\'s host');
      assert.match(r.stderr, new RegExp(`-W '\\[%h\\]:%p' hangar-test-sshd|-W '\\[127\\.0\\.0\\.1\\]:${port}' hangar-test-sshd`));
      await here.ok(['--connect', 'lab', 'destroy', 'near']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a remote without Hangar, or an unreachable host, is an error with the fix', async () => {
    const missing = await here.run(['--connect', `ssh://hangar-test-sshd?command=/nonexistent/hangar`, 'list']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /Hangar is not installed on hangar-test-sshd: .*\/nonexistent\/hangar: No such file or directory/);
    assert.match(missing.stderr, /name its path in the URI: ssh:\/\/hangar-test-sshd\?command=\/path\/to\/hangar/);
    const closed = await here.run(['--connect', 'ssh://root@127.0.0.1:1', 'list'], { env: { HANGAR_SSH_CONFIG: '/dev/null' } });
    assert.equal(closed.code, 1);
    assert.match(closed.stderr, /ssh to root@127\.0\.0\.1:1 failed: .*Connection refused/);
  });

  test('an unknown host key is asked about in a terminal, and answering yes connects', async () => {
    const fresh = await startSshd({ trustHostKey: false });
    const home = mkdtempSync(join(tmpdir(), 'hgt-'));
    try {
      const pty = spawnPty(process.execPath, [HANGAR_BIN, '--connect', `ssh://hangar-test-sshd?command=${HANGAR_BIN}&env.HANGAR_HOME=${there.home}`, 'list'],
        { env: { ...process.env, HANGAR_HOME: home, HANGAR_ENTRY: '', HANGAR_SSH_CONFIG: fresh.configFile } });
      let out = '';
      pty.onData((d) => { out += d.toString('utf8'); });
      const exited = new Promise<number>((r) => pty.onExit((e) => r(e.exitCode)));
      const deadline = Date.now() + 30_000;
      while (!/continue connecting/.test(out) && Date.now() < deadline) await sleep(100);
      assert.match(out, /authenticity of host .* can't be established/);
      pty.write('yes\r');
      assert.equal(await exited, 0, out);
      assert.match(out, /far\s+stopped/);
    } finally {
      rmSync(home, { recursive: true, force: true });
      await fresh.stop();
    }
  });

  test('libvirt over ssh: qemu+ssh:// lists the domains there; a live migration to it goes through virsh migrate', async () => {
    await ensureLibvirtd();
    const files = await libvirtGuestFiles(guest);
    const prefix = testPrefix('ssh');
    const xmlFile = join(files.dir, 'dom.xml');
    writeFileSync(xmlFile, testDomainXml({ name: `${prefix}lv`, kernel: files.kernel, initrd: files.initrd, serialLog: join(files.dir, 'serial.log') }));
    try {
      await virsh(['define', xmlFile]);
      const lvSsh = `qemu+ssh://root@127.0.0.1:${sshd.port}/system?keyfile=${sshd.identity}&no_verify=1`;
      const listed = await here.json<Array<{ name: string; state: string }>>(['--connect', lvSsh, 'list']);
      assert.deepEqual(listed.filter((v) => v.name.startsWith(prefix)).map((v) => [v.name, v.state]), [[`${prefix}lv`, 'stopped']]);
      // Only one libvirtd here: libvirt itself refuses a migration to the same host, and says so.
      await virsh(['start', `${prefix}lv`]);
      const r = await here.run(['--connect', 'qemu:///system', 'migrate', `${prefix}lv`, '--to', lvSsh]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /same host/i);
      assert.equal((await here.json<{ state: string }>(['--connect', 'qemu:///system', 'show', `${prefix}lv`])).state, 'running', 'the domain runs on');
      const toHangar = await here.run(['--connect', 'qemu:///system', 'migrate', `${prefix}lv`, '--to', 'lab']);
      assert.match(toHangar.stderr, /migrates to another libvirt host, and "lab" is a Hangar core/);
    } finally {
      await removeDomains(prefix).catch(() => {});
      await files.cleanup();
    }
  });

  test('the app logs in to a host in a terminal: the host key question answered there, then the connection works', async () => {
    const fresh = await startSshd({ trustHostKey: false });
    try {
      await here.ok(['connect', 'add', 'fresh', `ssh://hangar-test-sshd?command=${HANGAR_BIN}&env.HANGAR_HOME=${there.home}`]);
      const serve = await here.serve([], { HANGAR_SSH_CONFIG: fresh.configFile });
      try {
        // Before: the UI host never prompts; ssh's own words come back.
        const before = await wsCoreClient(serve, {}, 'fresh');
        await assert.rejects(before.api.list(), /Host key verification failed/);
        before.close();
        const login = await WsConsole.openAt(serve, WS_TERMINAL_PATH, { login: '1', connection: 'fresh', cols: '100', rows: '30' });
        try {
          await login.until(() => /continue connecting/.test(login.text), 'the host key question', 30_000);
          login.type('yes\r');
          await login.until(() => login.controls.some((c) => c.type === 'end'), 'the end of the login', 30_000);
          assert.deepEqual(login.controls.find((c) => c.type === 'end'), { type: 'end', reason: 'session-ended', exitCode: 0 });
        } finally {
          login.close();
        }
        const after = await wsCoreClient(serve, {}, 'fresh');
        try {
          const direct = await there.json<Array<{ name: string }>>(['list']);
          assert.deepEqual((await after.api.list()).map((v) => v.name), direct.map((v) => v.name));
        } finally {
          after.close();
        }
        // A local connection has nothing to log in to.
        const local = await WsConsole.openAt(serve, WS_TERMINAL_PATH, { login: '1', connection: 'local' });
        await local.until(() => local.controls.some((c) => c.type === 'error'), 'the refusal', 10_000);
        assert.match(JSON.stringify(local.controls), /nothing to log in to/);
        local.close();
      } finally {
        await serve.stop();
      }
    } finally {
      await fresh.stop();
    }
  });
});
