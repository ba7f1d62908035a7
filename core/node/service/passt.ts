// Rootless user-mode networking for a NIC: a passt process per passt NIC, supervised next to
// QEMU like swtpm. passt serves a unix socket in the VM's runtime dir, QEMU's stream netdev
// connects to it; passt translates the guest's frames to ordinary host sockets (no privileges,
// no tap device) and binds the NIC's port forwards itself. It is started (daemonized, with
// --one-off so it ends when QEMU drops the connection) before QEMU, and stopped on every path
// QEMU stops by, killing the pid from its pidfile after checking /proc/PID/cmdline really is the
// passt serving that socket. Like QEMU, it outlives a restarted core: a running VM's passt is left alone.
//
// Run as root, Debian 12's passt (0.0~git20230309) switches to user "nobody" before it opens
// its --pid file, which then cannot be created in Hangar's private (0700) runtime dir ("PID file
// open: Permission denied"). As root Hangar therefore passes --runas 0: passt still confines
// itself (own user, PID and mount namespaces, every capability dropped, seccomp).
import { statSync } from 'node:fs';
import { mkdir, readdir, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { HangarError } from '../../common/errors.ts';
import type { PortForward } from '../../common/model.ts';
import { requireBinary } from '../host/binaries.ts';
import { killBackend, procArgs, runDaemonizing } from './backend-process.ts';
import { isAlive, readPidfile, sleep } from './qemu-process.ts';
import type { Sidecar } from './sidecar.ts';

export interface PasstPaths {
  /** The VM folder: passt logs to <vmDir>/logs/passt-<nicId>.log. */
  vmDir: string;
  nicId: string;
  /** The unix socket passt listens on and QEMU's stream netdev connects to. */
  socket: string;
  pidfile: string;
}

export interface PasstOptions {
  /** The effective uid passt is started with (default: this process's); 0 adds --runas 0 (see above). */
  euid?: number;
}

export function passtLogFile(vmDir: string, nicId: string): string {
  return join(vmDir, 'logs', `passt-${nicId}.log`);
}

/** passt's port spec for one forward: [ADDRESS/]HOSTPORT:GUESTPORT (no address = every host address). */
export function passtPortSpec(f: PortForward): string {
  return `${f.hostAddress ? `${f.hostAddress}/` : ''}${f.hostPort}:${f.guestPort}`;
}

export function passtArgs(p: PasstPaths, forwards: readonly PortForward[], opts: PasstOptions = {}): string[] {
  const euid = opts.euid ?? process.geteuid?.() ?? -1;
  const args = [
    '--socket', p.socket,
    '--pid', p.pidfile,
    '--log-file', passtLogFile(p.vmDir, p.nicId),
    '--one-off',
  ];
  if (euid === 0) args.push('--runas', '0');
  for (const f of forwards) args.push(f.protocol === 'udp' ? '-u' : '-t', passtPortSpec(f));
  return args;
}

/** Is PID the passt serving `socket`? (Guards against a reused pid.) */
export function isOurPasst(pid: number, socket: string): boolean {
  const args = passtCmdline(pid);
  if (!args) return false;
  const i = args.indexOf('--socket');
  return i >= 0 && args[i + 1] === socket;
}

/** PID's argv when it is a passt process (passt re-executes itself as passt.avx2 with the same argv). */
function passtCmdline(pid: number): string[] | null {
  const args = procArgs(pid);
  return args && /(^|\/)passt(\.avx2)?$/.test(args[0] ?? '') ? args : null;
}

/** Starts passt for one NIC and waits for its socket. Throws a clear error (with the fix) otherwise. */
export async function startPasst(p: PasstPaths, forwards: readonly PortForward[], timeoutMs = 10_000, opts: PasstOptions = {}): Promise<number> {
  const binary = requireBinary('passt');
  const log = passtLogFile(p.vmDir, p.nicId);
  await mkdir(dirname(log), { recursive: true });
  await stopPasst(p); // a leftover of an earlier run must not hold the socket
  try {
    await runDaemonizing(binary, passtArgs(p, forwards, opts), timeoutMs);
  } catch (e) {
    const msg = (e as Error).message;
    const fix = /bind/i.test(msg)
      ? `a forwarded host port is in use or not allowed (ports below 1024 need privileges): change the NIC's port forwards; see ${log}`
      : `see ${log}`;
    throw new HangarError('io-error', `passt (NIC "${p.nicId}") failed to start: ${msg}`, fix);
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pid = await readPidfile(p.pidfile);
    if (pid !== null && isOurPasst(pid, p.socket) && statSync(p.socket, { throwIfNoEntry: false })?.isSocket()) return pid;
    if (Date.now() > deadline) {
      await stopPasst(p);
      throw new HangarError('timeout', `passt (NIC "${p.nicId}") did not create its socket ${p.socket} within ${timeoutMs / 1000} s`, `see ${log}`);
    }
    await sleep(20);
  }
}

/** Stops this NIC's passt if one runs (TERM, then KILL), and removes its socket and pidfile. */
export async function stopPasst(p: Pick<PasstPaths, 'socket' | 'pidfile'>): Promise<void> {
  const pid = await readPidfile(p.pidfile);
  if (pid !== null && isOurPasst(pid, p.socket)) await killBackend(pid, () => isOurPasst(pid, p.socket));
  for (const f of [p.socket, p.pidfile]) await unlink(f).catch(() => {});
}

/** The pid of this NIC's running passt, or null. */
export async function runningPasst(p: Pick<PasstPaths, 'socket' | 'pidfile'>): Promise<number | null> {
  const pid = await readPidfile(p.pidfile);
  return pid !== null && isAlive(pid) && isOurPasst(pid, p.socket) ? pid : null;
}

const PASST_PIDFILE_RE = /^passt\d+\.pid$/;

/**
 * Stops every passt of a VM, found by the pidfiles in its runtime dir (not by its definition,
 * which may have changed since the VM started): each one whose process serves a socket in that
 * dir is stopped, and its socket and pidfile are removed.
 */
export async function stopAllPasst(vmRuntimeDir: string): Promise<void> {
  const names = await readdir(vmRuntimeDir).catch(() => [] as string[]);
  for (const name of names) {
    if (!PASST_PIDFILE_RE.test(name)) continue;
    const pidfile = join(vmRuntimeDir, name);
    const pid = await readPidfile(pidfile);
    const args = pid === null ? null : passtCmdline(pid);
    const i = args?.indexOf('--socket') ?? -1;
    const socket = i >= 0 ? args![i + 1] : undefined;
    if (pid !== null && socket !== undefined && dirname(socket) === vmRuntimeDir) {
      await killBackend(pid, () => isOurPasst(pid, socket));
      await unlink(socket).catch(() => {});
    }
    await unlink(pidfile).catch(() => {});
  }
  // Sockets whose passt is gone (it leaves its socket behind when it ends).
  for (const name of names) if (/^passt\d+\.sock$/.test(name)) await unlink(join(vmRuntimeDir, name)).catch(() => {});
}

/** One passt per passt NIC, numbered by the NIC's position (its socket is on QEMU's command line by that number). */
export const passtSidecar: Sidecar = {
  name: 'passt',
  wanted: (def) => def.nics.some((n) => n.network.type === 'passt'),
  check: async () => { requireBinary('passt'); },
  async start(ctx) {
    for (const [i, nic] of ctx.def.nics.entries()) {
      if (nic.network.type !== 'passt') continue;
      await startPasst({ vmDir: ctx.vmDir, nicId: nic.id, socket: ctx.paths.passtSocket(i), pidfile: ctx.paths.passtPidfile(i) }, nic.network.portForwards);
    }
  },
  stop: (ctx) => stopAllPasst(ctx.paths.dir),
  processes: (ctx) => runningPasstProcesses(ctx.paths.dir),
};

/** Each live passt serving a socket in this VM's runtime dir, by its pidfile. */
export async function runningPasstProcesses(vmRuntimeDir: string): Promise<Array<{ label: string; pid: number }>> {
  const found: Array<{ label: string; pid: number }> = [];
  for (const name of await readdir(vmRuntimeDir).catch(() => [] as string[])) {
    const m = /^passt(\d+)\.pid$/.exec(name);
    if (!m) continue;
    const pid = await runningPasst({ socket: join(vmRuntimeDir, `passt${m[1]}.sock`), pidfile: join(vmRuntimeDir, name) });
    if (pid !== null) found.push({ label: `passt of NIC ${Number(m[1]) + 1}`, pid });
  }
  return found;
}
