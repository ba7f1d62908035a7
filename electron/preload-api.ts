// The preload bridge's logic (preload.ts wires it to Electron). The renderer gets exactly one
// object, window.hangar, and through it can only: ask for a channel to the core, read the app's
// version, hear about core restarts and menu actions, and open an http(s) link in the browser.
// Everything is validated here before it reaches main (which validates again).
// Runs in the sandboxed preload: no Node APIs, no imports beyond Electron's renderer modules.

/** connection: a saved connection's name or a URI; absent = this machine's core. */
export type PortRequest =
  | { kind: 'rpc'; connection?: string }
  | { kind: 'console'; vm: string; replay: boolean; connection?: string }
  | { kind: 'display'; vm: string; connection?: string }
  /** A guest shell (ssh in a pty on the core host), or with login an ssh login to the connection's host (vm ''). */
  | { kind: 'terminal'; vm: string; user?: string; cols?: number; rows?: number; login?: boolean; connection?: string };

export interface HangarBridge {
  /**
   * Asks main for a channel to the core. Returns a request id; the port arrives as a window
   * 'message' event whose data is { hangarPort: id } and whose ports[0] is the MessagePort.
   */
  requestPort(request: PortRequest): string;
  appInfo(): Promise<{ version: string; electron: string }>;
  /** Calls cb after the core host restarted (reopen channels that closed). Returns an unsubscribe. */
  onCoreRestarted(cb: () => void): () => void;
  /** Calls cb with a menu action (currently 'new-vm'). Returns an unsubscribe. */
  onMenu(cb: (action: string) => void): () => void;
  openExternal(url: string): void;
}

interface IpcEventLike {
  readonly ports: readonly unknown[];
}

export interface PreloadDeps {
  contextBridge: { exposeInMainWorld(key: string, api: unknown): void };
  ipcRenderer: {
    send(channel: string, ...args: unknown[]): void;
    invoke(channel: string, ...args: unknown[]): Promise<unknown>;
    on(channel: string, listener: (event: IpcEventLike, ...args: unknown[]) => void): unknown;
    removeListener(channel: string, listener: (event: IpcEventLike, ...args: unknown[]) => void): unknown;
  };
  window: {
    postMessage(message: unknown, targetOrigin: string, transfer?: never[]): void;
    readonly location: { readonly origin: string };
  };
  randomId(): string;
}

const MAX_VM_LENGTH = 200;
/** As core/common/transport.ts MAX_CONNECTION_REF (the sandboxed preload imports nothing). */
const MAX_CONNECTION_LENGTH = 2048;
const MAX_PENDING = 256;
const MENU_ACTIONS: ReadonlySet<string> = new Set(['new-vm']);

/** A request's connection (a saved connection's name or a URI), or undefined for this machine's core. */
function checkConnection(value: unknown): { connection?: string } {
  if (value === undefined) return {};
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_CONNECTION_LENGTH) {
    throw new TypeError(`requestPort: connection must be a non-empty string of at most ${MAX_CONNECTION_LENGTH} characters`);
  }
  return { connection: value };
}

/** Returns a clean copy of a valid request, or throws a TypeError. */
export function checkPortRequest(request: unknown): PortRequest {
  if (!request || typeof request !== 'object') throw new TypeError('requestPort: expected an object');
  const r = request as Record<string, unknown>;
  if (r.kind === 'rpc') return { kind: 'rpc', ...checkConnection(r.connection) };
  if (r.kind === 'display') {
    if (typeof r.vm !== 'string' || r.vm.length === 0 || r.vm.length > MAX_VM_LENGTH) {
      throw new TypeError(`requestPort: vm must be a non-empty string of at most ${MAX_VM_LENGTH} characters`);
    }
    return { kind: 'display', vm: r.vm, ...checkConnection(r.connection) };
  }
  if (r.kind === 'console') {
    if (typeof r.vm !== 'string' || r.vm.length === 0 || r.vm.length > MAX_VM_LENGTH) {
      throw new TypeError(`requestPort: vm must be a non-empty string of at most ${MAX_VM_LENGTH} characters`);
    }
    if (typeof r.replay !== 'boolean') throw new TypeError('requestPort: replay must be a boolean');
    return { kind: 'console', vm: r.vm, replay: r.replay, ...checkConnection(r.connection) };
  }
  if (r.kind === 'terminal') return checkTerminalRequest(r);
  throw new TypeError('requestPort: kind must be "rpc", "console", "display" or "terminal"');
}

