import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { CoreHostSupervisor } from '../../electron/core-supervisor.ts';
import type { SupervisorDeps } from '../../electron/core-supervisor.ts';
import { parseHostMessage, serveParentPort } from '../../electron/core-host-serve.ts';
import { consoleLinkFromPort, rpcLinkFromPort, toBytes } from '../../electron/port-link.ts';
import type { ConnectionEndpoint } from '../../core/node/rpc/connection-endpoint.ts';
import type { ConsoleLink, RpcLink } from '../../core/common/transport.ts';
import type { MessagePortLike } from '../../electron/electron-api.ts';
import { FakeChannel, FakeUtilityProcess, tick } from '../../electron/testing/fake-electron.ts';

function supervisor(over: Partial<SupervisorDeps> = {}) {
  const children: FakeUtilityProcess[] = [];
  const timers: { fn: () => void; ms: number; cancelled: boolean }[] = [];
  let restarted = 0;
  let now = 0;
  const s = new CoreHostSupervisor({
    fork: () => { const c = new FakeUtilityProcess(); children.push(c); return c; },
    createChannel: () => new FakeChannel(),
    onRestarted: () => { restarted++; },
    log: () => {},
    schedule: (fn, ms) => { const t = { fn, ms, cancelled: false }; timers.push(t); return { cancel: () => { t.cancelled = true; } }; },
    now: () => now,
    backoffMs: [100, 1000, 5000],
    stableMs: 60_000,
    ...over,
  });
  return {
    s, children, timers,
    get restarted() { return restarted; },
    advance(ms: number) { now += ms; },
    runTimer() { const t = timers.find((x) => !x.cancelled); assert.ok(t, 'a timer is scheduled'); t.cancelled = true; t.fn(); return t.ms; },
  };
}

describe('electron core host supervisor: port broker', () => {
  it('a request makes a channel: port1 goes to the utility process with the request, port2 back to the caller', () => {
    const h = supervisor();
    h.s.start();
    const child = h.children[0]!;
    child.spawned();
    const port = h.s.open({ kind: 'console', vm: 'debian', replay: true });
    const ch = FakeChannel.made.at(-1)!;
    assert.equal(port, ch.port2);
    assert.equal(child.received.length, 1);
    assert.deepEqual(child.received[0]!.message, { kind: 'console', vm: 'debian', replay: true });
    assert.deepEqual(child.received[0]!.transfer, [ch.port1]);
    h.s.open({ kind: 'rpc' });
    assert.deepEqual(child.received[1]!.message, { kind: 'rpc' });
    // Only a display request's own fields cross to the core host.
    h.s.open({ kind: 'display', vm: 'win11', extra: 1 } as never);
    assert.deepEqual(child.received[2]!.message, { kind: 'display', vm: 'win11' });
    // A request naming a connection carries it to the core host, for every kind.
    h.s.open({ kind: 'rpc', connection: 'lab' });
    h.s.open({ kind: 'console', vm: 'web', replay: false, connection: 'qemu:///system' });
    h.s.open({ kind: 'display', vm: 'web', connection: 'lab' });
    assert.deepEqual(child.received.slice(3).map((r) => r.message), [
      { kind: 'rpc', connection: 'lab' },
      { kind: 'console', vm: 'web', replay: false, connection: 'qemu:///system' },
      { kind: 'display', vm: 'web', connection: 'lab' },
    ]);
    // Terminals: a guest shell with its user and size, a login with no VM; nothing else crosses.
    h.s.open({ kind: 'terminal', vm: 'web', user: 'root', cols: 120, rows: 40, extra: 1 } as never);
    h.s.open({ kind: 'terminal', vm: '', login: true, connection: 'lab' });
    assert.deepEqual(child.received.slice(6).map((r) => r.message), [
      { kind: 'terminal', vm: 'web', user: 'root', cols: 120, rows: 40 },
      { kind: 'terminal', vm: '', login: true, connection: 'lab' },
    ]);
  });

  it('keeps requests made while the core host starts and hands them over once it is up', () => {
    const h = supervisor();
    h.s.start();
    h.s.open({ kind: 'rpc' });
    assert.equal(h.children[0]!.received.length, 0);
    h.children[0]!.spawned();
    assert.equal(h.children[0]!.received.length, 1);
  });
});

