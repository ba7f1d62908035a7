// Bundles the Electron entry points into dist/electron (imported by scripts/build.mjs, or run
// on its own): main and preload as CommonJS (a sandboxed preload must be CJS; main is CJS so it
// starts without the ESM loader), the core host as ESM for the utility process.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'electron');
rmSync(out, { recursive: true, force: true });

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
  external: ['electron', 'node-pty'], // node-pty: a native module, loaded from node_modules (asarUnpack)
};

await Promise.all([
  build({
    ...common,
    entryPoints: [join(root, 'electron/main.ts')],
    outfile: join(out, 'main.cjs'),
    format: 'cjs',
  }),
  build({
    ...common,
    entryPoints: [join(root, 'electron/preload.ts')],
    outfile: join(out, 'preload.cjs'),
    format: 'cjs',
    // The sandboxed preload has browser globals, not Node's.
    platform: 'browser',
    target: 'chrome130',
  }),
  build({
    ...common,
    entryPoints: [join(root, 'electron/core-host.ts')],
    outfile: join(out, 'core-host.mjs'),
    format: 'esm',
    banner: { js: "import { createRequire as __hangarCreateRequire } from 'node:module'; const require = __hangarCreateRequire(import.meta.url);" },
  }),
]);
