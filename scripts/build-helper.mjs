// Bundles the privileged host helper into one file (dist/hangar-host-helper.mjs): a packaged app
// has no TypeScript sources, and sudo/pkexec run it with the app's own node (Electron as node).
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export function buildHostHelper(outfile = join(root, 'dist', 'hangar-host-helper.mjs')) {
  return build({
    entryPoints: [join(root, 'core/node/host/host-helper-main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
    banner: { js: "import { createRequire as __hangarCreateRequire } from 'node:module'; const require = __hangarCreateRequire(import.meta.url);" },
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildHostHelper();
