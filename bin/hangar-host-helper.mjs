#!/usr/bin/env node
// Privileged helper for host device changes (vfio-pci binding, SR-IOV VFs, mdevs), run by the
// core through sudo or pkexec with the same node binary. Takes verbs, never raw sysfs writes:
//   hangar-host-helper [--sys-root DIR] bind-vfio ADDR | release-vfio ADDR | set-numvfs PF N |
//     create-mdev PARENT TYPE UUID | remove-mdev UUID | vf-config IFNAME VF [mac=M] [vlan=V]
// Always runs the TypeScript sources through tsx: the bundle does not include it.
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { register } = await import('tsx/esm/api');
register();
const { hostHelperMain } = await import(pathToFileURL(join(root, 'core', 'node', 'host', 'host-helper.ts')).href);
const r = await hostHelperMain(process.argv.slice(2));
process.stdout.write(r.stdout);
process.stderr.write(r.stderr);
process.exitCode = r.code;
