import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MenuItemConstructorOptions } from 'electron';
import { createBirpc } from 'birpc';
import type { CoreApi, CoreEvents, VmSummary } from '../../core/common/api.ts';
import { createMainApp, registerAppScheme } from '../../electron/app.ts';
import type { MainApp } from '../../electron/app.ts';
import type { MessagePortLike } from '../../electron/electron-api.ts';
import { rpcLinkFromPort } from '../../electron/port-link.ts';
import { CSP } from '../../electron/security.ts';
import {
  createFakeElectron, FakeWebContents, FakeWindow, ipcEvent, tick,
} from '../../electron/testing/fake-electron.ts';
import type { FakeElectron, FakeUtilityProcess } from '../../electron/testing/fake-electron.ts';

let dir: string;
let fake: FakeElectron;
let main: MainApp;

function makeApp(): MainApp {
  return createMainApp(fake, {
    paths: { renderer: join(dir, 'renderer'), preload: '/app/dist/electron/preload.cjs', coreHost: '/app/dist/electron/core-host.mjs', icon: '/app/resources/icon.png' },
    fs: { readFileSync, writeFileSync, renameSync, mkdirSync, readFile },
    versions: { electron: '41.7.1', node: '24.0.0', chrome: '146.0.0.0' },
    platform: 'linux',
    log: () => {},
    backoffMs: [1],
  });
}

async function startReady(): Promise<FakeUtilityProcess> {
  assert.equal(main.start(), true);
  fake.app.makeReady();
  await main.ready;
  const child = fake.children[0]!;
  return child;
}

/** A core on the far end of every rpc channel main hands the core host. */
function serveFakeCore(child: FakeUtilityProcess, api: Partial<CoreApi>): void {
  const original = child.postMessage.bind(child);
  child.postMessage = (message: unknown, transfer: MessagePortLike[] = []) => {
    original(message, transfer);
    if ((message as { kind?: string }).kind !== 'rpc' || !transfer[0]) return;
    const link = rpcLinkFromPort(transfer[0]);
    createBirpc<CoreEvents, Partial<CoreApi>>(api, {
      post: (d: string) => link.send(d),
      on: (fn) => link.onMessage(fn),
      serialize: (v) => JSON.stringify(v),
      deserialize: (v: string) => JSON.parse(v),
      eventNames: ['vmChanged', 'vmListChanged'],
    });
  };
}

function menuItem(id: string): MenuItemConstructorOptions {
  const walk = (items: MenuItemConstructorOptions[]): MenuItemConstructorOptions | undefined => {
    for (const i of items) {
      if (i.id === id) return i;
      if (Array.isArray(i.submenu)) { const f = walk(i.submenu); if (f) return f; }
    }
    return undefined;
  };
  const found = walk(fake.menuTemplate!);
  assert.ok(found, `menu item ${id}`);
  return found;
}

