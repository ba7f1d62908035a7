import assert from 'node:assert/strict';
import { createConnection } from 'node:net';
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { HangarError } from '../../core/common/errors.ts';
import { QmpClient } from '../../core/node/qmp/client.ts';
import { QmpTransport } from '../../core/node/qmp/transport.ts';
import type { QmpEvent } from '../../core/node/qmp/transport.ts';
import { FAKE_GREETING, FakeQmpServer, qmpLine } from '../helpers/fake-qmp-server.ts';
import type { FakeQmpOptions, ReceivedCommand } from '../helpers/fake-qmp-server.ts';

async function setup(t: TestContext, opts: FakeQmpOptions = {}) {
  const srv = await FakeQmpServer.start(opts);
  t.after(() => srv.stop());
  const qmp = await QmpTransport.connect(srv.path, { connectTimeoutMs: 2000, commandTimeoutMs: 2000 });
  t.after(() => qmp.close());
  return { srv, qmp, conn: await srv.connection() };
}

function isCode(code: string, message?: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof HangarError, `expected HangarError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  };
}

function replyTo(cmd: ReceivedCommand, value: unknown): string {
  return qmpLine({ return: value, id: cmd.raw.id });
}

const NO_REPLY = { noReply: true } as const;

describe('QmpTransport', () => {
  it('reads the greeting and negotiates capabilities before resolving', async (t) => {
    const srv = await FakeQmpServer.start({ replies: { qmp_capabilities: () => undefined } });
    t.after(() => srv.stop());
    let settled = false;
    const connecting = QmpTransport.connect(srv.path).finally(() => { settled = true; });
    const conn = await srv.connection();
    const caps = await conn.waitForCommand('qmp_capabilities');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(settled, false, 'must wait for the qmp_capabilities reply');
    await conn.reply(caps, { return: {} });
    const qmp = await connecting;
    t.after(() => qmp.close());

    assert.deepEqual(qmp.greeting, FAKE_GREETING);
    assert.equal(caps.arguments, undefined);
    srv.script('query-status', { return: { status: 'running', running: true } });
    assert.deepEqual(await qmp.execute('query-status'), { status: 'running', running: true });
    const ids = conn.received.map((c) => c.raw.id);
    assert.equal(new Set(ids).size, ids.length, 'ids are unique');
  });

  it('reassembles messages written one byte per chunk, including split UTF-8', async (t) => {
    const srv = await FakeQmpServer.start({ splitWrites: true, replies: { 'query-name': { return: { name: 'vm-ü✓' } } } });
    t.after(() => srv.stop());
    const socket = createConnection(srv.path);
    let chunks = 0;
    socket.on('data', () => { chunks++; });
    const qmp = await QmpTransport.fromStream(socket, { connectTimeoutMs: 5000 });
    t.after(() => qmp.close());

    assert.deepEqual(await qmp.execute('query-name'), { name: 'vm-ü✓' });
    assert.equal(qmp.greeting.version.qemu.major, 7);
    assert.ok(chunks > 100, `expected byte-sized chunks, got ${chunks}`);
  });

  it('handles two replies in a single chunk', async (t) => {
    const { qmp, conn } = await setup(t, { replies: { a: NO_REPLY, b: NO_REPLY } });
    const pa = qmp.execute('a');
    const pb = qmp.execute('b');
    const [a, b] = [await conn.waitForCommand('a'), await conn.waitForCommand('b')];
    await conn.sendRaw(replyTo(a, 'A') + replyTo(b, 'B'));
    assert.deepEqual([await pa, await pb], ['A', 'B']);
  });

  it('matches out-of-order replies by id', async (t) => {
    const { qmp, conn } = await setup(t, { replies: { a: NO_REPLY, b: NO_REPLY } });
    const pa = qmp.execute('a');
    const pb = qmp.execute('b', { x: 1 });
    const [a, b] = [await conn.waitForCommand('a'), await conn.waitForCommand('b')];
    assert.deepEqual(b.arguments, { x: 1 });
    await conn.sendRaw(replyTo(b, 'B'));
    assert.equal(await pb, 'B');
    await conn.sendRaw(replyTo(a, 'A'));
    assert.equal(await pa, 'A');
  });

  it('delivers events that arrive before and between replies', async (t) => {
    const { qmp, conn } = await setup(t, { replies: { a: NO_REPLY, b: NO_REPLY } });
    const events: QmpEvent[] = [];
    qmp.on('event', (e) => events.push(e));
    const pa = qmp.execute('a');
    const pb = qmp.execute('b');
    const [a, b] = [await conn.waitForCommand('a'), await conn.waitForCommand('b')];
    const ev = (event: string, data?: object) =>
      qmpLine({ event, ...(data ? { data } : {}), timestamp: { seconds: 5, microseconds: 6 } });
    await conn.sendRaw(ev('STOP') + replyTo(a, 1) + ev('RESET', { guest: true, reason: 'guest-reset' }));
    await conn.sendRaw(ev('RESUME') + replyTo(b, 2));
    assert.deepEqual([await pa, await pb], [1, 2]);
    assert.deepEqual(events.map((e) => e.event), ['STOP', 'RESET', 'RESUME']);
    assert.deepEqual(events[0], { event: 'STOP', data: {}, timestamp: { seconds: 5, microseconds: 6 } });
    assert.deepEqual(events[1]?.data, { guest: true, reason: 'guest-reset' });
  });

  it('ignores unknown fields and unknown message kinds', async (t) => {
    const { qmp, conn } = await setup(t, {
      greeting: { ...FAKE_GREETING, future: { x: 1 } },
      replies: { a: NO_REPLY },
    });
    const events: QmpEvent[] = [];
    qmp.on('event', (e) => events.push(e));
    const pa = qmp.execute('a');
    const a = await conn.waitForCommand('a');
    await conn.sendRaw(
      qmpLine({ 'something-new': { hello: 1 } }) +
      qmpLine({ event: 'POWERDOWN', timestamp: { seconds: 1, microseconds: 2 }, extra: true }) +
      qmpLine({ return: { ok: true }, id: a.raw.id, extra: [1, 2] }),
    );
    assert.deepEqual(await pa, { ok: true });
    assert.deepEqual(events.map((e) => e.event), ['POWERDOWN']);
    assert.equal(qmp.isClosed, false);
  });

  it('turns a QMP error into HangarError qmp-error with desc and class', async (t) => {
    const { qmp } = await setup(t, {
      replies: { device_del: { error: { class: 'DeviceNotFound', desc: "Device 'nope' not found" } } },
    });
    await assert.rejects(qmp.execute('device_del', { id: 'nope' }), (e) => {
      isCode('qmp-error')(e);
      assert.equal((e as HangarError).message, "QMP device_del failed: Device 'nope' not found");
      assert.deepEqual((e as HangarError).details, { class: 'DeviceNotFound' });
      return true;
    });
    await assert.rejects(qmp.execute('no-such-command'), isCode('qmp-error', /has not been found/));
    assert.equal(qmp.isClosed, false, 'a command error is not fatal');
  });

  it('times out a command, drops its late reply, and keeps working', async (t) => {
    const { qmp, conn } = await setup(t, { replies: { slow: NO_REPLY, fast: { return: 'fast' } } });
    await assert.rejects(qmp.execute('slow', undefined, { timeoutMs: 50 }), isCode('timeout', /slow/));
    await conn.reply(await conn.waitForCommand('slow'), { return: 'late' });
    assert.equal(await qmp.execute('fast'), 'fast');
    assert.equal(qmp.isClosed, false);
  });

  it('rejects (not hangs) when the server hangs up before the greeting', async (t) => {
    const srv = await FakeQmpServer.start({ greeting: false, onConnection: (c) => void c.end() });
    t.after(() => srv.stop());
    await assert.rejects(QmpTransport.connect(srv.path, { connectTimeoutMs: 5000 }), isCode('qmp-closed'));
  });

  it('times out when no greeting arrives', async (t) => {
    const srv = await FakeQmpServer.start({ greeting: false });
    t.after(() => srv.stop());
    await assert.rejects(QmpTransport.connect(srv.path, { connectTimeoutMs: 100 }), isCode('timeout', /100 ms/));
  });

  it('rejects with qmp-closed when the socket does not exist', async () => {
    await assert.rejects(QmpTransport.connect('/nonexistent/hangar/qmp.sock'), isCode('qmp-closed', /ENOENT/));
  });

  it('rejects every pending command with qmp-closed on EOF and reports the close', async (t) => {
    const { qmp, conn } = await setup(t, { replies: { a: NO_REPLY, b: NO_REPLY } });
    const closes: Array<HangarError | undefined> = [];
    qmp.on('close', (e) => closes.push(e));
    const pa = qmp.execute('a');
    const pb = qmp.execute('b');
    await conn.waitForCommand('b');
    await conn.end();
    await assert.rejects(pa, isCode('qmp-closed'));
    await assert.rejects(pb, isCode('qmp-closed'));
    assert.equal(closes.length, 1);
    assert.equal(closes[0], qmp.closeError);
  });

  it('fails fast with the kept error after EOF', async (t) => {
    const { qmp, conn } = await setup(t);
    const closed = new Promise((r) => qmp.once('close', r));
    await conn.end();
    await closed;
    const started = Date.now();
    let err: unknown;
    await assert.rejects(qmp.execute('query-status', undefined, { timeoutMs: 0 }), (e) => { err = e; return true; });
    assert.ok(Date.now() - started < 100);
    assert.equal(err, qmp.closeError);
    isCode('qmp-closed')(err);
  });

  it('treats an invalid JSON line as fatal', async (t) => {
    const { qmp, conn } = await setup(t, { replies: { a: NO_REPLY } });
    const closes: Array<HangarError | undefined> = [];
    qmp.on('close', (e) => closes.push(e));
    const pa = qmp.execute('a');
    await conn.waitForCommand('a');
    await conn.sendRaw('{"return": {}, oops\r\n');
    await assert.rejects(pa, isCode('qmp-closed', /invalid JSON/));
    assert.equal(qmp.isClosed, true);
    assert.ok(closes[0] instanceof HangarError);
    await assert.rejects(qmp.execute('b'), isCode('qmp-closed', /invalid JSON/));
  });

  it('close() is idempotent and rejects pending and later commands', async (t) => {
    const { qmp, conn } = await setup(t, { replies: { a: NO_REPLY } });
    const closes: Array<HangarError | undefined> = [];
    qmp.on('close', (e) => closes.push(e));
    const pa = qmp.execute('a');
    await conn.waitForCommand('a');
    qmp.close();
    qmp.close();
    assert.deepEqual(closes, [undefined], 'a requested close is clean and reported once');
    await assert.rejects(pa, isCode('qmp-closed'));
    await assert.rejects(qmp.execute('b'), isCode('qmp-closed'));
  });
});

describe('QmpClient over the fake server', () => {
  async function client(t: TestContext, opts: FakeQmpOptions = {}) {
    const { srv, qmp, conn } = await setup(t, opts);
    return { srv, conn, c: new QmpClient(qmp) };
  }

  it('quit() succeeds when QEMU hangs up without replying', async (t) => {
    const { c } = await client(t, { replies: { quit: (_cmd, conn) => void conn.end() } });
    await c.quit();
    assert.equal(c.transport.isClosed, true);
  });

  it('quit() waits for the hang-up after the reply', async (t) => {
    const { c } = await client(t, {
      replies: {
        quit: async (cmd, conn) => {
          await conn.reply(cmd, { return: {} });
          setTimeout(() => void conn.end(), 30);
        },
      },
    });
    await c.quit();
    assert.equal(c.transport.isClosed, true);
  });

  it('sends typed commands with QEMU argument names', async (t) => {
    const { c, conn } = await client(t, {
      replies: {
        'human-monitor-command': { return: 'info ok\r\n' },
        'blockdev-del': { return: {} },
        'qom-get': { return: 64 },
      },
    });
    assert.equal(await c.humanMonitorCommand('info status'), 'info ok\r\n');
    await c.blockdevDel('disk0');
    assert.equal(await c.qomGet<number>('/machine', 'ram-size'), 64);
    assert.deepEqual(conn.received.slice(1).map((r) => [r.execute, r.arguments]), [
      ['human-monitor-command', { 'command-line': 'info status' }],
      ['blockdev-del', { 'node-name': 'disk0' }],
      ['qom-get', { path: '/machine', property: 'ram-size' }],
    ]);
  });

  it('onEvent filters by name and unsubscribes; waitForEvent honours the predicate', async (t) => {
    const { c, conn } = await client(t);
    const seen: unknown[] = [];
    const off = c.onEvent('DEVICE_DELETED', (d) => seen.push(d.path));
    const waiting = c.waitForEvent('SHUTDOWN', { timeoutMs: 2000, predicate: (d) => d.guest });
    await conn.sendEvent('SHUTDOWN', { guest: false, reason: 'host-qmp-quit' });
    await conn.sendEvent('DEVICE_DELETED', { device: 'nic0', path: '/machine/peripheral/nic0' });
    await conn.sendEvent('SHUTDOWN', { guest: true, reason: 'guest-shutdown' });
    assert.deepEqual(await waiting, { guest: true, reason: 'guest-shutdown' });
    off();
    await conn.sendEvent('DEVICE_DELETED', { path: '/machine/peripheral/nic1' });
    await c.execute('qmp_capabilities'); // a round trip, so the event above has been processed
    assert.deepEqual(seen, ['/machine/peripheral/nic0']);
  });

  it('waitForEvent rejects on timeout and on close', async (t) => {
    const { c } = await client(t);
    await assert.rejects(c.waitForEvent('STOP', { timeoutMs: 30 }), isCode('timeout', /STOP/));
    const waiting = c.waitForEvent('STOP', { timeoutMs: 2000 });
    c.close();
    await assert.rejects(waiting, isCode('qmp-closed'));
  });
});
