// Bundles the CLI + core into one file so `hangar` starts in tens of milliseconds, then builds
// the renderer (Vite, into dist/renderer), the Electron entry points (dist/electron) and the
// privileged host helper (dist/hangar-host-helper.mjs).
import { build } from 'esbuild';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// No stale chunks.
for (const f of ['hangar.mjs', 'hangar.mjs.map', 'chunks']) rmSync(join(root, 'dist', f), { recursive: true, force: true });
await build({
  entryPoints: [join(root, 'core/node/cli/main.ts')],
  entryNames: 'hangar',
  chunkNames: 'chunks/[name]-[hash]',
  outdir: join(root, 'dist'),
  splitting: true,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
  // Native: loaded from node_modules at run time (its .node binary cannot be bundled).
  external: ['node-pty'],
  banner: { js: "import { createRequire as __hangarCreateRequire } from 'node:module'; const require = __hangarCreateRequire(import.meta.url);" },
});

await (await import('./build-helper.mjs')).buildHostHelper();

for (const part of ['build-renderer.mjs', 'build-electron.mjs']) {
  const script = join(root, 'scripts', part);
  if (existsSync(script)) await import(script);
}