const click = (item: MenuItemConstructorOptions): void => {
  (item.click as unknown as () => void)();
};

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hangar-electron-main-'));
  fake = createFakeElectron(join(dir, 'userData'));
  main = makeApp();
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('electron main: start-up', () => {
  it('registers the app scheme as privileged (standard, secure)', () => {
    registerAppScheme(fake);
    assert.deepEqual(fake.privilegedSchemes, [{ scheme: 'app', privileges: { standard: true, secure: true, supportFetchAPI: true, codeCache: true } }]);
  });

  it('opens a hardened window on app://hangar/index.html and forks the core host', async () => {
    await startReady();
    assert.equal(FakeWindow.all.length, 1);
    const win = FakeWindow.all[0]!;
    assert.deepEqual({ ...win.options.webPreferences }, {
      preload: '/app/dist/electron/preload.cjs', contextIsolation: true, sandbox: true, nodeIntegration: false,
      nodeIntegrationInWorker: false, nodeIntegrationInSubFrames: false, webSecurity: true,
      allowRunningInsecureContent: false, webviewTag: false, spellcheck: false,
    });
    assert.equal(win.loadedUrl, 'app://hangar/index.html');
    assert.deepEqual(fake.forkCalls.map((f) => f.modulePath), ['/app/dist/electron/core-host.mjs']);
    assert.ok(fake.session.defaultSession.requestHandler, 'permission handler installed');
    win.emit('ready-to-show');
    assert.equal(win.visible, true);
  });

  it('serves the renderer with the CSP header through protocol.handle', async () => {
    mkdirSync(join(dir, 'renderer'));
    writeFileSync(join(dir, 'renderer', 'index.html'), '<!doctype html><title>Hangar</title>');
    writeFileSync(join(dir, 'secret.txt'), 'no');
    await startReady();
    const handler = fake.protocolHandlers.get('app')!;
    const ok = await handler(new Request('app://hangar/index.html'));
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('content-security-policy'), CSP);
    assert.match(await ok.text(), /Hangar/);
    assert.equal((await handler(new Request('app://hangar/..%2fsecret.txt'))).status, 404);
  });

  it('hardens every web contents created', async () => {
    await startReady();
    const wc = new FakeWebContents('app://hangar/index.html');
    fake.app.emit('web-contents-created', {}, wc);
    assert.equal(wc.navigate('will-navigate', 'https://evil.example/'), true);
    assert.deepEqual(wc.windowOpenHandler!({ url: 'https://www.qemu.org/' }), { action: 'deny' });
    await tick();
    assert.deepEqual(fake.openedExternal, ['https://www.qemu.org/']);
  });

  it('restores the saved window bounds', async () => {
    mkdirSync(join(dir, 'userData'), { recursive: true });
    writeFileSync(join(dir, 'userData', 'window-state.json'), JSON.stringify({ x: 50, y: 60, width: 1000, height: 650, maximized: false }));
    await startReady();
    const o = FakeWindow.all[0]!.options;
    assert.deepEqual([o.x, o.y, o.width, o.height], [50, 60, 1000, 650]);
  });
});

describe('electron main: single instance', () => {
  it('quits when another instance holds the lock', () => {
    fake.app.lockAvailable = false;
    assert.equal(main.start(), false);
    assert.equal(fake.app.quitCalls, 1);
    assert.equal(fake.forkCalls.length, 0);
  });

  it('a second instance focuses (and restores) the existing window', async () => {
    await startReady();
    const win = FakeWindow.all[0]!;
    win.minimized = true;
    fake.app.emit('second-instance');
    assert.equal(win.minimized, false);
    assert.equal(win.focusCount, 1);
    assert.equal(FakeWindow.all.length, 1, 'no new window');
  });
});

describe('electron main: ipc broker and core restarts', () => {
  it('a window request reaches the core host as port1, the window gets port2', async () => {
    const child = await startReady();
    child.spawned();
    const wc = FakeWindow.all[0]!.webContents;
    fake.ipcMain.emit('hangar:open-port', ipcEvent(wc), { id: 'q1', kind: 'console', vm: 'alpine', replay: true });
    assert.deepEqual(child.received.at(-1)!.message, { kind: 'console', vm: 'alpine', replay: true });
    const posted = wc.posted.at(-1)!;
    assert.equal(posted.channel, 'hangar:port');
    assert.deepEqual(posted.message, { id: 'q1' });
    const channel = fake.children.length && (posted.transfer[0] as unknown as { other: unknown }).other;
    assert.equal(channel, child.received.at(-1)!.transfer[0], 'the two ends of one channel');
  });

  it('restarts the core host after an unexpected exit and tells every window', async () => {
    const child = await startReady();
    child.spawned();
    main.createWindow();
    child.exit(1);
    await tick(10);
    assert.equal(fake.children.length, 2, 'respawned');
    fake.children[1]!.spawned();
    for (const w of FakeWindow.all) {
      assert.deepEqual(w.webContents.sentIpc.map((s) => s.channel), ['hangar:core-restarted']);
    }
  });

  it('File > New VM… goes to the focused window; Help > About shows the versions', async () => {
    await startReady();
    const [a] = FakeWindow.all;
    const b = main.createWindow() as FakeWindow;
    b.focus();
    click(menuItem('new-vm'));
    assert.deepEqual(b.webContents.sentIpc, [{ channel: 'hangar:menu', args: [{ action: 'new-vm' }] }]);
    assert.deepEqual(a!.webContents.sentIpc, []);
    click(menuItem('about'));
    await tick();
    const about = fake.dialogCalls.at(-1)!;
    assert.equal(about.message, 'Hangar');
    for (const s of ['Version 0.1.0', 'Electron 41.7.1', 'Node 24.0.0', 'Chrome 146.0.0.0']) assert.match(about.detail!, new RegExp(s));
  });
});

