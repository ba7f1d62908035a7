// Builds the renderer (Vue + xterm.js) into dist/renderer with Vite's JS API. Imported by
// scripts/build.mjs; also runnable on its own: node scripts/build-renderer.mjs
import { join } from 'node:path';
import { build } from 'vite';

const root = join(import.meta.dirname, '..');
await build({
  configFile: join(root, 'renderer', 'vite.config.ts'),
  logLevel: 'warn',
});
