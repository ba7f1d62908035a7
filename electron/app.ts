// The Electron main process, assembled from the modules next to it. Receives the electron API
// (and file-system access) as arguments so unit tests can drive it with fakes.
import { join } from 'node:path';
import type { VmSummary } from '../core/common/api.ts';
import { createCoreClient } from '../core/common/core-client.ts';
import type { CoreClient } from '../core/common/core-client.ts';
import { isActive } from '../core/common/state.ts';
import { APP_SCHEME_PRIVILEGES, createAppProtocolHandler } from './app-protocol.ts';
import { CoreHostSupervisor } from './core-supervisor.ts';
import type { PortRequest } from './core-supervisor.ts';
import type { BrowserWindowLike, MainElectron, UtilityProcessLike, WebContentsLike } from './electron-api.ts';
import { IPC, registerIpc } from './ipc.ts';
import { aboutDetail, buildMenuTemplate } from './menu.ts';
import { confirmQuit, QUIT_BUTTONS, runningMessage, stopPlan } from './quit.ts';
import type { QuitChoice } from './quit.ts';
import { rpcLinkFromPort } from './port-link.ts';
import { APP_INDEX_URL, APP_SCHEME, hardenWebContents, installSessionSecurity, isSafeExternalUrl } from './security.ts';
import { loadWindowState, saveWindowState, trackWindowState } from './window-state.ts';
import type { WindowStateFs } from './window-state.ts';

export interface MainPaths {
  /** dist/renderer */
  renderer: string;
  /** dist/electron/preload.cjs */
  preload: string;
  /** dist/electron/core-host.mjs */
  coreHost: string;
  /** resources/icon.png */
  icon: string;
}

export interface MainDeps {
  paths: MainPaths;
  fs: WindowStateFs & { readFile(path: string): Promise<Uint8Array> };
  versions: { electron?: string; node?: string; chrome?: string };
  platform: string;
  log(message: string): void;
  /** Seconds a guest gets to shut down when the user picks "Shut Down All and Quit". */
  shutdownTimeoutSec?: number;
  /** Passed to the supervisor (tests shorten the backoff). */
  backoffMs?: readonly number[];
}

/** Must run before the app is ready (Electron only accepts it then). */
export function registerAppScheme(electron: Pick<MainElectron, 'protocol'>): void {
  electron.protocol.registerSchemesAsPrivileged([APP_SCHEME_PRIVILEGES]);
}

export interface MainApp {
  /** false when another instance holds the lock (this one quits). */
  start(): boolean;
  readonly windows: ReadonlySet<BrowserWindowLike>;
  readonly supervisor: CoreHostSupervisor;
  createWindow(): BrowserWindowLike;
  openPort(request: PortRequest): ReturnType<CoreHostSupervisor['open']>;
  /** The File > Quit path: asks about running VMs, then quits. */
  requestQuit(): Promise<void>;
  /** Ready once app.whenReady() resolved and everything is set up. */
  ready: Promise<void>;
  /** Set when the user confirmed quitting through File > Quit. */
  readonly quitConfirmed: boolean;
}

