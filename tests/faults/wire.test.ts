// Bad input on the core's wires (issue 20: already-found #1 and case 12): whatever a client sends
// on the unix socket (hello line, RPC lines, over-long lines) or on browser mode's HTTP and
// WebSocket (no or wrong token, foreign Origin or Host, oversized, malformed, unknown methods)
// is refused on that connection, with a reply naming the problem and one log line, while the
// core process and a good client connected at the same time carry on. Real daemon, real
// `hangar serve`, no mocks.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { createConnection } from 'node:net';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { alive, HangarHarness, sleep } from '../helpers/hangar.ts';
import type { ServeProcess } from '../helpers/hangar.ts';
import { openWs, wsCoreClient, wsUrl } from '../helpers/ws-client.ts';
import { daemonSocketPath, runtimeDir } from '../../core/node/paths.ts';
import { WS_RPC_PATH } from '../../core/common/transport.ts';

const UNHANDLED = /UNHANDLED REJECTION|unhandled|Unhandled/;


/** A raw connection to the core socket that collects reply lines. */
class RawConn {
  readonly sock: Socket;
  private buf = '';
  readonly lines: string[] = [];
  closed = false;
  private waiters: Array<() => void> = [];

  private constructor(sock: Socket) {
    this.sock = sock;
    sock.on('data', (d: Buffer) => {
      this.buf += d.toString('utf8');
      let nl;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        this.lines.push(this.buf.slice(0, nl));
        this.buf = this.buf.slice(nl + 1);
      }
      this.wake();
    });
    sock.on('error', () => {});
    sock.on('close', () => { this.closed = true; this.wake(); });
  }

  static open(path: string): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const s = createConnection({ path });
      s.once('connect', () => resolve(new RawConn(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** The next reply line parsed as JSON (fails when none arrives in time). */
  async next(what: string, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length === 0) {
      if (this.closed) throw new Error(`${what}: connection closed without a reply`);
      if (Date.now() > deadline) throw new Error(`${what}: no reply within ${timeoutMs} ms`);
      await new Promise<void>((r) => { this.waiters.push(r); setTimeout(r, 200); });
    }
    return JSON.parse(this.lines.shift()!) as Record<string, unknown>;
  }

  async waitClosed(what: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error(`${what}: connection still open after ${timeoutMs} ms`);
      await new Promise<void>((r) => { this.waiters.push(r); setTimeout(r, 200); });
    }
  }

  write(s: string | Buffer): void {
    this.sock.write(s);
  }

  close(): void {
    this.sock.destroy();
  }
}

/** A birpc request line, as the CLI sends it. */
function rpcLine(id: string, m: string, a: unknown[] = []): string {
  return JSON.stringify({ t: 'q', i: id, m, a }) + '\n';
}

/** The good client's check: list answers on the connection that has been open all along. */
async function goodListWorks(good: RawConn, n: number): Promise<void> {
  const id = `good-${n}`;
  good.write(rpcLine(id, 'list'));
  const r = await good.next(`good client's list #${n}`);
  assert.equal(r.i, id);
  assert.ok(Array.isArray(r.r), `list answered on the good connection: ${JSON.stringify(r)}`);
}

