// TPM 2.0 for a VM: a swtpm process per VM, supervised next to QEMU. swtpm keeps its state in
// the VM folder (<vmdir>/tpm, persistent across boots) and serves QEMU on a control socket in
// the VM's runtime dir. It is started (daemonized, with --terminate so it ends when QEMU drops
// the connection) before QEMU, and stopped on every path QEMU stops by, killing the pid from its
// pidfile after checking /proc/PID/cmdline really is this VM's swtpm. Like QEMU, it outlives a
// restarted core: a running VM's swtpm is left alone.
import { execFile } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { mkdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { HangarError } from '../../common/errors.ts';
import { requireBinary } from '../host/binaries.ts';
import { isAlive, readPidfile, sleep, waitForExit } from './qemu-process.ts';
import type { Sidecar, SidecarContext } from './sidecar.ts';

export interface SwtpmPaths {
  /** The VM folder: state in <vmDir>/tpm, log in <vmDir>/logs/swtpm.log. */
  vmDir: string;
  socket: string;
  pidfile: string;
}

export function tpmStateDir(vmDir: string): string {
  return join(vmDir, 'tpm');
}

export function swtpmArgs(p: SwtpmPaths): string[] {
  for (const path of [p.vmDir, p.socket, p.pidfile]) {
    // swtpm's option syntax has no escape for commas.
    if (path.includes(',')) throw new HangarError('invalid-input', `swtpm cannot use the path ${path}: it contains a comma`, 'use a Hangar data/runtime directory without "," in its path');
  }
  return [
    'socket', '--tpm2',
    '--tpmstate', `dir=${tpmStateDir(p.vmDir)},mode=0600`,
    '--ctrl', `type=unixio,path=${p.socket},mode=0600`,
    '--pid', `file=${p.pidfile}`,
    '--log', `file=${join(p.vmDir, 'logs', 'swtpm.log')}`,
    '--terminate', '--daemon',
  ];
}

/** Is PID the swtpm serving this VM's state dir? (Guards against a reused pid.) */
export function isOurSwtpm(pid: number, vmDir: string): boolean {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return /(^|\/)swtpm$/.test(args[0] ?? '') && args.some((a) => a.startsWith(`dir=${tpmStateDir(vmDir)},`));
  } catch {
    return false;
  }
}

/** Starts swtpm for the VM and waits for its control socket. Throws a clear error (with the fix) otherwise. */
export async function startSwtpm(p: SwtpmPaths, timeoutMs = 10_000): Promise<number> {
  const binary = requireBinary('swtpm');
  await mkdir(tpmStateDir(p.vmDir), { recursive: true, mode: 0o700 });
  await mkdir(join(p.vmDir, 'logs'), { recursive: true });
  await stopSwtpm(p); // a leftover of an earlier run must not hold the state
  await new Promise<void>((resolve, reject) => {
    execFile(binary, swtpmArgs(p), { timeout: timeoutMs, encoding: 'utf8' }, (err, _out, stderr) => {
      if (err) {
        reject(new HangarError('io-error', `swtpm failed to start: ${stderr.trim() || err.message}`,
          `see ${join(p.vmDir, 'logs', 'swtpm.log')}; the TPM state is in ${tpmStateDir(p.vmDir)}`));
      } else {
        resolve();
      }
    });
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pid = await readPidfile(p.pidfile);
    if (pid !== null && isOurSwtpm(pid, p.vmDir) && statSync(p.socket, { throwIfNoEntry: false })?.isSocket()) return pid;
    if (Date.now() > deadline) {
      await stopSwtpm(p);
      throw new HangarError('timeout', `swtpm did not create its socket ${p.socket} within ${timeoutMs / 1000} s`, `see ${join(p.vmDir, 'logs', 'swtpm.log')}`);
    }
    await sleep(20);
  }
}

/** Stops this VM's swtpm if one runs (TERM, then KILL), and removes its socket and pidfile. */
export async function stopSwtpm(p: SwtpmPaths): Promise<void> {
  const pid = await readPidfile(p.pidfile);
  if (pid !== null && isOurSwtpm(pid, p.vmDir)) {
    try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
    if (!(await waitForExit(pid, 3000)) && isOurSwtpm(pid, p.vmDir)) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      await waitForExit(pid, 2000);
    }
  }
  for (const f of [p.socket, p.pidfile]) await unlink(f).catch(() => {});
}

/** The pid of this VM's running swtpm, or null. */
export async function runningSwtpm(p: SwtpmPaths): Promise<number | null> {
  const pid = await readPidfile(p.pidfile);
  return pid !== null && isAlive(pid) && isOurSwtpm(pid, p.vmDir) ? pid : null;
}

function swtpmPathsOf(ctx: SidecarContext): SwtpmPaths {
  return { vmDir: ctx.vmDir, socket: ctx.paths.swtpmSocket, pidfile: ctx.paths.swtpmPidfile };
}

/** The VM's TPM: QEMU's tpm-crb/tis connects to swtpm's control socket. */
export const swtpmSidecar: Sidecar = {
  name: 'swtpm',
  wanted: (def) => Boolean(def.tpm),
  check: async () => { requireBinary('swtpm'); },
  start: async (ctx) => { await startSwtpm(swtpmPathsOf(ctx)); },
  stop: (ctx) => stopSwtpm(swtpmPathsOf(ctx)),
  argv: (ctx) => ({ swtpmSocket: ctx.paths.swtpmSocket }),
  processes: async (ctx) => {
    const pid = await runningSwtpm(swtpmPathsOf(ctx));
    return pid === null ? [] : [{ label: 'swtpm of the TPM', pid }];
  },
};
