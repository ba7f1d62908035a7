import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkExternalUrl, checkPortRequest, installPreload } from '../../electron/preload-api.ts';
import type { HangarBridge, PreloadDeps } from '../../electron/preload-api.ts';

type Listener = (event: { ports: readonly unknown[] }, ...args: unknown[]) => void;

function setup(origin = 'app://hangar') {
  const exposed = new Map<string, unknown>();
  const sent: { channel: string; args: unknown[] }[] = [];
  const invoked: string[] = [];
  const listeners = new Map<string, Set<Listener>>();
  const posted: { message: unknown; origin: string; transfer: unknown[] }[] = [];
  let n = 0;
  const deps: PreloadDeps = {
    contextBridge: { exposeInMainWorld: (k, api) => { exposed.set(k, api); } },
    ipcRenderer: {
      send: (channel, ...args) => { sent.push({ channel, args }); },
      invoke: async (channel) => { invoked.push(channel); return { version: '0.1.0', electron: '41.1.0', secret: 'x' }; },
      on: (channel, l) => { if (!listeners.has(channel)) listeners.set(channel, new Set()); listeners.get(channel)!.add(l); },
      removeListener: (channel, l) => { listeners.get(channel)?.delete(l); },
    },
    window: {
      postMessage: (message, o, transfer = []) => { posted.push({ message, origin: o, transfer }); },
      location: { origin },
    },
    randomId: () => `id${++n}`,
  };
  installPreload(deps);
  const fire = (channel: string, event: { ports: readonly unknown[] }, ...args: unknown[]): void => {
    for (const l of listeners.get(channel) ?? []) l(event, ...args);
  };
  return { bridge: exposed.get('hangar') as HangarBridge, exposed, sent, invoked, listeners, posted, fire };
}

