// The renderer's two transports against fakes: browser-mode WebSocket URLs, framing and open
// failures; Electron MessagePort hand-over through window messages, end-of-console and restarts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import { encodeConsoleControl } from '../../core/common/transport.ts';
import type { HangarBridge, PortRequest } from '../../renderer/src/transport/bridge.ts';
import { ElectronTransport } from '../../renderer/src/transport/electron-transport.ts';
import { WebSocketTransport } from '../../renderer/src/transport/websocket-transport.ts';
import { settle } from '../../renderer/src/testing/fake-core.ts';

class FakeWebSocket extends EventTarget {
  static all: FakeWebSocket[] = [];
  readyState = 0;
  binaryType = 'blob';
  sent: unknown[] = [];
  constructor(readonly url: string) {
    super();
    FakeWebSocket.all.push(this);
  }
  send(d: unknown): void { this.sent.push(d); }
  close(): void {
    this.readyState = 3;
    this.dispatchEvent(Object.assign(new Event('close'), { code: 1000, reason: '', wasClean: true }));
  }
  // Test side:
  accept(): void { this.readyState = 1; this.dispatchEvent(new Event('open')); }
  refuse(): void { this.dispatchEvent(new Event('error')); this.readyState = 3; this.dispatchEvent(Object.assign(new Event('close'), { code: 1006, reason: '', wasClean: false })); }
  receive(data: unknown): void { this.dispatchEvent(Object.assign(new Event('message'), { data })); }
}

const loc = { protocol: 'http:', host: '127.0.0.1:4567', search: '?token=s3cr%2Bt&x=1' };

describe('WebSocketTransport', () => {
  it('opens the RPC and console URLs with the token from the page URL', async () => {
    FakeWebSocket.all = [];
    const t = new WebSocketTransport(loc, FakeWebSocket as unknown as typeof WebSocket);
    assert.equal(t.kind, 'browser');
    const rpcP = t.openRpc();
    assert.equal(FakeWebSocket.all[0]!.url, 'ws://127.0.0.1:4567/api/rpc?token=s3cr%2Bt');
    FakeWebSocket.all[0]!.accept();
    const rpc = await rpcP;
    const got: string[] = [];
    rpc.onMessage((m) => got.push(m));
    FakeWebSocket.all[0]!.receive('{"a":1}');
    rpc.send('{"b":2}');
    assert.deepEqual(got, ['{"a":1}']);
    assert.deepEqual(FakeWebSocket.all[0]!.sent, ['{"b":2}']);

    const conP = t.openConsole('my vm/ä', { replay: true });
    const ws = FakeWebSocket.all[1]!;
    assert.equal(ws.url, 'ws://127.0.0.1:4567/api/console?token=s3cr%2Bt&vm=my%20vm%2F%C3%A4&replay=1');
    assert.equal(ws.binaryType, 'arraybuffer');
    ws.accept();
    const con = await conP;
    const msgs: (string | Uint8Array)[] = [];
    con.onMessage((m) => msgs.push(m));
    ws.receive(new Uint8Array([104, 105]).buffer);
    ws.receive(encodeConsoleControl({ type: 'ready', vm: 'x' }));
    assert.ok(msgs[0] instanceof Uint8Array);
    assert.deepEqual([...(msgs[0] as Uint8Array)], [104, 105]);
    assert.equal(msgs[1], '{"type":"ready","vm":"x"}');
    const reasons: string[] = [];
    con.onClose((r) => reasons.push(r));
    ws.close();
    assert.equal(reasons.length, 1);

    void t.openConsole('a', { replay: false });
    assert.match(FakeWebSocket.all[2]!.url, /replay=0$/);
  });

  it('opens the display channel at /api/display with the VM and token; binary both ways', async () => {
    FakeWebSocket.all = [];
    const t = new WebSocketTransport(loc, FakeWebSocket as unknown as typeof WebSocket);
    const p = t.openDisplay('my vm');
    const ws = FakeWebSocket.all[0]!;
    assert.equal(ws.url, 'ws://127.0.0.1:4567/api/display?token=s3cr%2Bt&vm=my%20vm');
    assert.equal(ws.binaryType, 'arraybuffer');
    ws.accept();
    const link = await p;
    const msgs: (string | Uint8Array)[] = [];
    link.onMessage((m) => msgs.push(m));
    ws.receive(encodeConsoleControl({ type: 'ready', vm: 'my vm' }));
    ws.receive(new Uint8Array([82, 70, 66]).buffer);
    link.send(new Uint8Array([1, 2]));
    link.send('{"type":"ack","bytes":3}');
    assert.equal(msgs[0], '{"type":"ready","vm":"my vm"}');
    assert.deepEqual([...(msgs[1] as Uint8Array)], [82, 70, 66]);
    assert.deepEqual([...(ws.sent[0] as Uint8Array)], [1, 2]);
    assert.equal(ws.sent[1], '{"type":"ack","bytes":3}');
    const noToken = new WebSocketTransport({ ...loc, search: '' }, FakeWebSocket as unknown as typeof WebSocket);
    await assert.rejects(noToken.openDisplay('x'), /no access token/);
  });

  it('names the connection on every channel (?connection=), and leaves it out for local', () => {
    FakeWebSocket.all = [];
    const t = new WebSocketTransport(loc, FakeWebSocket as unknown as typeof WebSocket);
    void t.openRpc('qemu:///system');
    void t.openConsole('web', { replay: true, connection: 'lab' });
    void t.openDisplay('web', 'lab');
    void t.openRpc('local');
    void t.openRpc();
    assert.deepEqual(FakeWebSocket.all.map((w) => w.url), [
      'ws://127.0.0.1:4567/api/rpc?token=s3cr%2Bt&connection=qemu%3A%2F%2F%2Fsystem',
      'ws://127.0.0.1:4567/api/console?token=s3cr%2Bt&vm=web&replay=1&connection=lab',
      'ws://127.0.0.1:4567/api/display?token=s3cr%2Bt&vm=web&connection=lab',
      'ws://127.0.0.1:4567/api/rpc?token=s3cr%2Bt',
      'ws://127.0.0.1:4567/api/rpc?token=s3cr%2Bt',
    ]);
  });

  it('rejects readably when the socket cannot open', async () => {
    FakeWebSocket.all = [];
    const t = new WebSocketTransport({ ...loc, protocol: 'https:' }, FakeWebSocket as unknown as typeof WebSocket);
    const p = t.openRpc();
    assert.match(FakeWebSocket.all[0]!.url, /^wss:/);
    FakeWebSocket.all[0]!.refuse();
    await assert.rejects(p, /could not reach the Hangar core/);
    const noToken = new WebSocketTransport({ ...loc, search: '' }, FakeWebSocket as unknown as typeof WebSocket);
    await assert.rejects(noToken.openRpc(), /no access token/);
  });
});

