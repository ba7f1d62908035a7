// virtiofs shares: a virtiofsd per share, supervised next to QEMU like qemu-storage-daemon.
// virtiofsd serves the host folder over vhost-user on a socket in the VM's runtime dir; QEMU's
// vhost-user-fs front end connects to it and virtiofsd reads guest memory directly (shared memfd).
// QEMU 7.2's C virtiofsd accepts its one connection before it would daemonize, so it is run in
// the foreground in its own session (it outlives a restarted core, like QEMU) and Hangar writes
// its pidfile. It exits by itself when QEMU goes away; every stop path also stops it, after
// checking /proc/PID/cmdline names our socket.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, statSync, writeSync } from 'node:fs';
import { readFile, readdir, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { HangarError } from '../../common/errors.ts';
import type { ShareDefinition } from '../../common/model.ts';
import { findBinary } from '../host/binaries.ts';
import { killBackend, procArgs } from './backend-process.ts';
import { isAlive, readPidfile, sleep } from './qemu-process.ts';
import type { Sidecar } from './sidecar.ts';

export interface VirtiofsdPaths {
  /** The VM folder: virtiofsd logs to <vmDir>/logs/virtiofsd-<shareId>.log. */
  vmDir: string;
  socket: string;
  pidfile: string;
}

export const VIRTIOFSD_FIX = 'install it: apt-get install qemu-system-common (Debian 12 ships QEMU\'s virtiofsd in /usr/lib/qemu), or the virtiofsd package (Debian 13+); or use driver virtio-9p for the share';

/** Debian 12's qemu-system-common ships QEMU's C virtiofsd outside PATH, in /usr/lib/qemu (a fallback dir of findBinary). */
export function findVirtiofsd(): string | null {
  return findBinary('virtiofsd');
}

export function requireVirtiofsd(): string {
  const path = findVirtiofsd();
  if (!path) throw new HangarError('host-missing', 'virtiofsd not found: virtiofs shared folders need it', VIRTIOFSD_FIX);
  return path;
}

export function virtiofsdLogFile(vmDir: string, shareId: string): string {
  return join(vmDir, 'logs', `virtiofsd-${shareId}.log`);
}

/** virtiofsd's argv: the socket, the folder (a "," would split -o, so it is doubled as QEMU's options do). */
export function virtiofsdArgs(share: ShareDefinition, p: Pick<VirtiofsdPaths, 'socket'>): string[] {
  return [`--socket-path=${p.socket}`, '-o', `source=${share.source.replaceAll(',', '\\,')}`, '-o', 'cache=auto'];
}

function virtiofsdSocketOf(pid: number): string | null {
  const args = procArgs(pid);
  if (!args || !/(^|\/)virtiofsd$/.test(args[0] ?? '')) return null;
  const a = args.find((x) => x.startsWith('--socket-path='));
  return a ? a.slice('--socket-path='.length) : null;
}

export function isOurVirtiofsd(pid: number, socket: string): boolean {
  return virtiofsdSocketOf(pid) === socket;
}

export async function startVirtiofsd(share: ShareDefinition, p: VirtiofsdPaths, timeoutMs = 10_000): Promise<number> {
  const binary = requireVirtiofsd();
  mkdirSync(dirname(p.socket), { recursive: true });
  await stopVirtiofsd(p);
  const log = virtiofsdLogFile(p.vmDir, share.id);
  mkdirSync(dirname(log), { recursive: true, mode: 0o700 });
  const fd = openSync(log, 'a', 0o600);
  let exit: string | null = null;
  let pid: number;
  try {
    writeSync(fd, `---- virtiofsd for share "${share.id}" ${new Date().toISOString()}\n`);
    const child = spawn(binary, virtiofsdArgs(share, p), { detached: true, stdio: ['ignore', fd, fd] });
    child.once('exit', (code, signal) => { exit = signal ? `killed by ${signal}` : `exit code ${code}`; });
    child.once('error', (e) => { exit = e.message; });
    child.unref();
    if (child.pid === undefined) throw new HangarError('io-error', `could not run ${binary}`);
    pid = child.pid;
  } finally {
    closeSync(fd);
  }
  await writeFile(p.pidfile, `${pid}\n`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (statSync(p.socket, { throwIfNoEntry: false })?.isSocket()) return pid;
    if (exit !== null || Date.now() > deadline) {
      await stopVirtiofsd(p);
      const tail = (await readFile(log, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join('; ');
      throw new HangarError(exit !== null ? 'io-error' : 'timeout',
        `virtiofsd for share "${share.id}" (${share.source}) ${exit !== null ? `failed to start (${exit})` : `did not create its socket within ${timeoutMs / 1000} s`}: ${tail}`,
        `see ${log}; QEMU's virtiofsd needs root (it sandboxes itself in namespaces), else use driver virtio-9p`);
    }
    await sleep(20);
  }
}

export async function stopVirtiofsd(p: Pick<VirtiofsdPaths, 'socket' | 'pidfile'>): Promise<void> {
  const pid = await readPidfile(p.pidfile);
  if (pid !== null && isOurVirtiofsd(pid, p.socket)) await killBackend(pid, () => isOurVirtiofsd(pid, p.socket));
  for (const f of [p.socket, p.pidfile]) await unlink(f).catch(() => {});
}

export async function runningVirtiofsd(p: Pick<VirtiofsdPaths, 'socket' | 'pidfile'>): Promise<number | null> {
  const pid = await readPidfile(p.pidfile);
  return pid !== null && isAlive(pid) && isOurVirtiofsd(pid, p.socket) ? pid : null;
}

/** Stops every virtiofsd of a VM, found by the pidfiles in its runtime dir (not by its definition). */
export async function stopAllVirtiofsd(vmRuntimeDir: string): Promise<void> {
  const names = await readdir(vmRuntimeDir).catch(() => [] as string[]);
  for (const name of names) {
    if (!/^vfs\d+\.pid$/.test(name)) continue;
    const pidfile = join(vmRuntimeDir, name);
    const pid = await readPidfile(pidfile);
    const socket = pid === null ? null : virtiofsdSocketOf(pid);
    if (pid !== null && socket !== null && dirname(socket) === vmRuntimeDir) await killBackend(pid, () => isOurVirtiofsd(pid, socket));
    await unlink(pidfile).catch(() => {});
  }
  for (const name of names) if (/^vfs\d+\.sock$/.test(name)) await unlink(join(vmRuntimeDir, name)).catch(() => {});
}

/** One virtiofsd per virtiofs share, numbered by the share's position. */
export const virtiofsdSidecar: Sidecar = {
  name: 'virtiofsd',
  wanted: (def) => def.shares.some((s) => s.driver === 'virtiofs'),
  check: async () => { requireVirtiofsd(); },
  async start(ctx) {
    for (const [i, share] of ctx.def.shares.entries()) {
      if (share.driver === 'virtiofs') await startVirtiofsd(share, { vmDir: ctx.vmDir, socket: ctx.paths.virtiofsdSocket(i), pidfile: ctx.paths.virtiofsdPidfile(i) });
    }
  },
  stop: (ctx) => stopAllVirtiofsd(ctx.paths.dir),
};