describe('electron core host supervisor: restarts', () => {
  it('restarts after an unexpected exit with growing backoff and announces the restart', () => {
    const h = supervisor();
    h.s.start();
    h.children[0]!.spawned();
    h.advance(1000);
    h.children[0]!.exit(1);
    assert.equal(h.s.running, false);
    assert.equal(h.runTimer(), 100);
    assert.equal(h.children.length, 2);
    assert.equal(h.restarted, 0, 'announced only once it is up');
    h.children[1]!.spawned();
    assert.equal(h.restarted, 1);
    assert.equal(h.s.running, true);
    // Dies again quickly: longer delay.
    h.children[1]!.exit(9);
    assert.equal(h.runTimer(), 1000);
    h.children[2]!.spawned();
    assert.equal(h.restarted, 2);
    // Ran long enough: the backoff starts over.
    h.advance(120_000);
    h.children[2]!.exit(1);
    assert.equal(h.runTimer(), 100);
  });

  it('does not restart after stop(); asks the host to stop and kills it if it hangs', async () => {
    const h = supervisor({ stopTimeoutMs: 5 });
    h.s.start();
    const child = h.children[0]!;
    child.spawned();
    const stopping = h.s.stop();
    assert.deepEqual(child.received.at(-1)!.message, { kind: 'stop' });
    h.runTimer(); // the stop timeout fires
    await stopping;
    assert.equal(child.killed, true);
    child.exit(0);
    assert.equal(h.timers.filter((t) => !t.cancelled).length, 0, 'no restart scheduled');
    assert.equal(h.children.length, 1);
    // Requests after stop get a closed channel.
    h.s.open({ kind: 'rpc' });
    assert.equal(FakeChannel.made.at(-1)!.port1.closed, true);
  });

  it('stop() resolves as soon as the host exits cleanly', async () => {
    const h = supervisor();
    h.s.start();
    const child = h.children[0]!;
    child.spawned();
    const stopping = h.s.stop();
    child.exit(0);
    await stopping;
    assert.equal(child.killed, false);
  });
});

describe('electron port links', () => {
  it('an rpc link passes strings both ways, drops non-strings, and reports close once', async () => {
    const ch = new FakeChannel();
    const link = rpcLinkFromPort(ch.port1);
    assert.equal(ch.port1.started, true);
    const got: string[] = [];
    ch.port2.postMessage('early'); // before anyone listens: kept
    await tick();
    link.onMessage((m) => got.push(m));
    ch.port2.postMessage({ not: 'a string' });
    ch.port2.postMessage('{"m":1}');
    await tick();
    assert.deepEqual(got, ['early', '{"m":1}']);
    link.send('out');
    assert.deepEqual(ch.port1.sent, ['out']);
    const reasons: string[] = [];
    link.onClose((r) => reasons.push(r));
    ch.port2.close();
    await tick();
    link.close();
    assert.equal(reasons.length, 1);
    assert.throws(() => link.send('late'));
  });

  it('a console link carries bytes as standalone Uint8Arrays and text as control', async () => {
    const ch = new FakeChannel();
    const link: ConsoleLink = consoleLinkFromPort(ch.port1);
    const got: (string | Uint8Array)[] = [];
    link.onMessage((m) => got.push(m));
    ch.port2.postMessage(new Uint8Array([1, 2]).buffer);
    ch.port2.postMessage('{"type":"ack","bytes":2}');
    ch.port2.postMessage(42);
    await tick();
    assert.deepEqual(got, [new Uint8Array([1, 2]), '{"type":"ack","bytes":2}']);
    const pooled = Buffer.from('hello world').subarray(6);
    link.send(pooled);
    const sent = ch.port1.sent[0] as Uint8Array;
    assert.ok(!Buffer.isBuffer(sent));
    assert.equal(sent.buffer.byteLength, 5, 'only the bytes, not the pool');
    assert.equal(Buffer.from(sent).toString(), 'world');
    assert.equal(toBytes('text'), null);
  });
});