describe('core unix socket: malformed input is refused on its connection only', () => {
  let h: HangarHarness;
  let sockPath: string;
  let logPath: string;
  let pid: number;
  let good: RawConn;
  let checks = 0;

  before(async () => {
    h = new HangarHarness();
    await h.ok(['list']); // starts the daemon
    pid = (await h.json<{ pid: number }>(['daemon', 'status'])).pid;
    const runtime = runtimeDir(h.env);
    sockPath = daemonSocketPath(runtime);
    logPath = join(runtime, 'daemon.log');
    good = await RawConn.open(sockPath);
    good.write(JSON.stringify({ channel: 'rpc' }) + '\n');
    await goodListWorks(good, checks++);
  });

  after(async () => {
    good?.close();
    await h?.cleanup();
  });

  test('bad hello lines (null, {{{{, wrong types, unknown channel, over-long): error reply, connection closed, core alive', async () => {
    const hellos: Array<[string, RegExp]> = [
      ['null', /expected a JSON object, got null/],
      ['{{{{', /not JSON/],
      ['123', /expected a JSON object, got a number/],
      ['"rpc"', /expected a JSON object, got a string/],
      ['[]', /expected a JSON object, got an array/],
      ['[{"channel":"rpc"}]', /got an array/],
      ['{}', /unknown channel/],
      ['{"channel":"shell"}', /unknown channel "shell"/],
      ['{"channel":42}', /unknown channel \(a number\)/],
      ['{"channel":"console","vm":123}', /"vm" must be a VM name or id.*got a number/],
      ['{"channel":"console"}', /"vm" must be/],
      ['{"channel":"console","vm":"x","replay":"yes"}', /"replay" must be true or false/],
      ['{"channel":"display","vm":{"a":1}}', /"vm" must be.*got an object/],
      ['{"channel":"console","vm":"no-such-vm"}', /no-such-vm/],
    ];
    for (const [line, want] of hellos) {
      const c = await RawConn.open(sockPath);
      c.write(line + '\n');
      const r = await c.next(`hello ${line}`);
      const err = r.error as { code: string; message: string } | undefined;
      assert.ok(err, `hello ${line}: an error reply, got ${JSON.stringify(r)}`);
      assert.match(err.message, want, `hello ${line}`);
      await c.waitClosed(`hello ${line}`);
      assert.ok(alive(pid), `core alive after hello ${line}`);
    }
    // A first line over the hello limit (64 KiB) without a newline.
    const c = await RawConn.open(sockPath);
    c.write(Buffer.alloc(100 * 1024, 0x61));
    const r = await c.next('over-long hello');
    assert.match((r.error as { message: string }).message, /bad hello line: first line too long/);
    await c.waitClosed('over-long hello');
    assert.ok(alive(pid));
    await goodListWorks(good, checks++);
  });

  test('bad RPC lines after a valid hello: error reply naming the problem, the same connection keeps working', async () => {
    const c = await RawConn.open(sockPath);
    c.write(JSON.stringify({ channel: 'rpc' }) + '\n');
    const bad: Array<[string, RegExp, string | undefined]> = [
      ['null', /malformed RPC message: expected a JSON object, got null/, undefined],
      ['{{{{', /malformed RPC message: not JSON: "\{\{\{\{"/, undefined],
      ['42', /got a number/, undefined],
      ['"list"', /got a string/, undefined],
      ['[{"t":"q","i":"a1","m":"list","a":[]}]', /got an array/, undefined],
      ['{"t":"q","i":"b1","m":"formatHostDisk","a":[]}', /unknown core method "formatHostDisk"/, 'b1'],
      ['{"t":"q","i":"b2","m":"__proto__","a":[]}', /unknown core method "__proto__"/, 'b2'],
      ['{"t":"q","i":"b3","m":"constructor","a":[]}', /unknown core method "constructor"/, 'b3'],
      ['{"t":"q","i":"b4","m":"get","a":5}', /"a" \(the arguments\) must be an array/, 'b4'],
      ['{"t":"q","i":"b5","m":["list"],"a":[]}', /"m" \(the method\) must be a string/, 'b5'],
      ['{"t":"s","i":"b6","r":1}', /"t" must be "q"/, 'b6'],
      ['{"t":"q","i":7,"m":"list","a":[]}', /"i" \(the request id\) must be a string/, undefined],
      ['{"t":"q","i":"b8","m":"get","a":[123]}', /bad request to get \(argument 0\)/, 'b8'],
      ['{"t":"q","i":"b9","m":"start","a":[{"name":"x"}]}', /bad request to start \(argument 0\)/, 'b9'],
      ['{"t":"q","i":"b10","m":"get","a":["no-such-vm"]}', /no-such-vm/, 'b10'],
    ];
    for (const [line, want, id] of bad) {
      c.write(line + '\n');
      const r = await c.next(`rpc ${line}`);
      assert.equal(r.t, 's', `rpc ${line}: a birpc response`);
      assert.equal(r.i, id, `rpc ${line}: answered with the request's id`);
      const e = r.e as { code: string; message: string };
      assert.ok(e && typeof e.message === 'string', `rpc ${line}: an error payload, got ${JSON.stringify(r)}`);
      assert.match(e.message, want, `rpc ${line}`);
      assert.ok(alive(pid), `core alive after rpc ${line}`);
    }
    // Events (no id) with bad shapes get a reply too, and the connection still answers.
    c.write('{"t":"q","m":"nope"}\n');
    assert.match(((await c.next('bad event')).e as { message: string }).message, /unknown core method "nope"/);
    c.write(rpcLine('after-bad', 'list'));
    const r = await c.next('list after the bad lines');
    assert.equal(r.i, 'after-bad');
    assert.ok(Array.isArray(r.r));
    c.close();
    await goodListWorks(good, checks++);
  });

  test('a client looping on bad messages: every one answered, the log does not fill up', async () => {
    const before = readFileSync(logPath, 'utf8').split('\n').length;
    const c = await RawConn.open(sockPath);
    c.write(JSON.stringify({ channel: 'rpc' }) + '\n');
    c.write('{"flood":1}\n'.repeat(2000));
    for (let i = 0; i < 2000; i++) assert.match(((await c.next(`flood #${i}`)).e as { message: string }).message, /"t" must be "q"/);
    c.write(rpcLine('after-flood', 'list'));
    assert.equal((await c.next('list after the flood')).i, 'after-flood');
    c.close();
    const log = readFileSync(logPath, 'utf8');
    const added = log.split('\n').length - before;
    assert.ok(added <= 12, `at most 11 log lines for 2000 refusals on one connection, got ${added}`);
    assert.match(log, /further refusals on this connection are not logged/);
    await goodListWorks(good, checks++);
  });

  test('an RPC line over the 16 MiB limit: error reply, that connection closed, core alive', async () => {
    const c = await RawConn.open(sockPath);
    c.write(JSON.stringify({ channel: 'rpc' }) + '\n');
    const chunk = Buffer.alloc(1024 * 1024, 0x7b);
    for (let i = 0; i < 17 && !c.closed; i++) {
      c.write(chunk);
      await sleep(20);
    }
    const r = await c.next('over-long rpc line', 20_000);
    assert.match((r.e as { message: string }).message, /RPC message longer than 16777216 bytes/);
    await c.waitClosed('over-long rpc line');
    assert.ok(alive(pid));
    await goodListWorks(good, checks++);
  });

  test('browser mode relaying to this daemon: malformed WebSocket messages refused by the relay, nothing reaches the core unchecked', async () => {
    const serve = await h.serve();
    try {
      assert.match(serve.output(), /relayed to the running daemon/);
      for (const [msg, want] of [['null', /expected a JSON object, got null/], ['{{{{', /not JSON/], ['{"t":"q","i":"r1","m":"nope","a":[]}', /unknown core method "nope"/]] as const) {
        const r = await wsReply(serve, msg);
        assert.match((r.e as { message: string }).message, want, msg);
      }
      const viaRelay = await wsCoreClient(serve);
      try {
        assert.deepEqual(await viaRelay.api.list(), []);
      } finally {
        viaRelay.close();
      }
      assert.doesNotMatch(serve.output(), UNHANDLED);
    } finally {
      await serve.stop();
    }
    assert.ok(alive(pid));
    await goodListWorks(good, checks++);
  });

  test('the core never fell back on its last-resort handler, logged each refusal, and the CLI still works', async () => {
    assert.ok(alive(pid));
    assert.equal((await h.json<{ pid: number }>(['daemon', 'status'])).pid, pid, 'the same core process throughout');
    assert.deepEqual(await h.json(['list']), []);
    const log = readFileSync(logPath, 'utf8');
    assert.doesNotMatch(log, UNHANDLED, `daemon.log:\n${log}`);
    assert.match(log, /refused a connection on the core socket: bad hello line: expected a JSON object, got null/);
    assert.match(log, /refused an RPC message: malformed RPC message: not JSON/);
    assert.match(log, /refused an RPC message: RPC message longer than/);
    assert.match(log, /refused an RPC request: bad request to get \(argument 0\)/);
  });
});

