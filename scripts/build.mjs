// Bundles the CLI + core into one file so `hangar` starts in tens of milliseconds.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
rmSync(join(root, 'dist'), { recursive: true, force: true }); // no stale chunks
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
  banner: { js: "import { createRequire as __hangarCreateRequire } from 'node:module'; const require = __hangarCreateRequire(import.meta.url);" },
});
