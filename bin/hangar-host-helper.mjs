#!/usr/bin/env node
// Privileged helper for host device changes (vfio-pci binding, SR-IOV VFs, mdevs), run by the
// core through sudo or pkexec with the same node binary. Takes verbs, never raw sysfs writes:
//   hangar-host-helper [--sys-root DIR] bind-vfio ADDR | release-vfio ADDR | set-numvfs PF N |
//     create-mdev PARENT TYPE UUID | remove-mdev UUID | vf-config IFNAME VF [mac=M] [vlan=V]
// Runs the bundle (dist/hangar-host-helper.mjs) when it is newer than every source file, else the
// TypeScript sources through tsx (as bin/hangar.mjs does).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bundle = join(root, 'dist', 'hangar-host-helper.mjs');
const coreDir = join(root, 'core');

function newestSource(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestSource(p) : statSync(p).mtimeMs);
  }
  return newest;
}

if (existsSync(bundle) && (!existsSync(coreDir) || statSync(bundle).mtimeMs >= newestSource(coreDir))) {
  await import(pathToFileURL(bundle).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(join(coreDir, 'node', 'host', 'host-helper-main.ts')).href);
}
