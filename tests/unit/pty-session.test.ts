// PtySession on a real pseudo-terminal (node-pty): what ssh and virsh console need from it.
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { spawnPty as realSpawnPty, type PtySession } from '../../core/node/pty/pty-session.ts';
import { withTimeout } from '../helpers/with-timeout.ts';

// A failed test must not leave a child holding the test process open.
const sessions: PtySession[] = [];
const spawnPty: typeof realSpawnPty = (...a) => { const s = realSpawnPty(...a); sessions.push(s); return s; };
afterEach(() => { for (const s of sessions.splice(0)) s.kill('SIGKILL'); });

/** Collects a session's output; waitFor resolves once the text so far matches. */
function recorder(s: PtySession) {
  const chunks: Buffer[] = [];
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  const text = (): string => Buffer.concat(chunks).toString('utf8');
  s.onData((b) => {
    chunks.push(b);
    for (const w of [...waiters]) if (w.re.test(text())) { waiters.splice(waiters.indexOf(w), 1); w.resolve(); }
  });
  return {
    chunks,
    text,
    waitFor(re: RegExp, ms = 5000): Promise<void> {
      if (re.test(text())) return Promise.resolve();
      return withTimeout(new Promise<void>((resolve) => waiters.push({ re, resolve })), ms, () => `no ${re} in output: ${JSON.stringify(text())}`);
    },
  };
}

const exitOf = (s: PtySession) => withTimeout(s.exited, 5000, () => `pid ${s.pid} did not exit`);

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

test('the child sees a terminal on stdin and stdout; output comes as Buffers', async () => {
  const s = spawnPty('/bin/sh', ['-c', 'test -t 0 && test -t 1 && echo tty; echo "TERM=$TERM"; printf "\\342\\202\\254\\n"']);
  const r = recorder(s);
  assert.ok(s.pid > 0);
  assert.deepEqual(await exitOf(s), { exitCode: 0 });
  assert.ok(r.chunks.every((c) => Buffer.isBuffer(c)), 'bytes, not decoded strings');
  assert.match(r.text(), /^tty\r\n/, 'a TTY (and the terminal turns \\n into \\r\\n)');
  assert.match(r.text(), /TERM=xterm-256color\r\n/);
  assert.ok(Buffer.concat(r.chunks).includes(Buffer.from([0xe2, 0x82, 0xac])), 'UTF-8 bytes pass unchanged');
});

test('input reaches the child as typed on a terminal', async () => {
  // Input typed before the child set up its terminal can be flushed: wait until it reads.
  const s = spawnPty('/bin/sh', ['-c', 'echo ready; read x; echo "got:$x"']);
  const r = recorder(s);
  await r.waitFor(/ready\r\n/);
  s.write('hello');
  s.write(Buffer.from(' world\r'));
  await r.waitFor(/got:hello world\r\n/);
  assert.match(r.text(), /^ready\r\nhello world\r\n/, 'the terminal echoes the typed line');
  assert.deepEqual(await exitOf(s), { exitCode: 0 });
  s.write('after exit\r'); // ignored, does not throw
});

test('resize is seen by the child (stty size, SIGWINCH)', async () => {
  const s = spawnPty('/bin/sh', ['-c', 'trap "echo winch" WINCH; stty size; read x; stty size'], { cols: 90, rows: 30 });
  const r = recorder(s);
  assert.deepEqual([s.cols, s.rows], [90, 30]);
  await r.waitFor(/^30 90\r\n/);
  s.resize(132, 43);
  assert.deepEqual([s.cols, s.rows], [132, 43]);
  s.write('\r');
  await r.waitFor(/43 132\r\n/);
  await exitOf(s);
});