describe('electron main: quitting while VMs run', () => {
  const vms: VmSummary[] = [
    { id: 'a1', name: 'alpine', state: 'running' },
    { id: 'd1', name: 'debian', state: 'paused' },
    { id: 's1', name: 'spare', state: 'stopped' },
  ];

  function fakeCore(list: VmSummary[]) {
    const calls: string[] = [];
    const api: Partial<CoreApi> = {
      list: async () => list,
      shutdown: async (ref, opts) => { calls.push(`shutdown ${ref} wait=${opts?.wait} timeout=${opts?.timeoutSec}`); return { ...list.find((v) => v.id === ref)!, state: 'stopped', dir: '' }; },
      resume: async (ref) => { calls.push(`resume ${ref}`); return { ...list.find((v) => v.id === ref)!, state: 'running', dir: '' }; },
      destroy: async (ref) => { calls.push(`destroy ${ref}`); return { ...list.find((v) => v.id === ref)!, state: 'stopped', dir: '' }; },
    };
    return { api, calls };
  }

  async function quitWith(response: number | null, list = vms) {
    const child = await startReady();
    const core = fakeCore(list);
    serveFakeCore(child, core.api);
    child.spawned();
    if (response !== null) fake.dialogResponses.push(response);
    await main.requestQuit();
    return { child, core };
  }

  it('asks with the three choices, Keep Running as the default; keeping quits without touching VMs', async () => {
    const { core } = await quitWith(0);
    const d = fake.dialogCalls.at(-1)!;
    assert.equal(d.message, '2 virtual machines are running');
    assert.deepEqual(d.buttons, ['Keep Running and Quit', 'Shut Down All and Quit', 'Cancel']);
    assert.equal(d.defaultId, 0);
    assert.equal(d.cancelId, 2);
    assert.deepEqual(core.calls, []);
    assert.equal(main.quitConfirmed, true);
    assert.ok(fake.app.quitCalls >= 1);
  });

  it('Shut Down All shuts every running VM down (waiting, with a timeout) before quitting', async () => {
    const { core } = await quitWith(1);
    assert.deepEqual(core.calls.sort(), ['resume d1', 'shutdown a1 wait=true timeout=60', 'shutdown d1 wait=true timeout=60']);
    assert.ok(fake.app.quitCalls >= 1);
  });

  it('Cancel neither quits nor stops anything', async () => {
    const { core } = await quitWith(2);
    assert.deepEqual(core.calls, []);
    assert.equal(fake.app.quitCalls, 0);
    assert.equal(main.quitConfirmed, false);
  });

  it('quits without asking when no VM runs', async () => {
    await quitWith(null, [{ id: 's1', name: 'spare', state: 'stopped' }]);
    assert.equal(fake.dialogCalls.length, 0);
    assert.ok(fake.app.quitCalls >= 1);
  });

  it('stops the core host on the way out (VMs keep running), then really quits', async () => {
    const { child } = await quitWith(0);
    assert.deepEqual(child.received.at(-1)!.message, { kind: 'stop' });
    let quit = false;
    fake.app.on('quit', () => { quit = true; });
    child.exit(0);
    await tick();
    assert.equal(quit, true);
    assert.equal(fake.children.length, 1, 'not restarted');
  });
});
