// A Node-side browser-mode client: the same WebSocket protocol the renderer speaks, for tests
// that check the server without a browser.
import WebSocket from 'ws';
import { createCoreClient } from '../../core/common/core-client.ts';
import type { CoreClient } from '../../core/common/core-client.ts';
import type { CoreEvents } from '../../core/common/api.ts';
import { decodeConsoleControl, encodeConsoleControl, WS_CONSOLE_PATH, WS_RPC_PATH } from '../../core/common/transport.ts';
import type { ConsoleControl } from '../../core/common/transport.ts';

export interface WsTarget {
  origin: string;
  token: string;
}

export function wsUrl(t: WsTarget, path: string, query: Record<string, string> = {}): string {
  const u = new URL(path, t.origin.replace(/^http/, 'ws'));
  u.searchParams.set('token', t.token);
  for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v);
  return u.href;
}

/**
 * Opens a WebSocket; rejects with the HTTP status when the server refuses the upgrade.
 * onMessage is attached before the socket opens: a server may speak first, in the same packet.
 */
export function openWs(url: string, headers: { origin?: string | null; host?: string } = {},
  onMessage?: (data: Buffer, isBinary: boolean) => void): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const opts: WebSocket.ClientOptions = {};
    if (headers.origin !== null) opts.origin = headers.origin ?? new URL(url.replace(/^ws/, 'http')).origin;
    if (headers.host) opts.headers = { Host: headers.host };
    const ws = new WebSocket(url, opts);
    if (onMessage) ws.on('message', onMessage);
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => reject(Object.assign(new Error(`refused ${res.statusCode}: ${body.trim()}`), { status: res.statusCode, body })));
    });
    ws.once('error', reject);
  });
}

/** The core's API over browser mode's RPC socket; `connection` names a saved connection (default: local). */
export async function wsCoreClient(t: WsTarget, events: Partial<CoreEvents> = {}, connection?: string): Promise<CoreClient> {
  let deliver: (m: string) => void = () => {};
  const ws = await openWs(wsUrl(t, WS_RPC_PATH, connection ? { connection } : {}), {}, (d, bin) => { if (!bin) deliver(d.toString()); });
  return createCoreClient({
    send: (m) => ws.send(m),
    onMessage: (cb) => { deliver = cb; },
    onClose: (cb) => { ws.on('close', (code) => cb(String(code))); },
    close: () => ws.close(),
  }, events);
}

/** A console viewer: collects output, records controls, acks only when told to. */
export class WsConsole {
  readonly ws: WebSocket;
  received = Buffer.alloc(0);
  controls: ConsoleControl[] = [];
  unacked = 0;
  closed = false;
  private waiters: Array<() => void> = [];

  private constructor(url: string, private autoAck: boolean) {
    this.ws = new WebSocket(url, { origin: new URL(url.replace(/^ws/, 'http')).origin });
    const ws = this.ws;
    ws.on('message', (d: Buffer, bin) => {
      if (bin) {
        this.received = Buffer.concat([this.received, d]);
        this.unacked += d.length;
        if (this.autoAck) this.ack();
      } else {
        const c = decodeConsoleControl(d.toString());
        if (c) this.controls.push(c);
      }
      this.wake();
    });
    ws.on('close', () => { this.closed = true; this.wake(); });
  }

  static async open(t: WsTarget, vm: string, opts: { replay?: boolean; autoAck?: boolean; connection?: string } = {}): Promise<WsConsole> {
    return WsConsole.openAt(t, WS_CONSOLE_PATH, { vm, replay: opts.replay === false ? '0' : '1', ...(opts.connection ? { connection: opts.connection } : {}) }, opts);
  }

  /** A channel with the console protocol at another path (e.g. WS_TERMINAL_PATH with vm, user, cols, rows). */
  static async openAt(t: WsTarget, path: string, query: Record<string, string>, opts: { autoAck?: boolean } = {}): Promise<WsConsole> {
    const c = new WsConsole(wsUrl(t, path, query), opts.autoAck ?? true);
    await new Promise<void>((resolve, reject) => {
      c.ws.once('open', () => resolve());
      c.ws.once('error', reject);
      c.ws.once('unexpected-response', (_q, res) => reject(new Error(`console refused: ${res.statusCode}`)));
    });
    return c;
  }

  get text(): string {
    return this.received.toString('latin1');
  }

  ack(): void {
    if (this.unacked > 0 && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(encodeConsoleControl({ type: 'ack', bytes: this.unacked }));
      this.unacked = 0;
    }
  }

  /** Sends a control message (e.g. a terminal's resize). */
  control(c: ConsoleControl): void {
    this.ws.send(encodeConsoleControl(c));
  }

  type(text: string): void {
    this.ws.send(Buffer.from(text, 'utf8'), { binary: true });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits until pred() holds (checked on every message), or fails with what was seen. */
  async until(pred: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`console: ${what} did not happen within ${timeoutMs} ms; controls ${JSON.stringify(this.controls)}; tail: ${JSON.stringify(this.text.slice(-400))}`);
      }
      await new Promise<void>((r) => { this.waiters.push(r); setTimeout(r, Math.min(left, 250)); });
    }
  }

  close(): void {
    this.ws.close();
  }
}