/** A plain HTTP request with chosen headers; resolves with status and body. */
function httpGet(port: number, path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, setHost: !('Host' in headers) }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Sends text (or a binary frame) on a fresh RPC WebSocket and returns the first reply, parsed. */
async function wsReply(serve: ServeProcess, message: string | Buffer): Promise<Record<string, unknown>> {
  let got: (v: Record<string, unknown>) => void = () => {};
  const reply = new Promise<Record<string, unknown>>((r) => { got = r; });
  const ws = await openWs(wsUrl(serve, WS_RPC_PATH), {}, (d) => got(JSON.parse(d.toString()) as Record<string, unknown>));
  try {
    ws.send(message, { binary: Buffer.isBuffer(message) });
    return await Promise.race([reply, sleep(10_000).then(() => { throw new Error(`no reply to ${String(message).slice(0, 40)}`); })]);
  } finally {
    ws.close();
  }
}

describe('browser mode (case 12): refused, logged, no crash, a good client keeps working', () => {
  let h: HangarHarness;
  let serve: ServeProcess;
  let goodClient: Awaited<ReturnType<typeof wsCoreClient>>;
  let servePid: number;

  before(async () => {
    h = new HangarHarness();
    serve = await h.serve();
    assert.match(serve.output(), /core in this process/);
    servePid = (await h.json<{ pid: number }>(['daemon', 'status'])).pid;
    goodClient = await wsCoreClient(serve);
    assert.deepEqual(await goodClient.api.list(), []);
  });

  after(async () => {
    goodClient?.close();
    await serve?.stop();
    await h?.cleanup();
  });

  test('HTTP: no token 401, wrong token 401, foreign Host 421, foreign Origin 403', async () => {
    const host = `127.0.0.1:${serve.port}`;
    const noToken = await httpGet(serve.port, '/', { Host: host });
    assert.equal(noToken.status, 401);
    assert.match(noToken.body, /missing or wrong token/);
    const wrong = await httpGet(serve.port, `/?token=${'x'.repeat(serve.token.length)}`, { Host: host });
    assert.equal(wrong.status, 401);
    const rebinding = await httpGet(serve.port, `/?token=${serve.token}`, { Host: `evil.example:${serve.port}` });
    assert.equal(rebinding.status, 421);
    assert.match(rebinding.body, /Host header "evil.example/);
    const foreignOrigin = await httpGet(serve.port, `/?token=${serve.token}`, { Host: host, Origin: 'http://evil.example' });
    assert.equal(foreignOrigin.status, 403);
    assert.equal((await httpGet(serve.port, `/?token=${serve.token}`, { Host: host })).status < 500, true);
    assert.deepEqual(await goodClient.api.list(), []);
  });

  test('WebSocket upgrade: no token, wrong token, foreign Origin, no Origin, foreign Host, unknown path: each refused', async () => {
    const base = new URL(WS_RPC_PATH, serve.origin.replace(/^http/, 'ws'));
    const cases: Array<[string, string, Parameters<typeof openWs>[1], number]> = [
      ['no token', base.href, {}, 401],
      ['wrong token', `${base.href}?token=${'A'.repeat(serve.token.length)}`, {}, 401],
      ['foreign Origin', wsUrl(serve, WS_RPC_PATH), { origin: 'http://evil.example' }, 403],
      ['Origin of another port', wsUrl(serve, WS_RPC_PATH), { origin: `http://127.0.0.1:${serve.port + 1}` }, 403],
      ['no Origin', wsUrl(serve, WS_RPC_PATH), { origin: null }, 403],
      ['foreign Host (DNS rebinding)', wsUrl(serve, WS_RPC_PATH), { host: `evil.example:${serve.port}`, origin: `http://evil.example:${serve.port}` }, 421],
      ['unknown path', wsUrl(serve, '/api/shell'), {}, 404],
    ];
    for (const [what, url, headers, status] of cases) {
      await assert.rejects(openWs(url, headers), (e: Error & { status?: number }) => e.status === status, `${what}: HTTP ${status}`);
    }
    assert.deepEqual(await goodClient.api.list(), []);
  });

  test('malformed RPC messages over the WebSocket (null, {{{{, binary, unknown method, wrong types): error replies, no crash', async () => {
    const cases: Array<[string | Buffer, RegExp]> = [
      ['null', /malformed RPC message: expected a JSON object, got null/],
      ['{{{{', /malformed RPC message: not JSON/],
      ['[]', /got an array/],
      [Buffer.from([0xff, 0x00, 0x7b]), /not JSON/],
      ['{"t":"q","i":"w1","m":"rmRf","a":[]}', /unknown core method "rmRf"/],
      ['{"t":"q","i":"w2","m":"get","a":[{"x":1}]}', /bad request to get \(argument 0\)/],
      ['{"t":"q","i":"w3","m":"list","a":"all"}', /must be an array/],
    ];
    for (const [msg, want] of cases) {
      const r = await wsReply(serve, msg);
      assert.match((r.e as { message: string }).message, want, String(msg));
      assert.ok(alive(servePid), `serve alive after ${String(msg)}`);
    }
    assert.deepEqual(await goodClient.api.list(), []);
  });

  test('an oversized WebSocket message: closed with 1009, serve alive', async () => {
    const ws = await openWs(wsUrl(serve, WS_RPC_PATH));
    const code = await new Promise<number>((resolve) => {
      ws.on('close', (c) => resolve(c));
      ws.on('error', () => {});
      ws.send(Buffer.alloc(17 * 1024 * 1024, 0x20).toString());
    });
    assert.equal(code, 1009);
    assert.ok(alive(servePid));
    assert.deepEqual(await goodClient.api.list(), []);
  });

  test('each refusal was logged, the last-resort handler never ran, the good client and the CLI still work', async () => {
    await sleep(300);
    const out = serve.output();
    assert.doesNotMatch(out, UNHANDLED, out);
    assert.match(out, /refused HTTP GET \/ from 127\.0\.0\.1: 401 refused: missing or wrong token/);
    assert.match(out, /refused HTTP GET \/ from .*: 421 refused: Host header "evil\.example/);
    assert.match(out, /refused HTTP GET \/ from .*: 403 refused: Origin "http:\/\/evil\.example"/);
    assert.match(out, /refused WebSocket upgrade \/api\/rpc from .*: 403 refused: Origin ""/);
    assert.match(out, /refused WebSocket upgrade \/api\/rpc from .*: 421/);
    assert.match(out, /refused WebSocket upgrade \/api\/shell from .*: 404 no WebSocket at \/api\/shell/);
    assert.match(out, /refused an RPC message: malformed RPC message: unknown core method "rmRf"/);
    assert.match(out, /refused a WebSocket message on \/api\/rpc .*WS_ERR_UNSUPPORTED_MESSAGE_LENGTH|Max payload size exceeded/);
    assert.match(out, /refused an RPC request: bad request to get \(argument 0\)/);
    const afterUrl = out.slice(out.indexOf('Open: ') + serve.url.length + 6);
    assert.ok(!afterUrl.includes(serve.token), 'the token is never logged');
    assert.ok(alive(servePid));
    assert.deepEqual(await goodClient.api.list(), []);
    assert.deepEqual(await h.json(['list']), []);
  });
});
