// Remembers the main window's size and position in <userData>/window-state.json. A saved
// position is used only while it is still on a connected display; a corrupt file is ignored;
// writes are atomic (temp file + rename) so a crash never leaves half a file.
import { dirname } from 'node:path';
import type { BrowserWindowLike, Rectangle } from './electron-api.ts';

export interface WindowState {
  x?: number;
  y?: number;
  width: number;
  height: number;
  maximized: boolean;
}

export interface WindowStateFs {
  readFileSync(path: string, encoding: 'utf8'): string;
  writeFileSync(path: string, data: string, options: { mode: number }): void;
  renameSync(from: string, to: string): void;
  mkdirSync(path: string, options: { recursive: true }): unknown;
}

export const DEFAULT_WINDOW_STATE: WindowState = { width: 1200, height: 800, maximized: false };
const MIN_SIZE = 400;
const MAX_SIZE = 16384;
/** How much of the window's top edge must be on a display to count as visible. */
const MIN_VISIBLE_W = 100;
const MIN_VISIBLE_H = 40;

function isInt(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

/** Whether enough of the window's top strip (where the title bar is) lies on one display. */
export function isVisibleOnSomeDisplay(b: Rectangle, workAreas: readonly Rectangle[]): boolean {
  const strip = { x: b.x, y: b.y, width: b.width, height: Math.min(b.height, MIN_VISIBLE_H) };
  return workAreas.some((a) => {
    const w = Math.min(strip.x + strip.width, a.x + a.width) - Math.max(strip.x, a.x);
    const h = Math.min(strip.y + strip.height, a.y + a.height) - Math.max(strip.y, a.y);
    return w >= Math.min(MIN_VISIBLE_W, b.width) && h >= Math.min(MIN_VISIBLE_H, b.height);
  });
}

/** The state to open the window with: the saved one when valid and visible, else defaults. */
export function loadWindowState(file: string, fs: WindowStateFs, workAreas: readonly Rectangle[]): WindowState {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return { ...DEFAULT_WINDOW_STATE };
  }
  if (!raw || typeof raw !== 'object') return { ...DEFAULT_WINDOW_STATE };
  const o = raw as Record<string, unknown>;
  if (!isInt(o.width, MIN_SIZE, MAX_SIZE) || !isInt(o.height, MIN_SIZE, MAX_SIZE)) return { ...DEFAULT_WINDOW_STATE };
  const state: WindowState = { width: o.width, height: o.height, maximized: o.maximized === true };
  const lim = 1_000_000;
  if (isInt(o.x, -lim, lim) && isInt(o.y, -lim, lim)
    && isVisibleOnSomeDisplay({ x: o.x, y: o.y, width: o.width, height: o.height }, workAreas)) {
    state.x = o.x;
    state.y = o.y;
  }
  return state;
}

export function saveWindowState(file: string, fs: WindowStateFs, state: WindowState): void {
  fs.mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/** Saves the window's normal bounds on resize/move (debounced) and when it closes. */
export function trackWindowState(win: BrowserWindowLike, save: (s: WindowState) => void, debounceMs = 500): void {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const snapshot = (): void => {
    if (timer) { clearTimeout(timer); timer = null; }
    if (win.isDestroyed()) return;
    const b = win.getNormalBounds();
    try {
      save({ x: b.x, y: b.y, width: b.width, height: b.height, maximized: win.isMaximized() });
    } catch {
      /* a read-only profile must not break the window */
    }
  };
  const later = (): void => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(snapshot, debounceMs);
    timer.unref?.();
  };
  win.on('resize', later);
  win.on('move', later);
  win.on('close', snapshot);
}
