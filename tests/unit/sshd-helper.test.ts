// The throw-away sshd (tests/helpers/sshd.ts) with the real ssh client: key login in batch mode,
// and the unknown-host-key prompt answered in a pty, as the app will show it in a terminal.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startSshd, type SshdHandle } from '../helpers/sshd.ts';
import { spawnPty } from '../../core/node/pty/pty-session.ts';
import { withTimeout } from '../helpers/with-timeout.ts';

const run = promisify(execFile);
const started: SshdHandle[] = [];
after(async () => { await Promise.all(started.map((s) => s.stop())); });

async function sshd(...a: Parameters<typeof startSshd>): Promise<SshdHandle> {
  const s = await startSshd(...a);
  started.push(s);
  return s;
}

test('ssh -F config hangar-test-sshd runs a command in batch mode, with the throw-away key', async () => {
  const s = await sshd();
  assert.ok(s.port > 0 && s.port !== 22);
  const { stdout } = await run('ssh', ['-F', s.configFile, 'hangar-test-sshd', 'echo ok; id -un'], { timeout: 15_000 });
  assert.equal(stdout, `ok\n${s.user}\n`);
  assert.deepEqual(s.sshArgs('true'), ['-F', s.configFile, 'hangar-test-sshd', 'true']);
  // 127.0.0.1 uses the same entry, as ssh://root@127.0.0.1 will.
  const byAddress = await run('ssh', ['-F', s.configFile, `${s.user}@127.0.0.1`, 'echo ok'], { timeout: 15_000 });
  assert.equal(byAddress.stdout, 'ok\n');
  assert.match(readFileSync(s.logFile, 'utf8'), /Accepted publickey for \w+ from 127\.0\.0\.1/);
});

test('only the throw-away key gets in', async () => {
  const s = await sshd();
  // Another key, and a config without the helper's IdentityFile (ssh adds IdentityFile lines up).
  const other = join(s.dir, 'other_key');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
  const refused = await run('ssh', ['-F', '/dev/null', '-o', `UserKnownHostsFile=${s.knownHosts}`, '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes',
    '-i', other, '-p', String(s.port), `${s.user}@127.0.0.1`, 'echo ok'], { timeout: 15_000, env: { ...process.env, SSH_AUTH_SOCK: '' } })
    .then(() => null, (e: { code: number; stderr: string }) => e);
  assert.ok(refused, 'login without the key must fail');
  assert.equal(refused.code, 255);
  assert.match(refused.stderr, /Permission denied \(publickey\)/);
});

test('an untrusted host key: batch mode refuses; in a pty ssh asks, "yes" connects and records the key', async () => {
  const s = await sshd({ trustHostKey: false });
  assert.equal(readFileSync(s.knownHosts, 'utf8'), '');

  const batch = await run('ssh', ['-F', s.configFile, '-o', 'BatchMode=yes', 'hangar-test-sshd', 'echo ok'], { timeout: 15_000 })
    .then(() => null, (e: { code: number; stderr: string }) => e);
  assert.ok(batch, 'batch mode must not connect to an unknown host');
  assert.match(batch.stderr, /Host key verification failed/);

  const pty = spawnPty('ssh', ['-F', s.configFile, '-o', 'BatchMode=no', 'hangar-test-sshd', 'echo ok']);
  let out = '';
  pty.onData((b) => { out += b.toString('utf8'); });
  try {
    const deadline = Date.now() + 15_000;
    while (!/continue connecting \(yes\/no(\/\[fingerprint\])?\)\? $/.test(out) && pty.exit === null && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(out, /The authenticity of host '\[127\.0\.0\.1\]:\d+ \(\[127\.0\.0\.1\]:\d+\)' can't be established/);
    assert.match(out, /ED25519 key fingerprint is SHA256:/);
    pty.write('yes\r');
    const exit = await withTimeout(pty.exited, 15_000, () => `ssh did not finish: ${JSON.stringify(out)}`);
    assert.deepEqual(exit, { exitCode: 0 }, out);
    assert.match(out, /Permanently added '\[127\.0\.0\.1\]:\d+' \(ED25519\) to the list of known hosts/);
    assert.match(out, /\r\nok\r\n/);
  } finally {
    pty.kill('SIGKILL');
  }
  assert.equal(readFileSync(s.knownHosts, 'utf8'), `${s.knownHostsLine.replace(/ hangar-test-host$/, '')}\n`);

  // Now known: batch mode connects.
  const again = await run('ssh', ['-F', s.configFile, '-o', 'BatchMode=yes', 'hangar-test-sshd', 'echo ok'], { timeout: 15_000 });
  assert.equal(again.stdout, 'ok\n');
});

test('stop() ends sshd and removes its directory; a second stop() is harmless', async () => {
  const s = await startSshd();
  await s.stop();
  await s.stop();
  assert.throws(() => process.kill(s.pid, 0), { code: 'ESRCH' });
  assert.throws(() => readFileSync(s.configFile), { code: 'ENOENT' });
  const refused = await run('ssh', ['-F', '/dev/null', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5', '-p', String(s.port), '127.0.0.1', 'true'], { timeout: 15_000 })
    .then(() => null, (e: { stderr: string }) => e);
  assert.match(refused?.stderr ?? '', /Connection refused/);
});
