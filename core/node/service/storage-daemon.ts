// vhost-user-blk disks: a qemu-storage-daemon per disk, supervised next to QEMU like passt. The
// daemon opens the image and serves it as a vhost-user-blk export on a unix socket in the VM's
// runtime dir; QEMU's vhost-user-blk-pci connects to it and the daemon reads and writes guest
// memory directly (shared: memory-backend-memfd,share=on). Started daemonized before QEMU,
// stopped on every path QEMU stops by (after checking /proc/PID/cmdline names our socket); a
// restarted core leaves a running VM's daemons alone.
import { statSync } from 'node:fs';
import { mkdir, readdir, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { HangarError } from '../../common/errors.ts';
import type { DiskDefinition } from '../../common/model.ts';
import { requireBinary } from '../host/binaries.ts';
import { diskBlockdevs, diskNodeNames } from '../qemu/devices/disk.ts';
import { killBackend, procArgs, runDaemonizing } from './backend-process.ts';
import { isAlive, readPidfile, sleep } from './qemu-process.ts';
import type { Sidecar } from './sidecar.ts';

export interface QsdPaths {
  vmDir: string;
  socket: string;
  pidfile: string;
}

/** The daemon's argv: the disk's own file + format nodes (cache, aio, discard as for QEMU) and the export. */
export function qsdArgs(disk: DiskDefinition, p: QsdPaths): string[] {
  const nodes = diskNodeNames(disk.id);
  const args: string[] = [];
  for (const b of diskBlockdevs(disk)) args.push('--blockdev', JSON.stringify(b));
  args.push('--export', JSON.stringify({
    type: 'vhost-user-blk', id: `${disk.id}-export`, 'node-name': nodes.format,
    addr: { type: 'unix', path: p.socket }, writable: !disk.readOnly,
  }));
  args.push('--pidfile', p.pidfile, '--daemonize');
  return args;
}

function qsdSocketOf(pid: number): string | null {
  const args = procArgs(pid);
  if (!args || !/(^|\/)qemu-storage-daemon$/.test(args[0] ?? '')) return null;
  for (const a of args) {
    const m = /"type":"vhost-user-blk".*"path":"([^"]+)"/.exec(a);
    if (m) return JSON.parse(`"${m[1]}"`) as string;
  }
  return null;
}

export function isOurQsd(pid: number, socket: string): boolean {
  return qsdSocketOf(pid) === socket;
}

export async function startQsd(disk: DiskDefinition, p: QsdPaths, timeoutMs = 10_000): Promise<number> {
  const binary = requireBinary('qemu-storage-daemon');
  await mkdir(dirname(p.socket), { recursive: true });
  await stopQsd(p);
  try {
    await runDaemonizing(binary, qsdArgs(disk, p), timeoutMs);
  } catch (e) {
    throw new HangarError('io-error', `qemu-storage-daemon for disk "${disk.id}" (${disk.file}) failed to start: ${(e as Error).message}`,
      'check the image (qemu-img check), that no other program holds it, and its permissions');
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pid = await readPidfile(p.pidfile);
    if (pid !== null && isOurQsd(pid, p.socket) && statSync(p.socket, { throwIfNoEntry: false })?.isSocket()) return pid;
    if (Date.now() > deadline) {
      await stopQsd(p);
      throw new HangarError('timeout', `qemu-storage-daemon for disk "${disk.id}" did not create its socket ${p.socket} within ${timeoutMs / 1000} s`);
    }
    await sleep(20);
  }
}

export async function stopQsd(p: Pick<QsdPaths, 'socket' | 'pidfile'>): Promise<void> {
  const pid = await readPidfile(p.pidfile);
  if (pid !== null && isOurQsd(pid, p.socket)) await killBackend(pid, () => isOurQsd(pid, p.socket));
  for (const f of [p.socket, p.pidfile]) await unlink(f).catch(() => {});
}

export async function runningQsd(p: Pick<QsdPaths, 'socket' | 'pidfile'>): Promise<number | null> {
  const pid = await readPidfile(p.pidfile);
  return pid !== null && isAlive(pid) && isOurQsd(pid, p.socket) ? pid : null;
}

/** Stops every storage daemon of a VM, found by the pidfiles in its runtime dir (not by its definition). */
export async function stopAllQsd(vmRuntimeDir: string): Promise<void> {
  const names = await readdir(vmRuntimeDir).catch(() => [] as string[]);
  for (const name of names) {
    if (!/^qsd\d+\.pid$/.test(name)) continue;
    const pidfile = join(vmRuntimeDir, name);
    const pid = await readPidfile(pidfile);
    const socket = pid === null ? null : qsdSocketOf(pid);
    if (pid !== null && socket !== null && dirname(socket) === vmRuntimeDir) {
      await killBackend(pid, () => isOurQsd(pid, socket));
      await unlink(socket).catch(() => {});
    }
    await unlink(pidfile).catch(() => {});
  }
  for (const name of names) if (/^qsd\d+\.sock$/.test(name)) await unlink(join(vmRuntimeDir, name)).catch(() => {});
}

/** One qemu-storage-daemon per vhost-user-blk disk, numbered by the disk's position. */
export const storageDaemonSidecar: Sidecar = {
  name: 'qemu-storage-daemon',
  wanted: (def) => def.disks.some((d) => d.bus === 'vhost-user-blk'),
  check: async () => { requireBinary('qemu-storage-daemon'); },
  async start(ctx) {
    for (const [i, disk] of ctx.def.disks.entries()) {
      if (disk.bus === 'vhost-user-blk') await startQsd(disk, { vmDir: ctx.vmDir, socket: ctx.paths.qsdSocket(i), pidfile: ctx.paths.qsdPidfile(i) });
    }
  },
  stop: (ctx) => stopAllQsd(ctx.paths.dir),
};
