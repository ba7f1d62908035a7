// `npm start`: the desktop app when Electron can run here, else browser mode (`hangar serve`).
// Electron can run when its binary was installed (the electron package's index.js throws, or
// names a missing file, after an ELECTRON_SKIP_BINARY_DOWNLOAD install) and a display exists.
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Decides how to start. `resolveElectron` returns the binary path (the electron package's
 * export) or throws; `isExecutable` tells whether that file exists and may be run.
 * Returns { mode: 'electron', command } or { mode: 'browser', reason }.
 */
export function decideLaunch({ env, resolveElectron, isExecutable, unavailableMarker }) {
  if (env.HANGAR_BROWSER_MODE === '1') return { mode: 'browser', reason: 'HANGAR_BROWSER_MODE=1 is set' };
  let binary;
  try {
    binary = resolveElectron();
  } catch {
    return { mode: 'browser', reason: unavailableMarker
      ? 'Electron binary not installed (it could not be downloaded here)'
      : 'Electron binary not installed (offline install)' };
  }
  if (typeof binary !== 'string' || binary === '' || !isExecutable(binary)) {
    return { mode: 'browser', reason: `Electron binary not installed (${binary || 'no path'} is missing)` };
  }
  if (!env.DISPLAY && !env.WAYLAND_DISPLAY && process.platform === 'linux') {
    return { mode: 'browser', reason: 'no display (neither DISPLAY nor WAYLAND_DISPLAY is set)' };
  }
  return { mode: 'electron', command: binary };
}

function isExecutable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Runs a child with inherited stdio, forwarding SIGINT/SIGTERM; exits with its status. */
function run(command, args) {
  const child = spawn(command, args, { stdio: 'inherit', cwd: root, env: process.env });
  const forward = (sig) => () => { if (child.exitCode === null) child.kill(sig); };
  process.on('SIGINT', forward('SIGINT'));
  process.on('SIGTERM', forward('SIGTERM'));
  child.on('error', (e) => {
    console.error(`start: could not run ${command}: ${e.message}`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => process.exit(code ?? 128 + (osConstants.signals[signal] ?? 1)));
}

function main() {
  const require = createRequire(import.meta.url);
  const decision = decideLaunch({
    env: process.env,
    resolveElectron: () => require('electron'),
    isExecutable,
    unavailableMarker: existsSync(join(root, 'node_modules', '.electron-unavailable')),
  });
  if (decision.mode === 'electron') {
    run(decision.command, [root, ...process.argv.slice(2)]);
  } else {
    console.log(`${decision.reason}; starting browser mode`);
    run(process.execPath, [join(root, 'bin', 'hangar.mjs'), 'serve', ...process.argv.slice(2)]);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