describe('electron core host: serving ports from main', () => {
  class FakeParent extends EventEmitter {
    readonly reports: unknown[] = [];
    postMessage(m: unknown): void { this.reports.push(m); }
    deliver(data: unknown, ports: MessagePortLike[]): void { this.emit('message', { data, ports }); }
  }
  function endpoint() {
    const calls: { kind: string; link: RpcLink | ConsoleLink; vm?: string; replay?: boolean; connection?: string; user?: string; cols?: number; rows?: number; login?: boolean }[] = [];
    const ep: ConnectionEndpoint = {
      serveRpc: (link, connection) => { calls.push({ kind: 'rpc', link, ...(connection !== undefined ? { connection } : {}) }); },
      serveConsole: (link, vm, opts) => { calls.push({ kind: 'console', link, vm, replay: opts.replay, ...(opts.connection !== undefined ? { connection: opts.connection } : {}) }); },
      serveDisplay: (link, vm, connection) => { calls.push({ kind: 'display', link, vm, ...(connection !== undefined ? { connection } : {}) }); },
      serveTerminal: (link, vm, req) => { calls.push({ kind: 'terminal', link, vm, ...req }); },
    };
    return { ep, calls };
  }

  it('serves rpc and console requests on the transferred port', async () => {
    const parent = new FakeParent();
    const { ep, calls } = endpoint();
    serveParentPort(parent, ep, { onStop: () => {}, log: () => {} });
    const a = new FakeChannel();
    parent.deliver({ kind: 'rpc' }, [a.port1]);
    const b = new FakeChannel();
    parent.deliver({ kind: 'console', vm: 'debian', replay: false }, [b.port1]);
    const d = new FakeChannel();
    parent.deliver({ kind: 'display', vm: 'win11' }, [d.port1]);
    assert.deepEqual(calls.map((c) => [c.kind, c.vm, c.replay]), [['rpc', undefined, undefined], ['console', 'debian', false], ['display', 'win11', undefined]]);
    // The link really is the port: what the core sends arrives at the window's end.
    const got: unknown[] = [];
    a.port2.on('message', (e: { data: unknown }) => got.push(e.data));
    calls[0]!.link.send('{"hello":1}');
    await tick();
    assert.deepEqual(got, ['{"hello":1}']);
  });

  it('serves each channel on the connection the request names (absent = local)', () => {
    const parent = new FakeParent();
    const { ep, calls } = endpoint();
    serveParentPort(parent, ep, { onStop: () => {}, log: () => {} });
    parent.deliver({ kind: 'rpc', connection: 'lab' }, [new FakeChannel().port1]);
    parent.deliver({ kind: 'console', vm: 'web', replay: true, connection: 'qemu:///system' }, [new FakeChannel().port1]);
    parent.deliver({ kind: 'display', vm: 'web', connection: 'lab' }, [new FakeChannel().port1]);
    parent.deliver({ kind: 'rpc' }, [new FakeChannel().port1]);
    assert.deepEqual(calls.map((c) => [c.kind, c.vm, c.connection]), [
      ['rpc', undefined, 'lab'], ['console', 'web', 'qemu:///system'], ['display', 'web', 'lab'], ['rpc', undefined, undefined],
    ]);
    assert.deepEqual(parseHostMessage({ kind: 'rpc', connection: 'x'.repeat(2048) }), { kind: 'rpc', connection: 'x'.repeat(2048) });
    for (const bad of [{ kind: 'rpc', connection: 'x'.repeat(2049) }, { kind: 'rpc', connection: '' }, { kind: 'rpc', connection: 7 },
      { kind: 'console', vm: 'a', replay: true, connection: null }, { kind: 'display', vm: 'a', connection: ['lab'] }]) {
      assert.equal(parseHostMessage(bad), null, JSON.stringify(bad).slice(0, 80));
    }
    const refused = new FakeChannel();
    parent.deliver({ kind: 'rpc', connection: 'x'.repeat(2049) }, [refused.port1]);
    assert.equal(refused.port1.closed, true);
    assert.equal(calls.length, 4);
  });

  it('closes ports of malformed requests and handles stop', () => {
    const parent = new FakeParent();
    const { ep, calls } = endpoint();
    let stops = 0;
    serveParentPort(parent, ep, { onStop: () => { stops++; }, log: () => {} });
    const bad = new FakeChannel();
    parent.deliver({ kind: 'exec', cmd: 'sh' }, [bad.port1]);
    const none = new FakeChannel();
    parent.deliver({ kind: 'console', vm: 'x'.repeat(201), replay: true }, [none.port1]);
    parent.deliver({ kind: 'rpc' }, []);
    const two = new FakeChannel();
    parent.deliver({ kind: 'rpc' }, [two.port1, two.port2]);
    assert.equal(calls.length, 0);
    assert.equal(bad.port1.closed && none.port1.closed && two.port1.closed, true);
    parent.deliver({ kind: 'stop' }, []);
    assert.equal(stops, 1);
    assert.equal(parseHostMessage({ kind: 'console', vm: 'a', replay: 'yes' }), null);
    assert.equal(parseHostMessage({ kind: 'display', vm: '' }), null);
    assert.equal(parseHostMessage({ kind: 'display', vm: 7 }), null);
  });

  it('serves terminal requests: a guest shell, or a login to the connection\'s host', () => {
    const parent = new FakeParent();
    const { ep, calls } = endpoint();
    serveParentPort(parent, ep, { onStop: () => {}, log: () => {} });
    parent.deliver({ kind: 'terminal', vm: 'web', user: 'root', cols: 100, rows: 30, connection: 'lab' }, [new FakeChannel().port1]);
    parent.deliver({ kind: 'terminal', vm: '', login: true, connection: 'lab' }, [new FakeChannel().port1]);
    assert.deepEqual(calls.map(({ link: _l, ...c }) => c), [
      { kind: 'terminal', vm: 'web', user: 'root', cols: 100, rows: 30, connection: 'lab' },
      { kind: 'terminal', vm: '', login: true, connection: 'lab' },
    ]);
    for (const bad of [{ kind: 'terminal', vm: '' }, { kind: 'terminal', vm: 'w', cols: 80 }, { kind: 'terminal', vm: 'w', cols: 0, rows: 5 },
      { kind: 'terminal', vm: 'w', user: '' }, { kind: 'terminal', vm: 'w', cols: 1001, rows: 5 }, { kind: 'terminal', vm: 'x'.repeat(201), login: true }]) {
      assert.equal(parseHostMessage(bad), null, JSON.stringify(bad));
    }
  });
});

