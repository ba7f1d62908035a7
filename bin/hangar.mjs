#!/usr/bin/env node
// The `hangar` entry point. Runs the prebuilt bundle (dist/hangar.mjs, made by scripts/build.mjs)
// when it is newer than every source file, else the TypeScript sources through tsx.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bundle = join(root, 'dist', 'hangar.mjs');

function newestSource(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestSource(p) : statSync(p).mtimeMs);
  }
  return newest;
}

process.env.HANGAR_ENTRY ||= fileURLToPath(import.meta.url);
const coreDir = join(root, 'core');
if (existsSync(bundle) && (!existsSync(coreDir) || statSync(bundle).mtimeMs >= newestSource(coreDir))) {
  const { runCli } = await import(pathToFileURL(bundle).href);
  await runCli(process.argv.slice(2));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  const { runCli } = await import(pathToFileURL(join(coreDir, 'node', 'cli', 'main.ts')).href);
  await runCli(process.argv.slice(2));
}
