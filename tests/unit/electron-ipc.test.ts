import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { PortRequest } from '../../electron/core-supervisor.ts';
import { IPC, registerIpc } from '../../electron/ipc.ts';
import { FakeFrame, FakeIpcMain, FakePort, FakeWebContents, ipcEvent } from '../../electron/testing/fake-electron.ts';

function setup() {
  const ipc = new FakeIpcMain();
  const ours = new FakeWebContents();
  const opened: PortRequest[] = [];
  const external: string[] = [];
  const logs: string[] = [];
  registerIpc(ipc, {
    windows: () => [ours],
    openPort: (req) => { opened.push(req); return new FakePort(); },
    appInfo: () => ({ version: '0.1.0', electron: '41.0.0' }),
    openExternal: (u) => external.push(u),
    log: (m) => logs.push(m),
  });
  return { ipc, ours, opened, external, logs };
}

describe('electron ipc: open-port', () => {
  it('opens a channel for a valid request and posts the port to the requesting web contents', () => {
    const { ipc, ours, opened } = setup();
    ipc.emit(IPC.openPort, ipcEvent(ours), { id: 'abc-1', kind: 'console', vm: 'debian', replay: true });
    ipc.emit(IPC.openPort, ipcEvent(ours), { id: 'abc-2', kind: 'rpc' });
    ipc.emit(IPC.openPort, ipcEvent(ours), { id: 'abc-3', kind: 'display', vm: 'win11' });
    assert.deepEqual(opened, [{ kind: 'console', vm: 'debian', replay: true }, { kind: 'rpc' }, { kind: 'display', vm: 'win11' }]);
    assert.equal(ours.posted.length, 3);
    assert.equal(ours.posted[0]!.channel, 'hangar:port');
    assert.deepEqual(ours.posted[0]!.message, { id: 'abc-1' });
    assert.equal(ours.posted[0]!.transfer.length, 1);
    assert.ok(ours.posted[0]!.transfer[0] instanceof FakePort);
  });

  it('passes the connection a request names to the broker', () => {
    const { ipc, ours, opened } = setup();
    ipc.emit(IPC.openPort, ipcEvent(ours), { id: 'c1', kind: 'rpc', connection: 'lab' });
    ipc.emit(IPC.openPort, ipcEvent(ours), { id: 'c2', kind: 'console', vm: 'web', replay: true, connection: 'qemu:///system' });
    ipc.emit(IPC.openPort, ipcEvent(ours), { id: 'c3', kind: 'display', vm: 'web', connection: 'x'.repeat(2048) });
    assert.deepEqual(opened, [
      { kind: 'rpc', connection: 'lab' },
      { kind: 'console', vm: 'web', replay: true, connection: 'qemu:///system' },
      { kind: 'display', vm: 'web', connection: 'x'.repeat(2048) },
    ]);
    assert.equal(ours.posted.length, 3);
  });

  it('passes terminal requests (a guest shell, or a login with no VM) to the broker', () => {
    const { ipc, ours, opened } = setup();
    ipc.emit(IPC.openPort, ipcEvent(ours), { id: 't1', kind: 'terminal', vm: 'web', user: 'root', cols: 100, rows: 30 });
    ipc.emit(IPC.openPort, ipcEvent(ours), { id: 't2', kind: 'terminal', vm: '', login: true, connection: 'lab' });
    ipc.emit(IPC.openPort, ipcEvent(ours), { id: 't3', kind: 'terminal', vm: '' });
    ipc.emit(IPC.openPort, ipcEvent(ours), { id: 't4', kind: 'terminal', vm: 'w', cols: 5000, rows: 3 });
    assert.deepEqual(opened, [
      { kind: 'terminal', vm: 'web', user: 'root', cols: 100, rows: 30 },
      { kind: 'terminal', vm: '', login: true, connection: 'lab' },
    ]);
    assert.equal(ours.posted.length, 2);
  });

  it('refuses bad payloads', () => {
    const { ipc, ours, opened, logs } = setup();
    const bad: unknown[] = [
      { id: 'a', kind: 'shell' },
      { id: 'a', kind: 'console', vm: 'x' }, // no replay
      { id: 'a', kind: 'console', vm: '', replay: false },
      { id: 'a', kind: 'console', vm: 'x'.repeat(201), replay: false },
      { id: 'a', kind: 'console', vm: 42, replay: false },
      { id: 'a', kind: 'display' },
      { id: 'a', kind: 'display', vm: '' },
      { id: 'a', kind: 'display', vm: 'x', replay: true },
      { id: 'a b', kind: 'rpc' },
      { id: 'x'.repeat(65), kind: 'rpc' },
      { kind: 'rpc' },
      { id: 'a', kind: 'rpc', extra: 1 },
      { id: 'a', kind: 'rpc', connection: '' },
      { id: 'a', kind: 'rpc', connection: 'x'.repeat(2049) },
      { id: 'a', kind: 'console', vm: 'x', replay: true, connection: 5 },
      'rpc', null, undefined, [],
    ];
    for (const p of bad) ipc.emit(IPC.openPort, ipcEvent(ours), p);
    assert.deepEqual(opened, []);
    assert.equal(ours.posted.length, 0);
    assert.equal(logs.length, bad.length);
  });

  it('refuses untrusted senders even with a valid payload', () => {
    const { ipc, ours, opened } = setup();
    const foreign = new FakeWebContents('https://evil.example/');
    ipc.emit(IPC.openPort, ipcEvent(foreign), { id: 'a', kind: 'rpc' });
    ipc.emit(IPC.openPort, ipcEvent(ours, new FakeFrame('app://hangar/index.html', ours.mainFrame, 1, 77)), { id: 'a', kind: 'rpc' });
    ipc.emit(IPC.openPort, ipcEvent(ours, null), { id: 'a', kind: 'rpc' });
    ours.mainFrame.destroyed = true;
    ipc.emit(IPC.openPort, ipcEvent(ours), { id: 'a', kind: 'rpc' });
    assert.deepEqual(opened, []);
    assert.equal(foreign.posted.length + ours.posted.length, 0);
  });
});

describe('electron ipc: app-info and open-external', () => {
  it('answers app-info to our frame only', async () => {
    const { ipc, ours } = setup();
    assert.deepEqual(await ipc.invoke(IPC.appInfo, ipcEvent(ours)), { version: '0.1.0', electron: '41.0.0' });
    const foreign = new FakeWebContents('https://evil.example/');
    assert.throws(() => ipc.invoke(IPC.appInfo, ipcEvent(foreign)), /refused/);
  });

  it('opens https links, refuses javascript:, file:, malformed and untrusted requests', () => {
    const { ipc, ours, external } = setup();
    for (const u of ['javascript:alert(1)', 'file:///etc/passwd', 'not a url', 'https//x', 42, null]) {
      ipc.emit(IPC.openExternal, ipcEvent(ours), u);
    }
    ipc.emit(IPC.openExternal, ipcEvent(new FakeWebContents('https://evil.example/')), 'https://ok.example/');
    assert.deepEqual(external, []);
    ipc.emit(IPC.openExternal, ipcEvent(ours), 'https://www.qemu.org/docs/');
    assert.deepEqual(external, ['https://www.qemu.org/docs/']);
  });
});
