// Display helpers (pure, no DOM).
import type { VmState } from '../../../core/common/state.ts';

export function formatMemory(mib: number | undefined): string {
  if (mib === undefined) return '—';
  if (mib >= 1024 && mib % 1024 === 0) return `${mib / 1024} GiB`;
  if (mib >= 1024) return `${(mib / 1024).toFixed(1)} GiB`;
  return `${mib} MiB`;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** An icon (decorative: the state's text is always shown beside it) and a tone for colour. */
export const stateLook: Record<VmState, { icon: string; tone: 'ok' | 'idle' | 'busy' | 'warn' | 'bad' }> = {
  stopped: { icon: '■', tone: 'idle' },
  starting: { icon: '◔', tone: 'busy' },
  running: { icon: '▶', tone: 'ok' },
  paused: { icon: '⏸', tone: 'warn' },
  'shutting-down': { icon: '◔', tone: 'busy' },
  rebooting: { icon: '↻', tone: 'busy' },
  stopping: { icon: '◔', tone: 'busy' },
  crashed: { icon: '✖', tone: 'bad' },
  'guest-error': { icon: '⚠', tone: 'bad' },
  saved: { icon: '◧', tone: 'idle' },
  broken: { icon: '⚠', tone: 'bad' },
};

/** States with a live serial console (a QEMU process that is past starting). */
export function hasLiveConsole(state: VmState | undefined): boolean {
  return state === 'running' || state === 'paused' || state === 'shutting-down' || state === 'rebooting'
    || state === 'guest-error' || state === 'stopping';
}

export { shellCommand, shellQuote } from '../../../core/common/shell.ts';
