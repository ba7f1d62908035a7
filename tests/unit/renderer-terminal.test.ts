// The Terminal tab's protocol (renderer/src/console/terminal-channel.ts) in Node, against a fake
// terminal channel: the request carries user, size and connection; output is written and acked;
// input goes out as bytes only while live; resizes go out as controls (deduplicated, sent on ready
// when the size changed while opening); the end control and a failed open are reported in words;
// the WebSocket transport builds the WS_TERMINAL_PATH URL; the desktop transport says it has none.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ConsoleLink, TerminalRequest } from '../../core/common/transport.ts';
import { decodeConsoleControl, encodeConsoleControl } from '../../core/common/transport.ts';
import { TerminalChannel } from '../../renderer/src/console/terminal-channel.ts';
import type { TerminalStatus } from '../../renderer/src/console/terminal-channel.ts';
import { WebSocketTransport } from '../../renderer/src/transport/websocket-transport.ts';

class FakeLink implements ConsoleLink {
  sent: Array<string | Uint8Array> = [];
  closed = false;
  private msg: (m: string | Uint8Array) => void = () => {};
  private closeCb: (r: string) => void = () => {};
  send(m: string | Uint8Array): void { this.sent.push(m); }
  onMessage(cb: (m: string | Uint8Array) => void): void { this.msg = cb; }
  onClose(cb: (r: string) => void): void { this.closeCb = cb; }
  close(): void { this.closed = true; }
  deliver(m: string | Uint8Array): void { this.msg(m); }
  drop(reason: string): void { this.closeCb(reason); }
  controls(): unknown[] { return this.sent.filter((m): m is string => typeof m === 'string').map((m) => decodeConsoleControl(m)); }
  bytes(): string { return this.sent.filter((m): m is Uint8Array => typeof m !== 'string').map((b) => new TextDecoder().decode(b)).join(''); }
}

function setup() {
  const link = new FakeLink();
  const asked: Array<{ vm: string; req: TerminalRequest }> = [];
  const written: string[] = [];
  const notices: string[] = [];
  const statuses: Array<[TerminalStatus, string | undefined]> = [];
  const ch = new TerminalChannel({
    vm: 'web',
    transport: { openTerminal: (vm, req) => { asked.push({ vm, req }); return Promise.resolve(link); } },
    sink: { write: (d, done) => { written.push(typeof d === 'string' ? d : new TextDecoder().decode(d)); done?.(); }, notice: (t) => notices.push(t) },
    onStatus: (s, d) => statuses.push([s, d]),
  });
  return { link, asked, written, notices, statuses, ch };
}

describe('the guest terminal channel', () => {
  it('opens with user, size and connection; writes output; sends input and resizes while live', async () => {
    const { link, asked, written, statuses, ch } = setup();
    ch.resize(100, 30);
    ch.input('early'); // not connected: dropped
    await ch.connect({ user: 'root', connection: 'second' });
    assert.deepEqual(asked, [{ vm: 'web', req: { user: 'root', connection: 'second', cols: 100, rows: 30 } }]);
    assert.equal(ch.status, 'connecting');
    ch.resize(120, 40); // while opening: sent on ready
    link.deliver(encodeConsoleControl({ type: 'ready', vm: 'web' }));
    assert.equal(ch.status, 'live');
    assert.deepEqual(link.controls(), [{ type: 'resize', cols: 120, rows: 40 }]);
    link.deliver(new TextEncoder().encode('root@guest# '));
    assert.deepEqual(written, ['root@guest# ']);
    ch.input('echo $((6*7))\r');
    assert.equal(link.bytes(), 'echo $((6*7))\r');
    ch.resize(120, 40); // unchanged: nothing sent
    ch.resize(80.7, 0); // not a size
    ch.resize(90, 20);
    assert.deepEqual(link.controls().slice(1), [{ type: 'resize', cols: 90, rows: 20 }]);
    assert.deepEqual(statuses.map((s) => s[0]), ['connecting', 'live']);
  });

  it('acknowledges processed output', async () => {
    const { link, ch } = setup();
    await ch.connect({ user: 'root' });
    link.deliver(encodeConsoleControl({ type: 'ready', vm: 'web' }));
    link.deliver(new Uint8Array(20_000));
    assert.ok(link.controls().some((c) => (c as { type: string }).type === 'ack'), 'a 20 kB chunk is acked at once (batch 16 KiB)');
  });

  it('reports the end with the exit code, an error control and a failed open in words', async () => {
    let t = setup();
    await t.ch.connect({ user: 'root' });
    t.link.deliver(encodeConsoleControl({ type: 'ready', vm: 'web' }));
    t.link.deliver(encodeConsoleControl({ type: 'end', reason: 'session-ended', exitCode: 3 }));
    t.link.drop('the core closed the connection');
    assert.equal(t.ch.status, 'ended');
    assert.deepEqual(t.notices, ['Session ended (exit code 3).']);
    t.ch.input('x');
    assert.equal(t.link.bytes(), '');

    t = setup();
    await t.ch.connect({ user: 'root' });
    t.link.deliver(encodeConsoleControl({ type: 'error', error: { code: 'invalid-state', message: 'VM "web" is not running', hint: 'start it first' } }));
    assert.equal(t.ch.status, 'failed');
    assert.deepEqual(t.statuses.at(-1), ['failed', 'VM "web" is not running (start it first)']);

    const statuses: TerminalStatus[] = [];
    const ch = new TerminalChannel({
      vm: 'web', transport: { openTerminal: () => Promise.reject(new Error('not available in the desktop app yet')) },
      sink: { write: () => {}, notice: () => {} }, onStatus: (s) => statuses.push(s),
    });
    await ch.connect({ user: 'root' });
    assert.deepEqual(statuses, ['connecting', 'failed']);
  });

  it('a new Connect closes the session still open', async () => {
    const { link, ch } = setup();
    await ch.connect({ user: 'root' });
    link.deliver(encodeConsoleControl({ type: 'ready', vm: 'web' }));
    ch.close();
    assert.equal(link.closed, true);
    assert.equal(ch.status, 'ended');
  });

  it('the WebSocket transport opens WS_TERMINAL_PATH with vm, user, cols, rows and connection', async () => {
    const urls: string[] = [];
    class FakeWs {
      binaryType = '';
      constructor(url: string) { urls.push(url); }
      addEventListener(ev: string, cb: () => void): void { if (ev === 'open') setTimeout(cb, 0); }
    }
    const t = new WebSocketTransport({ protocol: 'http:', host: '127.0.0.1:9', search: '?token=tok' }, FakeWs as unknown as new (url: string) => WebSocket);
    await t.openTerminal('web', { user: 'root', cols: 100, rows: 30, connection: 'second' });
    await t.openTerminal('web', { connection: 'local' });
    assert.deepEqual(urls, [
      'ws://127.0.0.1:9/api/terminal?token=tok&vm=web&user=root&cols=100&rows=30&connection=second',
      'ws://127.0.0.1:9/api/terminal?token=tok&vm=web',
    ]);
  });
});
