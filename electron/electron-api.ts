// The parts of Electron's main-process API that Hangar uses, as structural types. The modules in
// this folder receive these objects instead of importing 'electron', so unit tests can pass
// fakes (the Electron binary cannot run in CI). main.ts passes the real module, and the
// typecheck proves the real API satisfies these shapes.
import type {
  BrowserWindowConstructorOptions, CustomScheme, ForkOptions, MenuItemConstructorOptions,
  MessageBoxOptions, MessageBoxReturnValue, Rectangle,
} from 'electron';

export type { Rectangle };

/** A frame (WebFrameMain). */
export interface FrameLike {
  readonly url: string;
  readonly parent: FrameLike | null;
  readonly processId: number;
  readonly routingId: number;
  isDestroyed(): boolean;
}

/** A main-process message port (MessagePortMain). */
export interface MessagePortLike {
  postMessage(message: unknown, transfer?: MessagePortLike[]): void;
  start(): void;
  close(): void;
  on(event: 'message', listener: (e: { data: unknown; ports: MessagePortLike[] }) => void): unknown;
  on(event: 'close', listener: () => void): unknown;
}

export interface ChannelLike {
  port1: MessagePortLike;
  port2: MessagePortLike;
}

/** Navigation events (will-navigate, will-frame-navigate, will-redirect). */
export interface NavigationEventLike {
  readonly url: string;
  preventDefault(): void;
}

export interface WebContentsLike {
  readonly id: number;
  readonly mainFrame: FrameLike;
  isDestroyed(): boolean;
  getURL(): string;
  send(channel: string, ...args: unknown[]): void;
  postMessage(channel: string, message: unknown, transfer?: MessagePortLike[]): void;
  setWindowOpenHandler(handler: (details: { url: string }) => { action: 'deny' } | { action: 'allow' }): void;
  on(event: 'will-navigate', listener: (e: NavigationEventLike) => void): unknown;
  on(event: 'will-frame-navigate', listener: (e: NavigationEventLike) => void): unknown;
  on(event: 'will-redirect', listener: (e: NavigationEventLike) => void): unknown;
  on(event: 'will-attach-webview', listener: (e: { preventDefault(): void }) => void): unknown;
}

export interface BrowserWindowLike {
  readonly webContents: WebContentsLike;
  isDestroyed(): boolean;
  isMinimized(): boolean;
  isMaximized(): boolean;
  isVisible(): boolean;
  restore(): void;
  show(): void;
  focus(): void;
  maximize(): void;
  getNormalBounds(): Rectangle;
  loadURL(url: string): Promise<void>;
  on(event: 'close' | 'closed' | 'resize' | 'move' | 'ready-to-show', listener: () => void): unknown;
  once(event: 'ready-to-show', listener: () => void): unknown;
}

/** A core host child (UtilityProcess). */
export interface UtilityProcessLike {
  readonly pid: number | undefined;
  postMessage(message: unknown, transfer?: MessagePortLike[]): void;
  kill(): boolean;
  on(event: 'spawn', listener: () => void): unknown;
  on(event: 'exit', listener: (code: number) => void): unknown;
  on(event: 'message', listener: (message: unknown) => void): unknown;
}

export interface IpcMainEventLike {
  readonly sender: WebContentsLike;
  readonly senderFrame: FrameLike | null;
}

export interface IpcMainLike {
  on(channel: string, listener: (event: IpcMainEventLike, ...args: unknown[]) => void): unknown;
  handle(channel: string, listener: (event: IpcMainEventLike, ...args: unknown[]) => unknown): void;
}

export interface HeadersReceivedDetails {
  readonly url: string;
  readonly responseHeaders?: Record<string, string[]>;
}

export interface SessionLike {
  setPermissionRequestHandler(handler: ((wc: WebContentsLike, permission: string, callback: (granted: boolean) => void, details: { requestingUrl?: string }) => void) | null): void;
  setPermissionCheckHandler(handler: ((wc: WebContentsLike | null, permission: string, requestingOrigin: string) => boolean) | null): void;
  setDevicePermissionHandler(handler: ((details: unknown) => boolean) | null): void;
  webRequest: {
    onHeadersReceived(listener: ((details: HeadersReceivedDetails, callback: (response: { responseHeaders?: Record<string, string[] | string> }) => void) => void) | null): void;
  };
}

export interface AppLike {
  requestSingleInstanceLock(): boolean;
  quit(): void;
  getVersion(): string;
  getName(): string;
  getPath(name: 'userData'): string;
  whenReady(): Promise<unknown>;
  on(event: 'second-instance' | 'window-all-closed' | 'activate', listener: () => void): unknown;
  on(event: 'web-contents-created', listener: (e: unknown, contents: WebContentsLike) => void): unknown;
  on(event: 'before-quit' | 'will-quit', listener: (e: { preventDefault(): void }) => void): unknown;
}

export interface MainElectron {
  app: AppLike;
  BrowserWindow: {
    new (options: BrowserWindowConstructorOptions): BrowserWindowLike;
    getFocusedWindow(): BrowserWindowLike | null;
  };
  ipcMain: IpcMainLike;
  Menu: {
    buildFromTemplate(template: MenuItemConstructorOptions[]): unknown;
    setApplicationMenu(menu: unknown): void;
  };
  dialog: {
    // `unknown`: the real one takes a BaseWindow; we pass our BrowserWindowLike, which is one.
    showMessageBox(window: unknown, options: MessageBoxOptions): Promise<MessageBoxReturnValue>;
    showMessageBox(options: MessageBoxOptions): Promise<MessageBoxReturnValue>;
  };
  shell: { openExternal(url: string): Promise<void> };
  protocol: {
    registerSchemesAsPrivileged(schemes: CustomScheme[]): void;
    handle(scheme: string, handler: (request: Request) => Response | Promise<Response>): void;
  };
  session: { defaultSession: SessionLike };
  screen: { getAllDisplays(): { workArea: Rectangle }[] };
  utilityProcess: { fork(modulePath: string, args?: string[], options?: ForkOptions): UtilityProcessLike };
  MessageChannelMain: new () => ChannelLike;
}