describe('electron preload bridge', () => {
  it('exposes exactly window.hangar with the agreed methods', () => {
    const { exposed, bridge } = setup();
    assert.deepEqual([...exposed.keys()], ['hangar']);
    assert.deepEqual(Object.keys(bridge).sort(), ['appInfo', 'onCoreRestarted', 'onMenu', 'openExternal', 'requestPort']);
  });

  it('requestPort sends a validated request with a fresh id and forwards the arriving port to the page', () => {
    const { bridge, sent, fire, posted } = setup();
    const id = bridge.requestPort({ kind: 'console', vm: 'debian', replay: true, extra: 'dropped' } as never);
    assert.equal(id, 'id1');
    assert.deepEqual(sent, [{ channel: 'hangar:open-port', args: [{ id: 'id1', kind: 'console', vm: 'debian', replay: true }] }]);
    const port = { fake: 'port' };
    fire('hangar:port', { ports: [port] }, { id });
    assert.deepEqual(posted, [{ message: { hangarPort: 'id1' }, origin: 'app://hangar', transfer: [port] }]);
    // The same id is not delivered twice, and ids nobody asked for are ignored.
    fire('hangar:port', { ports: [port] }, { id });
    fire('hangar:port', { ports: [port] }, { id: 'forged' });
    fire('hangar:port', { ports: [] }, { id: bridge.requestPort({ kind: 'rpc' }) });
    assert.equal(posted.length, 1);
  });

  it('uses "*" only when the page has an opaque origin', () => {
    const { bridge, fire, posted } = setup('null');
    const id = bridge.requestPort({ kind: 'rpc' });
    fire('hangar:port', { ports: [{}] }, { id });
    assert.equal(posted[0]!.origin, '*');
  });

  it('refuses bad requests before they reach main', () => {
    const { bridge, sent } = setup();
    for (const bad of [{ kind: 'shell' }, { kind: 'console', vm: 'x' }, { kind: 'console', vm: '', replay: true },
      { kind: 'console', vm: 'x'.repeat(201), replay: true }, { kind: 'console', vm: 5, replay: true }, null, 'rpc',
      { kind: 'display' }, { kind: 'display', vm: '' }, { kind: 'display', vm: 'x'.repeat(201) },
      { kind: 'rpc', connection: '' }, { kind: 'rpc', connection: 'x'.repeat(2049) }, { kind: 'display', vm: 'w', connection: 1 }]) {
      assert.throws(() => bridge.requestPort(bad as never), TypeError, JSON.stringify(bad));
    }
    assert.deepEqual(sent, []);
    assert.deepEqual(checkPortRequest({ kind: 'console', vm: 'x'.repeat(200), replay: false }).kind, 'console');
    assert.deepEqual(checkPortRequest({ kind: 'display', vm: 'w', replay: true }), { kind: 'display', vm: 'w' });
    assert.deepEqual(checkPortRequest({ kind: 'rpc', connection: 'lab', extra: 1 }), { kind: 'rpc', connection: 'lab' });
    assert.deepEqual(checkPortRequest({ kind: 'console', vm: 'w', replay: false, connection: 'qemu:///system' }), { kind: 'console', vm: 'w', replay: false, connection: 'qemu:///system' });
    assert.deepEqual(checkPortRequest({ kind: 'display', vm: 'w', connection: 'lab' }), { kind: 'display', vm: 'w', connection: 'lab' });
    assert.deepEqual(checkPortRequest({ kind: 'terminal', vm: 'w', user: 'root', cols: 90, rows: 20, extra: 1 }), { kind: 'terminal', vm: 'w', user: 'root', cols: 90, rows: 20 });
    assert.deepEqual(checkPortRequest({ kind: 'terminal', vm: '', login: true, connection: 'lab' }), { kind: 'terminal', vm: '', login: true, connection: 'lab' });
    for (const bad of [{ kind: 'terminal', vm: '' }, { kind: 'terminal', vm: 'w', cols: 80 }, { kind: 'terminal', vm: 'w', user: '' },
      { kind: 'terminal', vm: 'w', login: 'yes' }, { kind: 'terminal', vm: 'w', cols: 2.5, rows: 3 }]) {
      assert.throws(() => checkPortRequest(bad), TypeError, JSON.stringify(bad));
    }
  });

  it('openExternal passes only http(s) URLs', () => {
    const { bridge, sent } = setup();
    for (const bad of ['javascript:alert(1)', 'file:///etc/passwd', 'nope', 7]) {
      assert.throws(() => bridge.openExternal(bad as never), TypeError);
    }
    bridge.openExternal('https://www.qemu.org/');
    assert.deepEqual(sent, [{ channel: 'hangar:open-external', args: ['https://www.qemu.org/'] }]);
    assert.equal(checkExternalUrl('http://x.example/'), 'http://x.example/');
  });

  it('appInfo returns only version and electron', async () => {
    const { bridge, invoked } = setup();
    assert.deepEqual(await bridge.appInfo(), { version: '0.1.0', electron: '41.1.0' });
    assert.deepEqual(invoked, ['hangar:app-info']);
  });

  it('onCoreRestarted and onMenu call back without leaking the IPC event, and unsubscribe', () => {
    const { bridge, fire } = setup();
    const calls: unknown[][] = [];
    const off = bridge.onCoreRestarted((...a: unknown[]) => { calls.push(a); });
    const actions: string[] = [];
    bridge.onMenu((a) => actions.push(a));
    fire('hangar:core-restarted', { ports: [] });
    assert.deepEqual(calls, [[]]);
    off();
    fire('hangar:core-restarted', { ports: [] });
    assert.equal(calls.length, 1);
    fire('hangar:menu', { ports: [] }, { action: 'new-vm' });
    fire('hangar:menu', { ports: [] }, { action: 'rm -rf' });
    assert.deepEqual(actions, ['new-vm']);
    assert.throws(() => bridge.onCoreRestarted('nope' as never), TypeError);
  });
});
