import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { SerialLog, DEFAULT_LOG_KEEP, DEFAULT_LOG_MAX_BYTES } from '../../core/node/console/serial-log.ts';
import { SerialConsole } from '../../core/node/console/serial-console.ts';
import type { DisconnectReason } from '../../core/node/console/serial-console.ts';
import { HangarError } from '../../core/common/errors.ts';

let root = '';
let counter = 0;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'hangar-console-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Consoles and fake servers of the current test, closed even when it fails. */
const resources: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const r of resources.splice(0).reverse()) await r.close().catch(() => undefined);
});
function track<T extends SerialConsole | FakeQemu>(r: T): T {
  resources.push(r instanceof FakeQemu ? { close: () => r.stop() } : r);
  return r;
}

/** A fresh VM dir and runtime socket path (short enough for sun_path). */
function freshVm(): { vmDir: string; socketPath: string } {
  counter++;
  return { vmDir: join(root, `vm${counter}`), socketPath: join(root, `s${counter}.sock`) };
}

function isHangar(code: string) {
  return (e: unknown): boolean => e instanceof HangarError && e.code === code;
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A stand-in for QEMU's chardev socket server (server=on,wait=off). */
class FakeQemu {
  readonly server: Server;
  readonly clients: Socket[] = [];
  readonly received: Buffer[] = [];
  private constructor(readonly path: string) {
    this.server = createServer((sock) => {
      this.clients.push(sock);
      sock.on('data', (d: Buffer) => this.received.push(d));
      sock.on('error', () => undefined);
    });
  }

  static async start(path: string): Promise<FakeQemu> {
    const q = new FakeQemu(path);
    await new Promise<void>((resolve, reject) => {
      q.server.once('error', reject);
      q.server.listen(path, () => resolve());
    });
    return q;
  }

  get client(): Socket {
    const c = this.clients.at(-1);
    if (!c) throw new Error('no client connected');
    return c;
  }

  async waitClient(n = 1): Promise<Socket> {
    await waitFor(() => this.clients.length >= n, `client #${n}`);
    return this.client;
  }

  receivedText(): string {
    return Buffer.concat(this.received).toString();
  }

  /** QEMU exits: drop the connection and remove the socket. */
  async stop(): Promise<void> {
    for (const c of this.clients) c.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function writeAsync(sock: Socket, data: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => sock.write(data, (e) => (e ? reject(e) : resolve())));
}

describe('SerialLog', () => {
  it('has the documented defaults', () => {
    const log = new SerialLog('/nonexistent');
    assert.equal(log.maxBytes, 8 * 1024 * 1024);
    assert.equal(DEFAULT_LOG_MAX_BYTES, 8 * 1024 * 1024);
    assert.equal(log.keep, 3);
    assert.equal(DEFAULT_LOG_KEEP, 3);
    assert.equal(log.path, join('/nonexistent', 'logs', 'serial.log'));
  });

  it('creates the logs dir and writes in order', async () => {
    const { vmDir } = freshVm();
    const log = new SerialLog(vmDir);
    const parts: string[] = [];
    for (let i = 0; i < 500; i++) {
      parts.push(`line ${i}\n`);
      log.append(Buffer.from(`line ${i}\n`));
    }
    await log.flush();
    assert.equal((await readFile(join(vmDir, 'logs', 'serial.log'))).toString(), parts.join(''));
    await log.close();
    await log.close(); // idempotent
    assert.throws(() => log.append(Buffer.from('x')), isHangar('invalid-state'));
  });

  it('rotates at maxBytes, keeps `keep` files and readAll returns oldest→newest', async () => {
    const { vmDir } = freshVm();
    const log = new SerialLog(vmDir, { maxBytes: 100, keep: 3 });
    const data = randomBytes(450);
    // Uneven chunks, some crossing the 100-byte boundaries, one bigger than maxBytes.
    const sizes = [7, 60, 150, 33, 1, 99, 100];
    let off = 0;
    for (const n of sizes) {
      log.append(data.subarray(off, off + n));
      off += n;
    }
    assert.equal(off, 450);
    await log.flush();
    const names = (await readdir(join(vmDir, 'logs'))).sort();
    assert.deepEqual(names, ['serial.log', 'serial.log.1', 'serial.log.2', 'serial.log.3']);
    // Files hold exactly maxBytes each, newest rotated = .1.
    const file = (n: string): Promise<Buffer> => readFile(join(vmDir, 'logs', n));
    assert.deepEqual(await file('serial.log.3'), data.subarray(100, 200));
    assert.deepEqual(await file('serial.log.2'), data.subarray(200, 300));
    assert.deepEqual(await file('serial.log.1'), data.subarray(300, 400));
    assert.deepEqual(await file('serial.log'), data.subarray(400, 450));
    assert.deepEqual(await SerialLog.readAll(vmDir), data.subarray(100));

    // tail across file boundaries, exact, and larger than everything.
    assert.deepEqual(await SerialLog.tail(vmDir, 130), data.subarray(320));
    assert.deepEqual(await SerialLog.tail(vmDir, 50), data.subarray(400));
    assert.deepEqual(await SerialLog.tail(vmDir, 10), data.subarray(440));
    assert.deepEqual(await SerialLog.tail(vmDir, 10_000), data.subarray(100));
    assert.equal((await SerialLog.tail(vmDir, 0)).length, 0);
    await log.close();

    // A new writer (restarted core) continues the existing file size-wise.
    const log2 = new SerialLog(vmDir, { maxBytes: 100, keep: 3 });
    const more = randomBytes(60);
    log2.append(more);
    await log2.close();
    assert.equal((await stat(join(vmDir, 'logs', 'serial.log.1'))).size, 100);
    assert.deepEqual(await SerialLog.readAll(vmDir), Buffer.concat([data, more]).subarray(200));
  });

  it('keep: 0 truncates instead of rotating', async () => {
    const { vmDir } = freshVm();
    const log = new SerialLog(vmDir, { maxBytes: 10, keep: 0 });
    log.append(Buffer.from('0123456789abc'));
    await log.close();
    assert.deepEqual(await readdir(join(vmDir, 'logs')), ['serial.log']);
    assert.equal((await SerialLog.readAll(vmDir)).toString(), 'abc');
  });

  it('readAll / tail of a VM with no log are empty', async () => {
    const { vmDir } = freshVm();
    assert.equal((await SerialLog.readAll(vmDir)).length, 0);
    assert.equal((await SerialLog.tail(vmDir, 100)).length, 0);
  });

  it('rejects bad options with a typed error', () => {
    assert.throws(() => new SerialLog('/x', { maxBytes: 0 }), isHangar('invalid-input'));
    assert.throws(() => new SerialLog('/x', { keep: -1 }), isHangar('invalid-input'));
  });
});

describe('SerialConsole', () => {
  it('delivers output to the ring, the log and viewers; forwards input', async () => {
    const { vmDir, socketPath } = freshVm();
    const qemu = track(await FakeQemu.start(socketPath));
    const con = track(new SerialConsole({ socketPath, vmDir }));
    let connects = 0;
    con.on('connect', () => connects++);
    assert.equal(con.connected, false);
    await con.attach();
    assert.equal(con.connected, true);
    assert.equal(connects, 1);
    await con.attach(); // already connected: no-op
    assert.equal(connects, 1);

    const seen: Buffer[] = [];
    con.addViewer((c) => seen.push(c));
    const events: Buffer[] = [];
    con.on('data', (c) => events.push(c));

    const server = await qemu.waitClient();
    await writeAsync(server, 'SeaBIOS\r\nBooting...\r\n');
    await waitFor(() => con.scrollback().length === 21, 'output');
    assert.equal(con.scrollback().toString(), 'SeaBIOS\r\nBooting...\r\n');
    assert.equal(Buffer.concat(seen).toString(), 'SeaBIOS\r\nBooting...\r\n');
    assert.equal(Buffer.concat(events).toString(), 'SeaBIOS\r\nBooting...\r\n');
    await con.log.flush();
    assert.equal((await SerialLog.readAll(vmDir)).toString(), 'SeaBIOS\r\nBooting...\r\n');

    con.write('root\r');
    con.write(Buffer.from([0x03]));
    await waitFor(() => qemu.receivedText() === 'root\r\x03', 'input at the server');

    await con.close();
    await con.close(); // idempotent
    assert.equal(con.connected, false);
    await assert.rejects(con.attach(), isHangar('invalid-state'));
    await qemu.stop();
  });

  it('a viewer added mid-stream gets snapshot + live with no gap and no duplicate', async () => {
    const { vmDir, socketPath } = freshVm();
    const qemu = track(await FakeQemu.start(socketPath));
    const con = track(new SerialConsole({ socketPath, vmDir }));
    await con.attach();
    const server = await qemu.waitClient();

    const viewers: Buffer[][] = [];
    const addCollector = (): void => {
      const got: Buffer[] = [];
      viewers.push(got);
      con.addViewer((c) => got.push(c));
    };
    // Add viewers synchronously at arbitrary points of the dispatch (inside 'data' handlers and
    // inside another viewer's callback) and asynchronously from timers.
    let dataEvents = 0;
    con.on('data', () => {
      dataEvents++;
      if (dataEvents === 1 || dataEvents === 4 || dataEvents === 9) addCollector();
    });
    let nested = false;
    con.addViewer(() => {
      if (!nested && con.scrollback().length > 500) {
        nested = true;
        addCollector();
      }
    });
    const timers = [3, 15, 40].map((ms) => setTimeout(addCollector, ms));

    const lines: string[] = [];
    for (let i = 0; i < 300; i++) {
      const line = `[${String(i).padStart(4, '0')}] kernel: message ${i}\r\n`;
      lines.push(line);
      await writeAsync(server, line);
      if (i % 10 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    const full = lines.join('');
    await waitFor(() => con.scrollback().length === full.length, 'all output');
    timers.forEach(clearTimeout);
    // Late viewer (after the stream) sees exactly the history.
    addCollector();

    assert.ok(viewers.length >= 5, `viewers added: ${viewers.length}`);
    assert.ok(nested, 'nested viewer was added');
    for (const [i, got] of viewers.entries()) {
      assert.equal(Buffer.concat(got).toString(), full, `viewer ${i}`);
    }
    await con.close();
    await qemu.stop();
  });

  it('replay: false gets only live output; unsubscribe stops delivery', async () => {
    const { vmDir, socketPath } = freshVm();
    const qemu = track(await FakeQemu.start(socketPath));
    const con = track(new SerialConsole({ socketPath, vmDir }));
    await con.attach();
    const server = await qemu.waitClient();
    await writeAsync(server, 'old ');
    await waitFor(() => con.scrollback().length === 4, 'old');

    const live: Buffer[] = [];
    const off = con.addViewer((c) => live.push(c), { replay: false });
    const throwing = con.addViewer(() => {
      throw new Error('broken viewer');
    });
    await writeAsync(server, 'new ');
    await waitFor(() => Buffer.concat(live).toString() === 'new ', 'live');
    off();
    off();
    throwing();
    assert.equal(con.viewerCount, 0);
    await writeAsync(server, 'gone');
    await waitFor(() => con.scrollback().toString() === 'old new gone', 'after unsubscribe');
    assert.equal(Buffer.concat(live).toString(), 'new ');
    await con.close();
    await qemu.stop();
  });

  it('emits disconnect when QEMU goes away; keeps scrollback; write throws; re-attach continues', async () => {
    const { vmDir, socketPath } = freshVm();
    let qemu = track(await FakeQemu.start(socketPath));
    const con = track(new SerialConsole({ socketPath, vmDir }));
    const reasons: DisconnectReason[] = [];
    con.on('disconnect', (r) => reasons.push(r));
    await con.attach();
    await writeAsync(await qemu.waitClient(), 'first boot\r\n');
    await waitFor(() => con.scrollback().length > 0, 'first output');

    await qemu.stop();
    await waitFor(() => reasons.length === 1, 'disconnect');
    assert.deepEqual(reasons, ['remote']);
    assert.equal(con.connected, false);
    assert.equal(con.scrollback().toString(), 'first boot\r\n');
    assert.throws(() => con.write('x'), (e: unknown) => {
      assert.ok(e instanceof HangarError);
      assert.equal(e.code, 'invalid-state');
      assert.equal(e.message, 'the console is not connected (VM not running)');
      return true;
    });

    // Next start of the same VM: history continues in the same ring and log.
    qemu = track(await FakeQemu.start(socketPath));
    await con.attach();
    assert.equal(con.connected, true);
    await writeAsync(await qemu.waitClient(), 'second boot\r\n');
    await waitFor(() => con.scrollback().toString() === 'first boot\r\nsecond boot\r\n', 'second output');
    await con.detach();
    assert.deepEqual(reasons, ['remote', 'detached']);
    assert.equal((await SerialLog.readAll(vmDir)).toString(), 'first boot\r\nsecond boot\r\n');
    await con.detach(); // idempotent
    assert.equal(reasons.length, 2);
    await con.close();
    await qemu.stop();
  });

  it('a fresh console (restarted core) re-attaching with seedFromLog reproduces earlier output', async () => {
    const { vmDir, socketPath } = freshVm();
    const qemu = track(await FakeQemu.start(socketPath));
    const oldCore = track(new SerialConsole({ socketPath, vmDir, scrollbackBytes: 64 }));
    await oldCore.attach();
    const earlier = 'Linux version 6.x\r\n' + 'x'.repeat(100) + '\r\nlogin: ';
    await writeAsync(await qemu.waitClient(1), earlier);
    await waitFor(() => oldCore.scrollback().length === 64, 'earlier output');
    await oldCore.close(); // the core goes down; QEMU keeps running

    const newCore = track(new SerialConsole({ socketPath, vmDir, scrollbackBytes: 64 }));
    const early: Buffer[] = [];
    newCore.addViewer((c) => early.push(c)); // registered before attach: gets the seeded history
    await newCore.attach({ seedFromLog: true });
    assert.equal(newCore.scrollback().toString(), earlier.slice(-64));
    assert.equal(Buffer.concat(early).toString(), earlier.slice(-64));

    await writeAsync(await qemu.waitClient(2), 'root\r\n');
    const expected = (earlier + 'root\r\n').slice(-64);
    await waitFor(() => newCore.scrollback().toString() === expected, 'live after seeding');
    const replayed: Buffer[] = [];
    newCore.addViewer((c) => replayed.push(c));
    assert.equal(Buffer.concat(replayed).toString(), expected);
    assert.equal(Buffer.concat(early).toString(), earlier.slice(-64) + 'root\r\n');
    await newCore.close();
    // The log has everything, once.
    assert.equal((await SerialLog.readAll(vmDir)).toString(), earlier + 'root\r\n');
    await qemu.stop();
  });

  it('seedFromLog does not duplicate history in a console that already has it', async () => {
    const { vmDir, socketPath } = freshVm();
    let qemu = track(await FakeQemu.start(socketPath));
    const con = track(new SerialConsole({ socketPath, vmDir }));
    await con.attach({ seedFromLog: true }); // nothing to seed yet
    await writeAsync(await qemu.waitClient(), 'abc');
    await waitFor(() => con.scrollback().length === 3, 'abc');
    await qemu.stop();
    await waitFor(() => !con.connected, 'disconnect');
    qemu = track(await FakeQemu.start(socketPath));
    await con.attach({ seedFromLog: true });
    assert.equal(con.scrollback().toString(), 'abc');
    await con.close();
    await qemu.stop();
  });

  it('retries while the socket file appears', async () => {
    const { vmDir, socketPath } = freshVm();
    const con = track(new SerialConsole({ socketPath, vmDir }));
    let qemu: FakeQemu | null = null;
    const t = setTimeout(() => {
      void FakeQemu.start(socketPath).then((q) => {
        qemu = track(q);
      });
    }, 150);
    await con.attach({ connectTimeoutMs: 3000 });
    clearTimeout(t);
    assert.equal(con.connected, true);
    await con.close();
    await waitFor(() => qemu !== null, 'server');
    await (qemu as FakeQemu | null)?.stop();
  });

  it('attach times out with a clear typed error naming the socket', async () => {
    const { vmDir, socketPath } = freshVm();
    const con = track(new SerialConsole({ socketPath, vmDir }));
    const t0 = Date.now();
    await assert.rejects(con.attach({ connectTimeoutMs: 200 }), (e: unknown) => {
      assert.ok(e instanceof HangarError);
      assert.equal(e.code, 'timeout');
      assert.ok(e.message.includes(socketPath), e.message);
      assert.ok(e.hint && e.hint.length > 0);
      return true;
    });
    assert.ok(Date.now() - t0 >= 150);
    assert.equal(con.connected, false);
    await con.close();
  });

  it('detach cancels an attach in progress', async () => {
    const { vmDir, socketPath } = freshVm();
    const con = track(new SerialConsole({ socketPath, vmDir }));
    const p = con.attach({ connectTimeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 60));
    await con.detach();
    await assert.rejects(p, isHangar('invalid-state'));
    assert.equal(con.connected, false);

    // A new attach right after a cancelling detach is a fresh attempt, not the cancelled one.
    const p2 = con.attach({ connectTimeoutMs: 5000 });
    const p3 = con.attach();
    await con.detach();
    const p4 = con.attach({ connectTimeoutMs: 3000 });
    track(await FakeQemu.start(socketPath));
    await assert.rejects(p2, isHangar('invalid-state'));
    await assert.rejects(p3, isHangar('invalid-state'));
    await p4;
    assert.equal(con.connected, true);
    await con.close();
  });

  it('moves 1 MiB+ through to ring, log and viewers intact (throughput sanity)', async () => {
    const { vmDir, socketPath } = freshVm();
    const qemu = track(await FakeQemu.start(socketPath));
    const con = track(new SerialConsole({ socketPath, vmDir }));
    await con.attach();
    const server = await qemu.waitClient();
    const got: Buffer[] = [];
    let gotBytes = 0;
    con.addViewer((c) => {
      got.push(c);
      gotBytes += c.length;
    });
    const total = 3 * 1024 * 1024 + 12345;
    const data = randomBytes(total);
    const t0 = Date.now();
    for (let off = 0; off < total; off += 64 * 1024) await writeAsync(server, data.subarray(off, off + 64 * 1024));
    await waitFor(() => gotBytes === total, 'all bytes at the viewer', 30_000);
    await con.log.flush();
    const ms = Date.now() - t0;
    assert.deepEqual(Buffer.concat(got), data);
    assert.deepEqual(con.scrollback(), data.subarray(total - 1048576));
    assert.deepEqual(await SerialLog.readAll(vmDir), data);
    console.log(`# serial console throughput: ${(total / 1048576).toFixed(1)} MiB in ${ms} ms`);
    await con.close();
    await qemu.stop();
  });
});