export function createMainApp(electron: MainElectron, deps: MainDeps): MainApp {
  const { app, BrowserWindow, dialog, shell } = electron;
  const windows = new Set<BrowserWindowLike>();
  const stateFile = (): string => join(app.getPath('userData'), 'window-state.json');
  let quitConfirmed = false;
  let quitInProgress = false;
  let coreStopped = false;
  let mainClient: CoreClient | null = null;
  let resolveReady!: () => void;
  const ready = new Promise<void>((r) => { resolveReady = r; });

  const ourContents = function* (): Iterable<WebContentsLike> {
    for (const w of windows) if (!w.isDestroyed()) yield w.webContents;
  };

  const broadcast = (channel: string, ...args: unknown[]): void => {
    for (const wc of ourContents()) {
      try { wc.send(channel, ...args); } catch { /* window going away */ }
    }
  };

  const openExternal = (url: string): void => {
    if (!isSafeExternalUrl(url)) return;
    shell.openExternal(url).catch((e: unknown) => deps.log(`openExternal failed: ${String(e)}`));
  };

  const supervisor = new CoreHostSupervisor({
    fork: (): UtilityProcessLike => electron.utilityProcess.fork(deps.paths.coreHost, [], {
      serviceName: 'Hangar core',
      stdio: 'inherit',
    }),
    createChannel: () => new electron.MessageChannelMain(),
    onRestarted: () => broadcast(IPC.coreRestarted),
    log: deps.log,
    ...(deps.backoffMs ? { backoffMs: deps.backoffMs } : {}),
  });

  /** Main's own RPC channel to the core (for the quit dialog), reopened after a restart. */
  const coreClient = (): CoreClient => {
    if (!mainClient || mainClient.isClosed) mainClient = createCoreClient(rpcLinkFromPort(supervisor.open({ kind: 'rpc' })));
    return mainClient;
  };

  const focusedOrFirst = (): BrowserWindowLike | null => {
    const f = BrowserWindow.getFocusedWindow();
    if (f && windows.has(f) && !f.isDestroyed()) return f;
    for (const w of windows) if (!w.isDestroyed()) return w;
    return null;
  };

  const createWindow = (): BrowserWindowLike => {
    const state = loadWindowState(stateFile(), deps.fs, electron.screen.getAllDisplays().map((d) => d.workArea));
    const win = new BrowserWindow({
      ...(state.x !== undefined && state.y !== undefined ? { x: state.x, y: state.y } : {}),
      width: state.width,
      height: state.height,
      minWidth: 720,
      minHeight: 480,
      show: false,
      title: 'Hangar',
      icon: deps.paths.icon,
      backgroundColor: '#1e1e1e',
      webPreferences: {
        preload: deps.paths.preload,
        contextIsolation: true,
        sandbox: true,
        nodeIntegration: false,
        nodeIntegrationInWorker: false,
        nodeIntegrationInSubFrames: false,
        webSecurity: true,
        allowRunningInsecureContent: false,
        webviewTag: false,
        spellcheck: false,
      },
    });
    windows.add(win);
    if (state.maximized) win.maximize();
    trackWindowState(win, (s) => saveWindowState(stateFile(), deps.fs, s));
    win.once('ready-to-show', () => win.show());
    win.on('closed', () => windows.delete(win));
    win.loadURL(APP_INDEX_URL).catch((e: unknown) => deps.log(`loading the UI failed: ${String(e)}`));
    return win;
  };

  const focusWindow = (): void => {
    const w = focusedOrFirst();
    if (!w) {
      void app.whenReady().then(() => { if (windows.size === 0) createWindow(); });
      return;
    }
    if (w.isMinimized()) w.restore();
    if (!w.isVisible()) w.show();
    w.focus();
  };

  const about = async (): Promise<void> => {
    const opts = {
      type: 'info' as const,
      title: 'About Hangar',
      message: 'Hangar',
      detail: aboutDetail(app.getVersion(), deps.versions),
      buttons: ['OK'],
      noLink: true,
    };
    const w = focusedOrFirst();
    await (w ? dialog.showMessageBox(w, opts) : dialog.showMessageBox(opts));
  };

  const ask = async (running: VmSummary[]): Promise<QuitChoice> => {
    const names = running.slice(0, 10).map((v) => `• ${v.name}`);
    if (running.length > 10) names.push(`… and ${running.length - 10} more`);
    const opts = {
      type: 'question' as const,
      title: 'Quit Hangar',
      message: runningMessage(running.length),
      detail: `${names.join('\n')}\n\nKept running, they go on in the background: open Hangar again or use the hangar command to manage them.`,
      buttons: [...QUIT_BUTTONS],
      defaultId: 0,
      cancelId: 2,
      noLink: true,
    };
    const w = focusedOrFirst();
    const { response } = await (w ? dialog.showMessageBox(w, opts) : dialog.showMessageBox(opts));
    return response === 0 ? 'keep' : response === 1 ? 'shutdown' : 'cancel';
  };

  const stopVm = async (vm: VmSummary): Promise<void> => {
    const api = coreClient().api;
    const timeoutSec = deps.shutdownTimeoutSec ?? 60;
    switch (stopPlan(vm.state)) {
      case 'resume-then-shutdown':
        await api.resume(vm.id);
        await api.shutdown(vm.id, { wait: true, timeoutSec });
        return;
      case 'shutdown':
        await api.shutdown(vm.id, { wait: true, timeoutSec });
        return;
      case 'destroy':
        await api.destroy(vm.id);
        return;
      case 'wait': {
        const deadline = Date.now() + (timeoutSec + 10) * 1000;
        while (Date.now() < deadline) {
          if (!isActive((await api.get(vm.id)).state)) return;
          await new Promise((r) => setTimeout(r, 500));
        }
        throw new Error('did not stop in time');
      }
    }
  };

  const requestQuit = async (): Promise<void> => {
    if (quitInProgress) return;
    quitInProgress = true;
    try {
      const decision = await confirmQuit({
        listVms: () => coreClient().api.list(),
        stopVm,
        ask,
        showError: async (message) => {
          await dialog.showMessageBox({ type: 'warning', title: 'Quit Hangar', message: 'Shutting down failed', detail: message, buttons: ['OK'] });
        },
      });
      if (decision === 'quit') {
        quitConfirmed = true;
        app.quit();
      }
    } finally {
      quitInProgress = false;
    }
  };

  const onReady = (): void => {
    installSessionSecurity(electron.session.defaultSession);
    const handler = createAppProtocolHandler({ root: deps.paths.renderer, readFile: deps.fs.readFile });
    electron.protocol.handle(APP_SCHEME, (req) => handler(req));
    registerIpc(electron.ipcMain, {
      windows: ourContents,
      openPort: (req) => supervisor.open(req),
      appInfo: () => ({ version: app.getVersion(), electron: deps.versions.electron ?? 'unknown' }),
      openExternal,
      log: deps.log,
    });
    electron.Menu.setApplicationMenu(electron.Menu.buildFromTemplate(buildMenuTemplate({
      platform: deps.platform,
      appName: 'Hangar',
      newVm: () => focusedOrFirst()?.webContents.send(IPC.menu, { action: 'new-vm' }),
      quit: () => { void requestQuit(); },
      about: () => { void about(); },
    })));
    supervisor.start();
    createWindow();
    resolveReady();
  };

  const start = (): boolean => {
    if (!app.requestSingleInstanceLock()) {
      app.quit();
      return false;
    }
    app.on('second-instance', focusWindow);
    app.on('web-contents-created', (_e, contents) => hardenWebContents(contents, openExternal));
    app.on('window-all-closed', () => {
      // Closing windows never stops VMs; on Linux/Windows the app (not the VMs) ends here.
      if (deps.platform !== 'darwin') app.quit();
    });
    app.on('activate', () => { if (windows.size === 0) createWindow(); });
    app.on('will-quit', (e) => {
      if (coreStopped) return;
      e.preventDefault();
      mainClient?.close();
      void supervisor.stop().finally(() => {
        coreStopped = true;
        app.quit();
      });
    });
    void app.whenReady().then(onReady).catch((e: unknown) => deps.log(`start-up failed: ${String(e)}`));
    return true;
  };

  return {
    start,
    windows,
    supervisor,
    createWindow,
    openPort: (req) => supervisor.open(req),
    requestQuit,
    ready,
    get quitConfirmed() { return quitConfirmed; },
  };
}