class FakeWindow {
  private listeners: ((ev: MessageEvent) => void)[] = [];
  location = { origin: 'app://hangar' };
  addEventListener(_t: 'message', l: (ev: MessageEvent) => void): void { this.listeners.push(l); }
  post(data: unknown, ports: unknown[], origin = 'app://hangar'): void {
    for (const l of this.listeners) l({ data, ports, origin } as unknown as MessageEvent);
  }
}

function fakeBridge(win: FakeWindow): HangarBridge & { requests: PortRequest[]; ends: MessagePort[]; extra: MessagePort[]; closeAll(): void; restart(): void } {
  let n = 0;
  const restartCbs: (() => void)[] = [];
  const b = {
    requests: [] as PortRequest[],
    ends: [] as MessagePort[],
    extra: [] as MessagePort[],
    closeAll() { for (const p of [...b.ends, ...b.extra]) p.close(); },
    requestPort(r: PortRequest): string {
      const id = `req${++n}`;
      b.requests.push(r);
      const ch = new MessageChannel();
      b.ends.push(ch.port2 as unknown as MessagePort);
      // Someone else's message first: must be ignored.
      const stray = new MessageChannel();
      b.extra.push(stray.port1 as unknown as MessagePort, stray.port2 as unknown as MessagePort, ch.port1 as unknown as MessagePort);
      setTimeout(() => win.post({ hangarPort: 'other' }, [stray.port1]), 0);
      setTimeout(() => win.post({ hangarPort: id }, [ch.port1], 'https://evil.example'), 0);
      setTimeout(() => win.post({ hangarPort: id }, [ch.port1]), 1);
      return id;
    },
    appInfo: async () => ({ version: '0.1.0', electron: '41' }),
    onCoreRestarted(cb: () => void) { restartCbs.push(cb); return () => {}; },
    openExternal() {},
    restart() { for (const cb of restartCbs) cb(); },
  };
  return b;
}

