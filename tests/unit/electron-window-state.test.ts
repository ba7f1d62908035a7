import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DEFAULT_WINDOW_STATE, isVisibleOnSomeDisplay, loadWindowState, saveWindowState, trackWindowState,
} from '../../electron/window-state.ts';
import type { WindowStateFs } from '../../electron/window-state.ts';
import { FakeWindow } from '../../electron/testing/fake-electron.ts';

const realFs: WindowStateFs = { readFileSync, writeFileSync, renameSync, mkdirSync };
const screen = [{ x: 0, y: 0, width: 1920, height: 1080 }];

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'hangar-winstate-'));
}

describe('electron window state', () => {
  it('restores saved bounds that are on a display', () => {
    const dir = tmp();
    try {
      const file = join(dir, 'window-state.json');
      saveWindowState(file, realFs, { x: 100, y: 50, width: 1000, height: 700, maximized: true });
      assert.deepEqual(loadWindowState(file, realFs, screen), { x: 100, y: 50, width: 1000, height: 700, maximized: true });
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });

  it('ignores a position that is off every display but keeps the size', () => {
    const dir = tmp();
    try {
      const file = join(dir, 'window-state.json');
      saveWindowState(file, realFs, { x: 3000, y: 200, width: 1000, height: 700, maximized: false });
      assert.deepEqual(loadWindowState(file, realFs, screen), { width: 1000, height: 700, maximized: false });
      // A second monitor to the right makes it visible again.
      assert.equal(loadWindowState(file, realFs, [...screen, { x: 1920, y: 0, width: 2560, height: 1440 }]).x, 3000);
      // Title bar above the top of the screen: not reachable.
      assert.equal(isVisibleOnSomeDisplay({ x: 100, y: -500, width: 800, height: 400 }, screen), false);
      // Only a sliver on screen: not enough.
      assert.equal(isVisibleOnSomeDisplay({ x: 1900, y: 10, width: 800, height: 400 }, screen), false);
      assert.equal(isVisibleOnSomeDisplay({ x: 1700, y: 10, width: 800, height: 400 }, screen), true);
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });

  it('ignores a corrupt or implausible file', () => {
    const dir = tmp();
    try {
      const file = join(dir, 'window-state.json');
      for (const content of ['{not json', '[]', 'null', '{"width":"big","height":700}', '{"width":50,"height":50}',
        '{"width":1e9,"height":700}', '{"width":1000.5,"height":700}']) {
        writeFileSync(file, content);
        assert.deepEqual(loadWindowState(file, realFs, screen), DEFAULT_WINDOW_STATE, content);
      }
      assert.deepEqual(loadWindowState(join(dir, 'missing.json'), realFs, screen), DEFAULT_WINDOW_STATE);
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });

  it('saves atomically: a temp file renamed over the target, nothing left behind', () => {
    const ops: string[] = [];
    const fakeFs: WindowStateFs = {
      readFileSync: () => { throw new Error('unused'); },
      mkdirSync: (p) => { ops.push(`mkdir ${p}`); },
      writeFileSync: (p, _d, o) => { ops.push(`write ${p} ${o.mode.toString(8)}`); },
      renameSync: (a, b) => { ops.push(`rename ${a} -> ${b}`); },
    };
    saveWindowState('/u/window-state.json', fakeFs, { width: 900, height: 600, maximized: false });
    const tmpName = `/u/window-state.json.${process.pid}.tmp`;
    assert.deepEqual(ops, ['mkdir /u', `write ${tmpName} 600`, `rename ${tmpName} -> /u/window-state.json`]);

    const dir = tmp();
    try {
      const file = join(dir, 'sub', 'window-state.json');
      saveWindowState(file, realFs, { x: 1, y: 2, width: 900, height: 600, maximized: false });
      assert.deepEqual(readdirSync(join(dir, 'sub')), ['window-state.json']);
      assert.equal(JSON.parse(readFileSync(file, 'utf8')).width, 900);
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });

  it('tracks the window: saves normal bounds on close', () => {
    const win = new FakeWindow({ x: 10, y: 20, width: 1111, height: 777 });
    const saved: unknown[] = [];
    trackWindowState(win, (s) => saved.push(s));
    win.maximized = true;
    win.emit('close');
    assert.deepEqual(saved, [{ x: 10, y: 20, width: 1111, height: 777, maximized: true }]);
  });
});
