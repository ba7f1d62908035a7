import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

interface Decision { mode: 'electron' | 'browser'; command?: string; reason?: string }
interface StartModule {
  decideLaunch(o: { env: Record<string, string | undefined>; resolveElectron: () => unknown; isExecutable: (p: string) => boolean; unavailableMarker: boolean }): Decision;
}

// A variable specifier: scripts/start.mjs is plain JavaScript without type declarations.
const startPath = '../../scripts/start.mjs';
const { decideLaunch } = (await import(startPath)) as StartModule;

const binary = '/repo/node_modules/electron/dist/electron';
const display = { DISPLAY: ':0' };

describe('npm start: desktop app or browser mode', () => {
  it('starts Electron when its binary exists and a display is there', () => {
    const d = decideLaunch({ env: display, resolveElectron: () => binary, isExecutable: (p) => p === binary, unavailableMarker: false });
    assert.deepEqual(d, { mode: 'electron', command: binary });
    const w = decideLaunch({ env: { WAYLAND_DISPLAY: 'wayland-0' }, resolveElectron: () => binary, isExecutable: () => true, unavailableMarker: false });
    assert.equal(w.mode, 'electron');
  });

  it('falls back to browser mode when the electron package throws (offline install)', () => {
    const d = decideLaunch({ env: display, resolveElectron: () => { throw new Error('Electron failed to install correctly'); }, isExecutable: () => true, unavailableMarker: false });
    assert.equal(d.mode, 'browser');
    assert.match(d.reason!, /Electron binary not installed/);
  });

  it('falls back when the binary path is missing', () => {
    const d = decideLaunch({ env: display, resolveElectron: () => binary, isExecutable: () => false, unavailableMarker: false });
    assert.equal(d.mode, 'browser');
    assert.match(d.reason!, /missing/);
  });

  it('falls back without a display', () => {
    const d = decideLaunch({ env: {}, resolveElectron: () => binary, isExecutable: () => true, unavailableMarker: false });
    if (process.platform === 'linux') {
      assert.equal(d.mode, 'browser');
      assert.match(d.reason!, /display/);
    }
  });

  it('honours HANGAR_BROWSER_MODE=1', () => {
    const d = decideLaunch({ env: { ...display, HANGAR_BROWSER_MODE: '1' }, resolveElectron: () => binary, isExecutable: () => true, unavailableMarker: false });
    assert.equal(d.mode, 'browser');
  });
});