describe('ElectronTransport', () => {
  it('gets ports through window messages; rpc strings, console bytes and end', async () => {
    const win = new FakeWindow();
    const bridge = fakeBridge(win);
    const t = new ElectronTransport(bridge, win);
    assert.equal(t.kind, 'electron');
    const rpc = await t.openRpc();
    assert.deepEqual(bridge.requests[0], { kind: 'rpc' });
    const core = bridge.ends[0]!;
    const got: string[] = [];
    rpc.onMessage((m) => got.push(m));
    const fromUi: unknown[] = [];
    core.onmessage = (e) => fromUi.push(e.data);
    core.postMessage('hello');
    rpc.send('world');
    await settle();
    assert.deepEqual(got, ['hello']);
    assert.deepEqual(fromUi, ['world']);

    const con = await t.openConsole('vm1', { replay: true });
    assert.deepEqual(bridge.requests[1], { kind: 'console', vm: 'vm1', replay: true });
    const cEnd = bridge.ends[1]!;
    const msgs: (string | Uint8Array)[] = [];
    const closes: string[] = [];
    con.onMessage((m) => msgs.push(m));
    con.onClose((r) => closes.push(r));
    cEnd.postMessage(new Uint8Array([1, 2, 3]));
    cEnd.postMessage(encodeConsoleControl({ type: 'end', reason: 'vm-stopped' }));
    await settle();
    assert.deepEqual([...(msgs[0] as Uint8Array)], [1, 2, 3]);
    assert.equal(msgs[1], '{"type":"end","reason":"vm-stopped"}');
    assert.equal(closes.length, 1, 'an end control closes the link');
    rpc.close();
    bridge.closeAll();
  });

  it('asks main for a display port; RFB bytes both ways, an end control closes it', async () => {
    const win = new FakeWindow();
    const bridge = fakeBridge(win);
    const t = new ElectronTransport(bridge, win);
    const link = await t.openDisplay('vm1');
    assert.deepEqual(bridge.requests[0], { kind: 'display', vm: 'vm1' });
    const end = bridge.ends[0]!;
    const msgs: (string | Uint8Array)[] = [];
    const fromUi: unknown[] = [];
    const closes: string[] = [];
    end.onmessage = (e) => fromUi.push(e.data);
    link.onMessage((m) => msgs.push(m));
    link.onClose((r) => closes.push(r));
    link.send(new Uint8Array([7, 8]));
    end.postMessage(new Uint8Array([1, 2, 3]).buffer);
    end.postMessage(encodeConsoleControl({ type: 'end', reason: 'too-slow' }));
    await settle();
    assert.deepEqual([...(fromUi[0] as Uint8Array)], [7, 8]);
    assert.deepEqual([...(msgs[0] as Uint8Array)], [1, 2, 3]);
    assert.equal(closes.length, 1);
    bridge.closeAll();
  });

  it('asks main for ports on the named connection (none for local)', async () => {
    const win = new FakeWindow();
    const bridge = fakeBridge(win);
    const t = new ElectronTransport(bridge, win);
    await t.openRpc('lab');
    await t.openConsole('web', { replay: false, connection: 'qemu:///system' });
    await t.openDisplay('web', 'lab');
    await t.openRpc('local');
    assert.deepEqual(bridge.requests, [
      { kind: 'rpc', connection: 'lab' },
      { kind: 'console', vm: 'web', replay: false, connection: 'qemu:///system' },
      { kind: 'display', vm: 'web', connection: 'lab' },
      { kind: 'rpc' },
    ]);
    bridge.closeAll();
  });

  it('asks main for terminal ports: a guest shell with its size, or a login', async () => {
    const win = new FakeWindow();
    const bridge = fakeBridge(win);
    const t = new ElectronTransport(bridge, win);
    await t.openTerminal('web', { user: 'root', cols: 100, rows: 30, connection: 'lab' });
    await t.openTerminal('', { login: true, connection: 'lab' });
    assert.deepEqual(bridge.requests, [
      { kind: 'terminal', vm: 'web', user: 'root', cols: 100, rows: 30, connection: 'lab' },
      { kind: 'terminal', vm: '', login: true, connection: 'lab' },
    ]);
    bridge.closeAll();
  });

  it('closes every open link when the core host restarts', async () => {
    const win = new FakeWindow();
    const bridge = fakeBridge(win);
    const t = new ElectronTransport(bridge, win);
    const rpc = await t.openRpc();
    const closes: string[] = [];
    rpc.onClose((r) => closes.push(r));
    bridge.restart();
    await settle();
    assert.deepEqual(closes, ['the Hangar core restarted']);
    bridge.closeAll();
  });
});
