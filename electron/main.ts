// Electron main process entry (bundled to dist/electron/main.cjs). Everything testable lives in
// app.ts and the modules it imports; this file only hands them the real Electron and paths.
import electron from 'electron';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createMainApp, registerAppScheme } from './app.ts';
import type { MainElectron } from './electron-api.ts';

// The typecheck of this assignment is what proves the real API fits the shapes the code uses.
const api: MainElectron = electron;

// dist/electron/main.cjs -> dist/electron, the app root is two levels up.
const here = __dirname;
const root = join(here, '..', '..');

registerAppScheme(api);
const mainApp = createMainApp(api, {
  paths: {
    renderer: join(root, 'dist', 'renderer'),
    preload: join(here, 'preload.cjs'),
    coreHost: join(here, 'core-host.mjs'),
    icon: join(root, 'resources', 'icon.png'),
  },
  fs: { readFileSync, writeFileSync, renameSync, mkdirSync, readFile },
  versions: process.versions,
  platform: process.platform,
  log: (m) => console.error(`hangar: ${m}`),
});
mainApp.start();
