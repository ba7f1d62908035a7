// Browser mode (`hangar serve`): the page is served at http://127.0.0.1:PORT/?token=TOKEN#/...
// and reaches the core over three kinds of WebSocket (RPC, console, display) on the same host (see core/common/transport.ts).
import type { ConsoleLink, CoreTransport, RpcLink, TerminalRequest } from '../../../core/common/transport.ts';
import { WS_CONSOLE_PATH, WS_DISPLAY_PATH, WS_RPC_PATH, WS_TERMINAL_PATH } from '../../../core/common/transport.ts';
import { LinkBase } from './link-base.ts';

export interface LocationLike {
  readonly protocol: string;
  readonly host: string;
  readonly search: string;
}

type WebSocketCtor = new (url: string) => WebSocket;

const WS_OPEN = 1;

const NO_TOKEN = 'this page has no access token: open the URL that `hangar serve` printed';

/** Adds ?connection= unless the channel is for this machine's core (absent = local on the server). */
function withConnection(params: Record<string, string>, connection: string | undefined): Record<string, string> {
  return connection && connection !== 'local' ? { ...params, connection } : params;
}

class WebSocketLink<T extends string | Uint8Array> extends LinkBase<T> {
  constructor(private readonly ws: WebSocket) {
    super();
    ws.addEventListener('message', (ev: MessageEvent) => {
      const d: unknown = ev.data;
      if (typeof d === 'string') this.deliver(d as T);
      else if (d instanceof ArrayBuffer) this.deliver(new Uint8Array(d) as T);
    });
    ws.addEventListener('close', (ev: CloseEvent) => {
      this.fireClose(ev.reason || (ev.wasClean ? 'the core closed the connection' : `the connection dropped (code ${ev.code})`));
    });
  }

  send(message: T): void {
    // A socket that is closing drops what is sent; its close event follows.
    if (this.ws.readyState !== WS_OPEN) return;
    this.ws.send(message as string | Uint8Array<ArrayBuffer>);
  }

  close(): void {
    try {
      this.ws.close(1000, 'closed by the UI');
    } catch {
      /* already closed */
    }
    this.fireClose('closed locally');
  }
}

export class WebSocketTransport implements CoreTransport {
  readonly kind = 'browser' as const;
  private readonly token: string;
  private readonly base: string;
  private readonly Ws: WebSocketCtor;

  constructor(location: LocationLike = window.location, Ws: WebSocketCtor = globalThis.WebSocket) {
    // Read once, at start: the token is what lets this page talk to the core.
    this.token = new URLSearchParams(location.search).get('token') ?? '';
    this.base = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}`;
    this.Ws = Ws;
  }

  /** The URL of a channel (exported for tests and diagnostics). */
  url(path: string, params: Record<string, string> = {}): string {
    const query = Object.entries({ token: this.token, ...params }).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
    return `${this.base}${path}?${query}`;
  }

  private open<T extends string | Uint8Array>(url: string, what: string): Promise<WebSocketLink<T>> {
    return new Promise((resolve, reject) => {
      let ws: WebSocket;
      try {
        ws = new this.Ws(url);
      } catch (e) {
        reject(new Error(`could not open the ${what} channel to the Hangar core: ${e instanceof Error ? e.message : String(e)}`));
        return;
      }
      ws.binaryType = 'arraybuffer';
      const link = new WebSocketLink<T>(ws);
      let settled = false;
      ws.addEventListener('open', () => {
        settled = true;
        resolve(link);
      });
      const fail = (): void => {
        if (settled) return;
        settled = true;
        reject(new Error(`could not reach the Hangar core for the ${what} channel (is \`hangar serve\` still running, and is the page's token current?)`));
      };
      ws.addEventListener('error', fail);
      ws.addEventListener('close', fail);
    });
  }

  openRpc(connection?: string): Promise<RpcLink> {
    if (!this.token) return Promise.reject(new Error(NO_TOKEN));
    return this.open<string>(this.url(WS_RPC_PATH, withConnection({}, connection)), 'RPC');
  }

  openConsole(vm: string, opts: { replay: boolean; connection?: string }): Promise<ConsoleLink> {
    if (!this.token) return Promise.reject(new Error(NO_TOKEN));
    return this.open<string | Uint8Array>(this.url(WS_CONSOLE_PATH, withConnection({ vm, replay: opts.replay ? '1' : '0' }, opts.connection)), 'console');
  }

  /** The VM's screen: RFB bytes both ways (binary frames), controls as text frames. */
  openDisplay(vm: string, connection?: string): Promise<ConsoleLink> {
    if (!this.token) return Promise.reject(new Error(NO_TOKEN));
    return this.open<string | Uint8Array>(this.url(WS_DISPLAY_PATH, withConnection({ vm }, connection)), 'display');
  }

  /** A shell in the guest (ssh in a pty on the serving host): the console protocol plus resize controls. */
  openTerminal(vm: string, opts: TerminalRequest): Promise<ConsoleLink> {
    if (!this.token) return Promise.reject(new Error(NO_TOKEN));
    const params: Record<string, string> = { vm };
    if (opts.user) params.user = opts.user;
    if (opts.cols && opts.rows) {
      params.cols = String(opts.cols);
      params.rows = String(opts.rows);
    }
    if (opts.login) params.login = '1';
    return this.open<string | Uint8Array>(this.url(WS_TERMINAL_PATH, withConnection(params, opts.connection)), 'terminal');
  }
}