export function checkExternalUrl(url: unknown): string {
  if (typeof url !== 'string' || url.length > 2048) throw new TypeError('openExternal: expected a URL string');
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError('openExternal: not a valid URL');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError('openExternal: only http(s) links open');
  return url;
}

export function createHangarBridge(deps: PreloadDeps): HangarBridge {
  const { ipcRenderer } = deps;
  const pending = new Set<string>();

  ipcRenderer.on('hangar:port', (event, data) => {
    const id = data && typeof data === 'object' ? (data as Record<string, unknown>).id : undefined;
    if (typeof id !== 'string' || !pending.delete(id)) return;
    const port = event.ports[0];
    if (!port || event.ports.length !== 1) return;
    // contextBridge cannot pass MessagePorts: hand it to the page as a window message.
    const origin = deps.window.location.origin;
    deps.window.postMessage({ hangarPort: id }, origin && origin !== 'null' ? origin : '*', [port as never]);
  });

  const subscribe = (channel: string, handler: (...args: unknown[]) => void): (() => void) => {
    const listener = (_e: IpcEventLike, ...args: unknown[]): void => handler(...args);
    ipcRenderer.on(channel, listener);
    return () => { ipcRenderer.removeListener(channel, listener); };
  };

  return {
    requestPort(request) {
      const clean = checkPortRequest(request);
      const id = deps.randomId();
      pending.add(id);
      if (pending.size > MAX_PENDING) pending.delete(pending.values().next().value as string);
      ipcRenderer.send('hangar:open-port', { id, ...clean });
      return id;
    },
    async appInfo() {
      const info = (await ipcRenderer.invoke('hangar:app-info')) as Record<string, unknown> | null;
      return { version: String(info?.version ?? ''), electron: String(info?.electron ?? '') };
    },
    onCoreRestarted(cb) {
      if (typeof cb !== 'function') throw new TypeError('onCoreRestarted: expected a function');
      return subscribe('hangar:core-restarted', () => cb());
    },
    onMenu(cb) {
      if (typeof cb !== 'function') throw new TypeError('onMenu: expected a function');
      return subscribe('hangar:menu', (payload) => {
        const action = payload && typeof payload === 'object' ? (payload as Record<string, unknown>).action : undefined;
        if (typeof action === 'string' && MENU_ACTIONS.has(action)) cb(action);
      });
    },
    openExternal(url) {
      ipcRenderer.send('hangar:open-external', checkExternalUrl(url));
    },
  };
}

export function installPreload(deps: PreloadDeps): HangarBridge {
  const bridge = createHangarBridge(deps);
  deps.contextBridge.exposeInMainWorld('hangar', bridge);
  return bridge;
}

/** A request id: random UUID where available, else a counter plus randomness. */
let counter = 0;
export function makeRequestId(c: { randomUUID?: () => string } | undefined): string {
  if (c?.randomUUID) return c.randomUUID();
  counter++;
  return `r${counter.toString(36)}${Math.random().toString(36).slice(2, 10)}`;
}

const terminalSize = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 1000;

/** A guest terminal (vm named) or a login to the connection's host (login, vm ''). */
function checkTerminalRequest(r: Record<string, unknown>): PortRequest {
  const login = r.login === true;
  if (r.login !== undefined && typeof r.login !== 'boolean') throw new TypeError('requestPort: login must be a boolean');
  if (typeof r.vm !== 'string' || r.vm.length > MAX_VM_LENGTH || (!login && r.vm.length === 0)) {
    throw new TypeError(`requestPort: vm must be a string of at most ${MAX_VM_LENGTH} characters (non-empty unless login)`);
  }
  if (r.user !== undefined && (typeof r.user !== 'string' || r.user.length === 0 || r.user.length > 64)) throw new TypeError('requestPort: user must be a non-empty string of at most 64 characters');
  const sized = r.cols !== undefined || r.rows !== undefined;
  if (sized && !(terminalSize(r.cols) && terminalSize(r.rows))) throw new TypeError('requestPort: cols and rows must both be integers 1..1000');
  return {
    kind: 'terminal', vm: r.vm,
    ...(r.user !== undefined ? { user: r.user as string } : {}),
    ...(sized ? { cols: r.cols as number, rows: r.rows as number } : {}),
    ...(login ? { login: true } : {}),
    ...checkConnection(r.connection),
  };
}
