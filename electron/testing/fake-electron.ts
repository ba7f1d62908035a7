// Fakes of the Electron main-process API for unit tests (tests/unit/electron-*.test.ts): the
// Electron binary cannot run in CI, so the main-process modules take these instead. Not bundled.
import { EventEmitter } from 'node:events';
import type { BrowserWindowConstructorOptions, MenuItemConstructorOptions, MessageBoxOptions, MessageBoxReturnValue } from 'electron';
import type {
  AppLike, BrowserWindowLike, FrameLike, HeadersReceivedDetails, IpcMainEventLike, IpcMainLike,
  MainElectron, MessagePortLike, NavigationEventLike, Rectangle, SessionLike, UtilityProcessLike,
  WebContentsLike,
} from '../electron-api.ts';

/** One end of an in-memory message channel; delivery is asynchronous like the real thing. */
export class FakePort extends EventEmitter implements MessagePortLike {
  other: FakePort | null = null;
  closed = false;
  started = false;
  readonly sent: unknown[] = [];
  postMessage(message: unknown, transfer: MessagePortLike[] = []): void {
    this.sent.push(message);
    if (this.closed) return;
    const other = this.other;
    queueMicrotask(() => { if (other && !other.closed) other.emit('message', { data: message, ports: transfer }); });
  }
  start(): void { this.started = true; }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const other = this.other;
    queueMicrotask(() => { if (other && !other.closed) { other.closed = true; other.emit('close'); } });
  }
}

export class FakeChannel {
  readonly port1 = new FakePort();
  readonly port2 = new FakePort();
  static made: FakeChannel[] = [];
  constructor() {
    this.port1.other = this.port2;
    this.port2.other = this.port1;
    FakeChannel.made.push(this);
  }
}

export class FakeFrame implements FrameLike {
  destroyed = false;
  constructor(public url: string, public parent: FakeFrame | null = null, public processId = 1, public routingId = 1) {}
  isDestroyed(): boolean { return this.destroyed; }
}

let nextId = 1;
export class FakeWebContents extends EventEmitter implements WebContentsLike {
  readonly id = nextId++;
  mainFrame: FakeFrame;
  destroyed = false;
  readonly sentIpc: { channel: string; args: unknown[] }[] = [];
  readonly posted: { channel: string; message: unknown; transfer: MessagePortLike[] }[] = [];
  windowOpenHandler: ((d: { url: string }) => { action: 'deny' } | { action: 'allow' }) | null = null;
  constructor(url = 'app://hangar/index.html') {
    super();
    this.mainFrame = new FakeFrame(url, null, 1, this.id);
  }
  isDestroyed(): boolean { return this.destroyed; }
  getURL(): string { return this.mainFrame.url; }
  send(channel: string, ...args: unknown[]): void { this.sentIpc.push({ channel, args }); }
  postMessage(channel: string, message: unknown, transfer: MessagePortLike[] = []): void {
    this.posted.push({ channel, message, transfer });
  }
  setWindowOpenHandler(h: (d: { url: string }) => { action: 'deny' } | { action: 'allow' }): void { this.windowOpenHandler = h; }
  /** Emits a navigation event; returns whether it was prevented. */
  navigate(event: 'will-navigate' | 'will-frame-navigate' | 'will-redirect', url: string): boolean {
    let prevented = false;
    const e: NavigationEventLike = { url, preventDefault: () => { prevented = true; } };
    this.emit(event, e);
    return prevented;
  }
}

export class FakeWindow extends EventEmitter implements BrowserWindowLike {
  static all: FakeWindow[] = [];
  static focused: FakeWindow | null = null;
  readonly webContents = new FakeWebContents();
  destroyed = false;
  minimized = false;
  maximized = false;
  visible = false;
  focusCount = 0;
  loadedUrl: string | null = null;
  bounds: Rectangle;
  constructor(public readonly options: BrowserWindowConstructorOptions) {
    super();
    this.bounds = { x: options.x ?? 0, y: options.y ?? 0, width: options.width ?? 800, height: options.height ?? 600 };
    FakeWindow.all.push(this);
  }
  static getFocusedWindow(): FakeWindow | null { return FakeWindow.focused; }
  isDestroyed(): boolean { return this.destroyed; }
  isMinimized(): boolean { return this.minimized; }
  isMaximized(): boolean { return this.maximized; }
  isVisible(): boolean { return this.visible; }
  restore(): void { this.minimized = false; }
  show(): void { this.visible = true; }
  focus(): void { this.focusCount++; FakeWindow.focused = this; }
  maximize(): void { this.maximized = true; }
  getNormalBounds(): Rectangle { return { ...this.bounds }; }
  async loadURL(url: string): Promise<void> { this.loadedUrl = url; }
  /** Simulates the user closing the window. */
  closeByUser(): void {
    this.emit('close');
    this.destroyed = true;
    this.webContents.destroyed = true;
    this.emit('closed');
  }
}

export class FakeUtilityProcess extends EventEmitter implements UtilityProcessLike {
  pid: number | undefined = 4242;
  readonly received: { message: unknown; transfer: MessagePortLike[] }[] = [];
  killed = false;
  postMessage(message: unknown, transfer: MessagePortLike[] = []): void { this.received.push({ message, transfer }); }
  kill(): boolean { this.killed = true; return true; }
  spawned(): void { this.emit('spawn'); }
  exit(code: number): void { this.emit('exit', code); }
}

