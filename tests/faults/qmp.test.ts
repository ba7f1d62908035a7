// QMP robustness (issue 20, case 10, transport part). Protocol faults real QEMU rarely produces
// on cue (replies split byte by byte, unknown fields, events between replies, garbage, early EOF)
// go through a scripted monitor on a real unix socket; the hang goes through a real QEMU stopped
// with SIGSTOP: `hangar list/show` answer at once and say "not responding", screenshot and
// send-key fail with a timeout naming the problem, and everything recovers after SIGCONT.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection } from 'node:net';
import { HangarError } from '../../core/common/errors.ts';
import { QmpClient } from '../../core/node/qmp/client.ts';
import { QmpTransport } from '../../core/node/qmp/transport.ts';
import type { QmpEvent } from '../../core/node/qmp/transport.ts';
import { FakeQmpServer, qmpLine } from '../helpers/fake-qmp-server.ts';
import type { ReceivedCommand } from '../helpers/fake-qmp-server.ts';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import { HangarHarness, sleep } from '../helpers/hangar.ts';
import { daemonSocketPath, runtimeDir } from '../../core/node/paths.ts';

const NO_REPLY = { noReply: true } as const;

function isCode(code: string, message?: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof HangarError, `expected HangarError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  };
}

async function elapsed<T>(p: Promise<T>): Promise<[T | Error, number]> {
  const t0 = Date.now();
  try {
    return [await p, Date.now() - t0];
  } catch (e) {
    return [e as Error, Date.now() - t0];
  }
}

describe('QMP protocol faults (scripted monitor)', () => {
  const servers: FakeQmpServer[] = [];
  const clients: QmpTransport[] = [];
  after(async () => {
    for (const c of clients) c.close();
    for (const s of servers) await s.stop();
  });

  async function open(opts: Parameters<typeof FakeQmpServer.start>[0] = {}, connect: Parameters<typeof QmpTransport.connect>[1] = {}) {
    const srv = await FakeQmpServer.start(opts);
    servers.push(srv);
    const qmp = await QmpTransport.connect(srv.path, { connectTimeoutMs: 5000, ...connect });
    clients.push(qmp);
    return { srv, qmp, conn: await srv.connection() };
  }

  test('replies split byte by byte with unknown fields, events interleaved, unknown message kinds: every reply matched, every event delivered', async () => {
    const srv = await FakeQmpServer.start({ splitWrites: true, replies: { a: NO_REPLY, b: NO_REPLY } });
    servers.push(srv);
    const socket = createConnection(srv.path);
    let chunks = 0;
    socket.on('data', () => { chunks++; });
    const qmp = new QmpClient(await QmpTransport.fromStream(socket, { connectTimeoutMs: 10_000 }));
    clients.push(qmp.transport);
    const conn = await srv.connection();
    const events: QmpEvent[] = [];
    qmp.on('event', (e) => events.push(e));
    const pa = qmp.execute('a');
    const pb = qmp.execute('b');
    const [a, b] = [await conn.waitForCommand('a'), await conn.waitForCommand('b')];
    // Out of order, with an event and a message kind from a future QEMU between them, and
    // fields this client does not know on every message.
    await conn.sendRaw(qmpLine({ event: 'STOP', data: { future: 1 }, timestamp: { seconds: 1, microseconds: 2 }, extra: true }));
    await conn.sendRaw(qmpLine({ return: { v: 'B', newField: [1, 2] }, id: b.raw.id, 'x-future': 'yes' }));
    await conn.sendRaw(qmpLine({ 'x-announcement': { what: 'something new' } }));
    await conn.sendRaw(qmpLine({ event: 'RESUME', timestamp: { seconds: 3, microseconds: 4 } }));
    await conn.sendRaw(qmpLine({ return: { v: 'A ü✓' }, id: a.raw.id }));
    assert.deepEqual(await pb, { v: 'B', newField: [1, 2] });
    assert.deepEqual(await pa, { v: 'A ü✓' });
    assert.deepEqual(events.map((e) => e.event), ['STOP', 'RESUME']);
    assert.deepEqual(events[0]!.data, { future: 1 });
    assert.ok(chunks > 200, `the monitor wrote byte-sized chunks (${chunks})`);
    // A reply for an id nobody asked for (late, or made up) is dropped, the next call still works.
    await conn.sendRaw(qmpLine({ return: {}, id: 'hangar-99999' }));
    srv.script('c', { return: 'C' });
    assert.equal(await qmp.execute('c'), 'C');
  });

  test('a garbage line: pending commands fail at once naming it, later calls fail fast', async () => {
    const { qmp, conn } = await open({ replies: { a: NO_REPLY } }, { commandTimeoutMs: 60_000 });
    const pa = elapsed(qmp.execute('a'));
    await conn.waitForCommand('a');
    await conn.sendRaw('\u0000\u00ffnot json at all {{{{\r\n');
    const [err, ms] = await pa;
    isCode('qmp-closed', /invalid JSON from QEMU: .*not json at all/)(err);
    assert.ok(ms < 5000, `failed at once, not after the 60 s timeout (${ms} ms)`);
    const [later, laterMs] = await elapsed(qmp.execute('query-status'));
    assert.equal(later, qmp.closeError);
    assert.ok(laterMs < 1000);
    // A JSON value that is not an object is refused the same way.
    const second = await open({ replies: { a: NO_REPLY } });
    const pb = elapsed(second.qmp.execute('a'));
    await second.conn.waitForCommand('a');
    await second.conn.sendRaw('[1,2,3]\r\n');
    isCode('qmp-closed', /expected a JSON object/)((await pb)[0]);
  });

  test('early EOF: every pending command fails at once with a clear error, later calls fail fast with the same one', async () => {
    const { qmp, conn } = await open({ replies: { a: NO_REPLY, b: NO_REPLY } }, { commandTimeoutMs: 60_000 });
    const closes: Array<HangarError | undefined> = [];
    qmp.on('close', (e) => closes.push(e));
    const pa = elapsed(qmp.execute('a'));
    const pb = elapsed(qmp.execute('b'));
    await conn.waitForCommand('b');
    // Half a reply, then the monitor goes away.
    await conn.sendRaw('{"return": {}, "id": "hang');
    await conn.end();
    for (const [err, ms] of [await pa, await pb]) {
      isCode('qmp-closed', /QEMU closed the QMP connection|QMP connection closed/)(err);
      assert.match((err as HangarError).hint ?? '', /QEMU exited or closed its monitor/);
      assert.ok(ms < 5000, `failed at once (${ms} ms)`);
    }
    assert.equal(closes.length, 1);
    const [later, laterMs] = await elapsed(qmp.execute('query-status', undefined, { timeoutMs: 0 }));
    assert.equal(later, qmp.closeError);
    assert.ok(laterMs < 1000);
  });

  test('every command has a timeout: none can wait forever, whatever the caller passes', async () => {
    const { qmp, conn } = await open({ replies: { hang: NO_REPLY } }, { commandTimeoutMs: 400 });
    for (const timeoutMs of [undefined, 0, -1, Infinity, Number.NaN]) {
      const [err, ms] = await elapsed(qmp.execute('hang', undefined, timeoutMs === undefined ? {} : { timeoutMs }));
      isCode('timeout', /QEMU is not responding: QMP hang got no reply within 400 ms/)(err);
      assert.ok(ms < 10_000, `timeoutMs=${String(timeoutMs)} still timed out (${ms} ms)`);
    }
    // The connection survives a timeout: a late reply is dropped, the next command is answered.
    const late = conn.received.find((c) => c.execute === 'hang') as ReceivedCommand;
    await conn.reply(late, { return: 'late' });
    const srv = servers[servers.length - 1]!;
    srv.script('ok', { return: 'fine' });
    assert.equal(await qmp.execute('ok'), 'fine');
    // A transport made with no timeout at all still gets the default one.
    const zero = await open({ replies: { hang: NO_REPLY } }, { commandTimeoutMs: 0 });
    const pending = zero.qmp.execute('hang');
    pending.catch(() => {});
    await zero.conn.waitForCommand('hang');
    zero.qmp.close();
    await assert.rejects(pending, isCode('qmp-closed'));
  });

  test('a monitor that goes silent is noticed without anyone asking (probe), and recovers', async () => {
    let answering = true;
    const health: boolean[] = [];
    const { qmp, conn } = await open({
      replies: { 'query-status': (cmd, c) => { if (answering) void c.reply(cmd, { return: { status: 'running', running: true } }); } },
    }, { probeIntervalMs: 200, commandTimeoutMs: 60_000 });
    qmp.on('health', (h) => health.push(h));
    await sleep(800);
    assert.ok(conn.received.some((c) => c.execute === 'query-status'), 'a silent monitor is probed');
    assert.equal(qmp.notResponding, false);
    answering = false;
    const deadline = Date.now() + 15_000;
    while (!qmp.notResponding && Date.now() < deadline) await sleep(200);
    assert.equal(qmp.notResponding, true, 'an unanswered probe marks the monitor as not responding');
    assert.ok(qmp.silentForMs() >= 5000);
    // QEMU answers again (a SIGCONT): the pending probe's reply clears it.
    answering = true;
    const probe = conn.received.filter((c) => c.execute === 'query-status').at(-1)!;
    await conn.reply(probe, { return: { status: 'running', running: true } });
    await sleep(100);
    assert.equal(qmp.notResponding, false);
    assert.deepEqual(health, [true, false], 'listeners are told when it goes silent and when it is back');
  });
});

describe('a real QEMU stopped with SIGSTOP', () => {
  let h: HangarHarness;
  let qemuPid = 0;

  before(async () => {
    const guest = await ensureTestGuest();
    h = new HangarHarness();
    const { id } = await h.json<{ id: string }>(['create', '--name', 'frozen', '--memory', '192', '--accel', 'tcg',
      '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE, '--video', 'vga']);
    await h.ok(['start', 'frozen'], { timeoutMs: 120_000 });
    await h.waitForSerial(id, READY_MARKER, 1, 180_000);
    qemuPid = (await h.json<{ pid: number }>(['show', 'frozen'])).pid;
    assert.ok(qemuPid > 0);
  });

  after(async () => {
    if (qemuPid) { try { process.kill(qemuPid, 'SIGCONT'); } catch { /* gone */ } }
    await h?.cleanup();
  });

  test('list and show answer at once and say "not responding"; screenshot and send-key time out naming it; all recovers after SIGCONT', async () => {
    // Works before: a screenshot of the live VM.
    const shot = await h.run(['screenshot', 'frozen', `${h.home}/before.png`]);
    assert.equal(shot.code, 0, shot.stderr);

    // A client watching events (as the UI does) is told, without asking.
    const watcher = createConnection({ path: daemonSocketPath(runtimeDir(h.env)) });
    watcher.on('error', () => {});
    let events = '';
    watcher.on('data', (d: Buffer) => { events += d.toString(); });
    watcher.write(JSON.stringify({ channel: 'rpc' }) + '\n');
    await sleep(500);
    events = '';
    process.kill(qemuPid, 'SIGSTOP');
    const told = Date.now() + 30_000;
    while (!/"m":"vmChanged".*"name":"frozen"/.test(events) && Date.now() < told) await sleep(200);
    watcher.destroy();
    assert.match(events, /"m":"vmChanged".*"name":"frozen"/, 'a vmChanged event when QEMU stopped answering');
    assert.match((await h.json<{ reason?: string }>(['show', 'frozen'])).reason ?? '', /not responding/);
    let reason = '';
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const t0 = Date.now();
      const list = await h.json<Array<{ name: string; state: string; reason?: string }>>(['list']);
      const listMs = Date.now() - t0;
      const t1 = Date.now();
      const show = await h.json<{ state: string; reason?: string }>(['show', 'frozen']);
      const showMs = Date.now() - t1;
      // Generous bounds (CLI start-up on a loaded 2-core machine), far below the 30 s QMP timeout.
      assert.ok(listMs < 8000 && showMs < 8000, `list ${listMs} ms, show ${showMs} ms: must not wait on the stopped QEMU`);
      assert.equal(list[0]?.state, 'running', 'a stopped QEMU is not mistaken for a crashed one');
      reason = show.reason ?? '';
      if (/not responding/.test(reason) && /not responding/.test(list[0]?.reason ?? '')) break;
      await sleep(1000);
    }
    assert.match(reason, /not responding: QEMU has not answered its monitor for \d+ s/);

    const ss = await h.run(['screenshot', 'frozen', `${h.home}/frozen.png`], { timeoutMs: 40_000 });
    assert.notEqual(ss.code, 0);
    assert.match(ss.stderr, /VM "frozen" is not responding: a screenshot timed out .*QMP screendump got no reply within 10000 ms/);
    const key = await h.run(['send-key', 'frozen', 'ctrl-alt-delete'], { timeoutMs: 40_000 });
    assert.notEqual(key.code, 0);
    assert.match(key.stderr, /VM "frozen" is not responding: sending ctrl-alt-delete timed out .*QMP send-key got no reply/);
    assert.match(key.stderr, /hangar destroy frozen/, 'the error says how to get out');

    process.kill(qemuPid, 'SIGCONT');
    const back = Date.now() + 30_000;
    let show = await h.json<{ state: string; reason?: string }>(['show', 'frozen']);
    while (/not responding/.test(show.reason ?? '') && Date.now() < back) {
      await sleep(500);
      show = await h.json<{ state: string; reason?: string }>(['show', 'frozen']);
    }
    assert.equal(show.state, 'running');
    assert.doesNotMatch(show.reason ?? '', /not responding/);
    const again = await h.run(['screenshot', 'frozen', `${h.home}/after.png`]);
    assert.equal(again.code, 0, again.stderr);
    await h.ok(['destroy', 'frozen']);
    assert.equal(await h.state('frozen'), 'stopped');
  });
});