test('the exit code passes through; env and cwd reach the child', async () => {
  const s = spawnPty('/bin/sh', ['-c', 'echo "$HANGAR_PTY_TEST $(pwd)"; exit 7'], { env: { ...process.env, HANGAR_PTY_TEST: 'yes' }, cwd: '/tmp' });
  const r = recorder(s);
  const exits: unknown[] = [];
  s.onExit((e) => exits.push(e));
  assert.deepEqual(await exitOf(s), { exitCode: 7 });
  assert.equal(r.text(), 'yes /tmp\r\n');
  assert.deepEqual(exits, [{ exitCode: 7 }]);
  assert.deepEqual(s.exit, { exitCode: 7 });
  const late = await new Promise((resolve) => s.onExit(resolve));
  assert.deepEqual(late, { exitCode: 7 }, 'onExit after the exit still fires');
});

test('kill ends the process: SIGHUP by default, or the signal given', async () => {
  const a = spawnPty('/bin/sleep', ['30']);
  a.kill();
  assert.deepEqual(await exitOf(a), { exitCode: 0, signal: 1 });
  assert.equal(alive(a.pid), false);
  a.kill(); // after exit: a no-op, never a signal to a reused pid

  const b = spawnPty('/bin/sh', ['-c', 'trap "" HUP; echo ready; sleep 30']);
  const r = recorder(b);
  await r.waitFor(/ready/);
  b.kill('SIGKILL');
  assert.deepEqual(await exitOf(b), { exitCode: 0, signal: 9 });
});

test('a missing program is an ENOENT error at spawn, not a silent exit 1', () => {
  assert.throws(() => spawnPty('hangar-no-such-program', []), { code: 'ENOENT', message: /not found on PATH/ });
  assert.throws(() => spawnPty('/nonexistent/prog', []), { code: 'ENOENT' });
});

test('toDuplex: output on the readable side, input on the writable side; ends and closes on exit', async () => {
  const s = spawnPty('/bin/sh', ['-c', 'echo ready; read x; echo "got:$x"; exit 3']);
  const d = s.toDuplex();
  const out: Buffer[] = [];
  const closed = once(d, 'close');
  await withTimeout(new Promise<void>((resolve) => d.on('data', (b: Buffer) => {
    out.push(b);
    if (Buffer.concat(out).includes('ready\r\n')) resolve();
  })), 5000, () => 'no ready');
  d.write('abc\r');
  await withTimeout(closed, 5000, () => `duplex did not close: ${Buffer.concat(out).toString()}`);
  assert.ok(out.every((c) => Buffer.isBuffer(c)));
  assert.match(Buffer.concat(out).toString(), /got:abc\r\n$/);
  assert.deepEqual(s.exit, { exitCode: 3 });
});

test('toDuplex: destroying it or ending it kills the process', async () => {
  const a = spawnPty('/bin/sleep', ['30']);
  a.toDuplex().destroy();
  assert.equal((await exitOf(a)).signal, 1);

  const b = spawnPty('/bin/sleep', ['30']);
  const d = b.toDuplex();
  d.resume();
  d.end();
  assert.equal((await exitOf(b)).signal, 1);
  await withTimeout(once(d, 'close'), 5000, () => 'ended duplex did not close');
});

test('toDuplex: a paused reader holds the child back and loses nothing', async () => {
  // 100000 lines of "y\n" become "y\r\n" on the terminal: 300000 bytes, far above the pty's buffer.
  // The child then waits for a key: node-pty can drop output that is still unread when the child
  // exits (microsoft/node-pty#72), which is not what this test is about.
  const s = spawnPty('/bin/sh', ['-c', 'yes | head -n 100000; echo end; read x']);
  const d = s.toDuplex();
  d.pause();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(s.exit, null, 'the child blocks on a full terminal while nobody reads');
  let bytes = 0;
  let tail = '';
  d.on('data', (b: Buffer) => {
    bytes += b.length;
    tail = (tail + b.toString()).slice(-20);
    if (tail.endsWith('end\r\n')) d.write('\r');
  });
  d.resume();
  await withTimeout(once(d, 'end'), 10_000, () => `duplex did not end after ${bytes} bytes`);
  assert.equal(bytes, 300000 + 'end\r\n\r\n'.length, 'all output, then the echoed Enter');
  assert.match(tail, /y\r\nend\r\n\r\n$/);
});