export class FakeIpcMain implements IpcMainLike {
  readonly listeners = new Map<string, (event: IpcMainEventLike, ...args: unknown[]) => void>();
  readonly handlers = new Map<string, (event: IpcMainEventLike, ...args: unknown[]) => unknown>();
  on(channel: string, l: (event: IpcMainEventLike, ...args: unknown[]) => void): this { this.listeners.set(channel, l); return this; }
  handle(channel: string, l: (event: IpcMainEventLike, ...args: unknown[]) => unknown): void { this.handlers.set(channel, l); }
  emit(channel: string, event: IpcMainEventLike, ...args: unknown[]): void { this.listeners.get(channel)?.(event, ...args); }
  invoke(channel: string, event: IpcMainEventLike, ...args: unknown[]): unknown { return this.handlers.get(channel)?.(event, ...args); }
}

/** An IPC event from a web contents' main frame (or the given frame). */
export function ipcEvent(wc: FakeWebContents, frame: FakeFrame | null = wc.mainFrame): IpcMainEventLike {
  return { sender: wc, senderFrame: frame };
}

export class FakeSession implements SessionLike {
  requestHandler: Parameters<SessionLike['setPermissionRequestHandler']>[0] = null;
  checkHandler: Parameters<SessionLike['setPermissionCheckHandler']>[0] = null;
  deviceHandler: Parameters<SessionLike['setDevicePermissionHandler']>[0] = null;
  headersListener: ((d: HeadersReceivedDetails, cb: (r: { responseHeaders?: Record<string, string[] | string> }) => void) => void) | null = null;
  setPermissionRequestHandler(h: FakeSession['requestHandler']): void { this.requestHandler = h; }
  setPermissionCheckHandler(h: FakeSession['checkHandler']): void { this.checkHandler = h; }
  setDevicePermissionHandler(h: FakeSession['deviceHandler']): void { this.deviceHandler = h; }
  webRequest = {
    onHeadersReceived: (l: FakeSession['headersListener']): void => { this.headersListener = l; },
  };
}

export class FakeApp extends EventEmitter implements AppLike {
  lockAvailable = true;
  quitCalls = 0;
  private readyResolve!: () => void;
  private readonly readyPromise = new Promise<void>((r) => { this.readyResolve = r; });
  constructor(public userData: string) { super(); }
  requestSingleInstanceLock(): boolean { return this.lockAvailable; }
  quit(): void {
    this.quitCalls++;
    // Like Electron: before-quit, then will-quit (which may be prevented).
    let prevented = false;
    this.emit('will-quit', { preventDefault: () => { prevented = true; } });
    if (!prevented) this.emit('quit');
  }
  getVersion(): string { return '0.1.0'; }
  getName(): string { return 'Hangar'; }
  getPath(): string { return this.userData; }
  whenReady(): Promise<unknown> { return this.readyPromise; }
  makeReady(): void { this.readyResolve(); }
}

export interface FakeElectron extends MainElectron {
  app: FakeApp;
  ipcMain: FakeIpcMain;
  session: { defaultSession: FakeSession };
  children: FakeUtilityProcess[];
  menuTemplate: MenuItemConstructorOptions[] | null;
  protocolHandlers: Map<string, (request: Request) => Response | Promise<Response>>;
  privilegedSchemes: unknown[];
  dialogCalls: MessageBoxOptions[];
  /** The button index the next dialogs answer. */
  dialogResponses: number[];
  openedExternal: string[];
  forkCalls: { modulePath: string; args?: string[] }[];
}

export function createFakeElectron(userData: string): FakeElectron {
  FakeWindow.all = [];
  FakeWindow.focused = null;
  FakeChannel.made = [];
  const fake: FakeElectron = {
    app: new FakeApp(userData),
    BrowserWindow: FakeWindow,
    ipcMain: new FakeIpcMain(),
    Menu: {
      buildFromTemplate: (t: MenuItemConstructorOptions[]) => { fake.menuTemplate = t; return { template: t }; },
      setApplicationMenu: () => {},
    },
    dialog: {
      showMessageBox: async (a: unknown, b?: MessageBoxOptions): Promise<MessageBoxReturnValue> => {
        const opts = (b ?? a) as MessageBoxOptions;
        fake.dialogCalls.push(opts);
        return { response: fake.dialogResponses.shift() ?? opts.defaultId ?? 0, checkboxChecked: false };
      },
    },
    shell: { openExternal: async (url: string) => { fake.openedExternal.push(url); } },
    protocol: {
      registerSchemesAsPrivileged: (s) => { fake.privilegedSchemes.push(...s); },
      handle: (scheme, handler) => { fake.protocolHandlers.set(scheme, handler); },
    },
    session: { defaultSession: new FakeSession() },
    screen: { getAllDisplays: () => [{ workArea: { x: 0, y: 0, width: 1920, height: 1080 } }] },
    utilityProcess: {
      fork: (modulePath: string, args?: string[]) => {
        fake.forkCalls.push({ modulePath, ...(args ? { args } : {}) });
        const child = new FakeUtilityProcess();
        fake.children.push(child);
        return child;
      },
    },
    MessageChannelMain: FakeChannel,
    children: [],
    menuTemplate: null,
    protocolHandlers: new Map(),
    privilegedSchemes: [],
    dialogCalls: [],
    dialogResponses: [],
    openedExternal: [],
    forkCalls: [],
  };
  return fake;
}

/** Lets queued microtasks and timers of 0 ms run. */
export const tick = (ms = 0): Promise<void> => new Promise((r) => setTimeout(r, ms));
