// Desktop app: the preload's window.hangar.requestPort() asks main for a MessagePort to the core;
// the port arrives as a window 'message' event { hangarPort: id } with ev.ports[0]. Console and
// display bytes then flow renderer <-> core directly, never through main.
import type { ConsoleLink, CoreTransport, RpcLink, TerminalRequest } from '../../../core/common/transport.ts';
import { decodeConsoleControl } from '../../../core/common/transport.ts';
import type { HangarBridge, PortRequest } from './bridge.ts';
import { LinkBase } from './link-base.ts';

/** How long to wait for main to hand over a port before giving up (the core may be restarting). */
export const PORT_TIMEOUT_MS = 10_000;

export interface WindowLike {
  addEventListener(type: 'message', listener: (ev: MessageEvent) => void): void;
  readonly location: { readonly origin: string };
}

function toBytes(d: unknown): Uint8Array | null {
  if (d instanceof Uint8Array) return d;
  if (d instanceof ArrayBuffer) return new Uint8Array(d);
  if (ArrayBuffer.isView(d)) return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  return null;
}

/** The request's connection field: absent for this machine's core. */
function named(connection: string | undefined): { connection?: string } {
  return connection && connection !== 'local' ? { connection } : {};
}

class PortLink<T extends string | Uint8Array> extends LinkBase<T> {
  /** console: a console or display channel (binary messages, an 'end' control before the close). */
  constructor(private readonly port: MessagePort, console: boolean, private readonly untrack: () => void) {
    super();
    port.onmessage = (ev: MessageEvent) => {
      const d: unknown = ev.data;
      if (typeof d === 'string') {
        this.deliver(d as T);
        // A console channel ends with { type: 'end' }: treat it as closed even where the port's
        // 'close' event is not available.
        if (console && decodeConsoleControl(d)?.type === 'end') this.close('the console channel ended');
        return;
      }
      if (console) {
        const b = toBytes(d);
        if (b) this.deliver(b as T);
      }
    };
    port.addEventListener('close', () => this.close('the core closed the channel'));
  }

  send(message: T): void {
    if (this.isClosed) return;
    this.port.postMessage(message);
  }

  close(reason = 'closed locally'): void {
    if (this.isClosed) return;
    try {
      this.port.close();
    } catch {
      /* already closed */
    }
    this.untrack();
    this.fireClose(reason);
  }
}

export class ElectronTransport implements CoreTransport {
  readonly kind = 'electron' as const;
  private readonly pending = new Map<string, { resolve: (p: MessagePort) => void; timer: ReturnType<typeof setTimeout> }>();
  private readonly open = new Set<{ close(reason?: string): void }>();

  constructor(private readonly bridge: HangarBridge, private readonly win: WindowLike = window) {
    win.addEventListener('message', (ev) => this.onWindowMessage(ev));
    // After the core host restarts, its ends of our ports are gone; close ours so every user
    // (connection store, consoles) reconnects.
    bridge.onCoreRestarted(() => {
      for (const link of [...this.open]) link.close('the Hangar core restarted');
    });
  }

  private onWindowMessage(ev: MessageEvent): void {
    const origin = this.win.location.origin;
    if (origin && origin !== 'null' && ev.origin && ev.origin !== origin) return;
    const data: unknown = ev.data;
    if (!data || typeof data !== 'object') return;
    const id = (data as Record<string, unknown>).hangarPort;
    if (typeof id !== 'string') return;
    const waiter = this.pending.get(id);
    const port = ev.ports?.[0];
    if (!waiter || !port) return;
    this.pending.delete(id);
    clearTimeout(waiter.timer);
    waiter.resolve(port);
  }

  private requestPort(request: PortRequest, what: string): Promise<MessagePort> {
    return new Promise((resolve, reject) => {
      let id: string;
      try {
        id = this.bridge.requestPort(request);
      } catch (e) {
        reject(new Error(`could not ask for a ${what} channel: ${e instanceof Error ? e.message : String(e)}`));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`the Hangar core did not open a ${what} channel within ${PORT_TIMEOUT_MS / 1000} s`));
      }, PORT_TIMEOUT_MS);
      this.pending.set(id, { resolve, timer });
    });
  }

  private track<T extends string | Uint8Array>(port: MessagePort, console: boolean): PortLink<T> {
    const link: PortLink<T> = new PortLink<T>(port, console, () => this.open.delete(link));
    this.open.add(link);
    port.start();
    return link;
  }

  async openRpc(connection?: string): Promise<RpcLink> {
    const port = await this.requestPort({ kind: 'rpc', ...named(connection) }, 'RPC');
    return this.track<string>(port, false);
  }

  async openConsole(vm: string, opts: { replay: boolean; connection?: string }): Promise<ConsoleLink> {
    const port = await this.requestPort({ kind: 'console', vm, replay: opts.replay, ...named(opts.connection) }, 'console');
    return this.track<string | Uint8Array>(port, true);
  }

  /** The VM's screen: RFB bytes both ways, as a console channel without replay. */
  async openDisplay(vm: string, connection?: string): Promise<ConsoleLink> {
    const port = await this.requestPort({ kind: 'display', vm, ...named(connection) }, 'display');
    return this.track<string | Uint8Array>(port, true);
  }

  /** A guest shell, or (login) an ssh login to the connection's host: a console channel plus resize controls. */
  async openTerminal(vm: string, opts: TerminalRequest): Promise<ConsoleLink> {
    const port = await this.requestPort({
      kind: 'terminal', vm,
      ...(opts.user ? { user: opts.user } : {}),
      ...(opts.cols && opts.rows ? { cols: opts.cols, rows: opts.rows } : {}),
      ...(opts.login ? { login: true } : {}),
      ...named(opts.connection),
    }, 'terminal');
    return this.track<string | Uint8Array>(port, true);
  }
}
