// Spawning and identifying QEMU processes. QEMU runs detached (its own session), so it outlives
// the core; a PID is only ever signalled after /proc/PID/cmdline proves it is this VM's QEMU.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { HangarError } from '../../common/errors.ts';

export interface SpawnedQemu {
  pid: number;
  /** Resolves with the exit code/signal while this core is QEMU's parent. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const START_MARK = '=== hangar: starting QEMU';

export function qemuLogPath(vmDir: string): string {
  return join(vmDir, 'logs', 'qemu.log');
}

export function spawnQemu(binary: string, argv: string[], vmDir: string): SpawnedQemu {
  mkdirSync(join(vmDir, 'logs'), { recursive: true, mode: 0o700 });
  const logFd = openSync(qemuLogPath(vmDir), 'a', 0o600);
  try {
    writeSync(logFd, `${START_MARK} ${new Date().toISOString()}\n`);
    const child = spawn(binary, argv, { detached: true, stdio: ['ignore', logFd, logFd] });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', () => resolve({ code: -1, signal: null }));
    });
    child.unref();
    if (child.pid === undefined) throw new HangarError('qemu-failed', `could not run ${binary}`);
    return { pid: child.pid, exited };
  } finally {
    closeSync(logFd);
  }
}

/** True when PID is alive and is the QEMU started for this VM id (guards against PID reuse). */
export function isOurQemu(pid: number, vmId: string): boolean {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const i = args.indexOf('-uuid');
    return i >= 0 && args[i + 1] === vmId;
  } catch {
    return false;
  }
}

/**
 * Every live QEMU started for this VM id, found in /proc rather than the pidfile: a QEMU spawned
 * by a core killed before QEMU wrote its pidfile (or whose pidfile was lost) must still be found,
 * or a restarted core would leave it paused forever or start a second one beside it.
 */
export async function findQemuByUuid(vmId: string, runDir?: string): Promise<number[]> {
  const found: number[] = [];
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid !== process.pid && isOurQemu(pid, vmId) && !isZombie(pid) && !(runDir && belongsToAnotherCore(pid, vmId, runDir))) found.push(pid);
  }
  return found;
}

/**
 * Whether a QEMU of this VM id is another Hangar core's: its sockets are in that core's run dir for
 * the VM, not in runDir (a live migration between two cores of this machine). A QEMU with no
 * Hangar run dir at all (started by hand) still counts: start must refuse beside it.
 */
function belongsToAnotherCore(pid: number, vmId: string, runDir: string): boolean {
  let args: string[];
  try {
    args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return false;
  }
  const vmPaths = args.filter((a) => a.includes(`/vms/${vmId}/`));
  return vmPaths.length > 0 && !vmPaths.some((a) => a.includes(`${runDir}/`));
}

/** True when PID is stopped by a signal (SIGSTOP/SIGTSTP: /proc/PID/stat state T): it answers nothing until SIGCONT. */
export function isStoppedProcess(pid: number): boolean {
  return procState(pid) === 'T';
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function readPidfile(path: string): Promise<number | null> {
  try {
    const n = parseInt((await readFile(path, 'utf8')).trim(), 10);
    return Number.isInteger(n) && n > 1 ? n : null;
  } catch {
    return null;
  }
}

export function killQemu(pid: number, vmId: string, signal: NodeJS.Signals = 'SIGKILL'): boolean {
  if (!isOurQemu(pid, vmId)) return false;
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** PID is gone, or a zombie (it runs nothing any more). */
export function hasExited(pid: number): boolean {
  return !isAlive(pid) || isZombie(pid);
}

/** Waits until PID is gone (zombies count as gone: /proc/PID/stat state Z). */
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!isAlive(pid) || isZombie(pid)) return true;
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
}

function isZombie(pid: number): boolean {
  const state = procState(pid);
  return state === null || state === 'Z';
}

/** The one-letter state of /proc/PID/stat (R, S, D, T, Z ...), or null when PID is gone. */
function procState(pid: number): string | null {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3);
  } catch {
    return null;
  }
}

/** Waits for QEMU to create its QMP socket, failing early (with QEMU's own words) if it exits. */
export async function waitForSocket(path: string, pid: number, vmDir: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await stat(path)).isSocket()) return;
    } catch { /* not there yet */ }
    if (!isAlive(pid) || isZombie(pid)) {
      throw new HangarError('qemu-failed', `QEMU exited during start-up: ${await qemuErrorTail(vmDir)}`,
        'fix the VM definition or host problem named above (see also `hangar doctor`)');
    }
    if (Date.now() > deadline) throw new HangarError('timeout', `QEMU did not open its QMP socket ${path} within ${timeoutMs} ms`);
    await sleep(5);
  }
}

/** The last error lines QEMU wrote, without its "qemu-system-x86_64:" prefix and timestamps. */
export async function qemuErrorTail(vmDir: string): Promise<string> {
  const text = await readFile(qemuLogPath(vmDir), 'utf8').catch(() => '');
  const mark = text.lastIndexOf(START_MARK);
  const lines = (mark >= 0 ? text.slice(mark).split('\n').slice(1) : text.split('\n')).slice(-20)
    .map((l) => l.replace(/^\S+T\S+ /, '').replace(/^qemu-system-\w+: /, '').trim())
    .filter((l) => l && !l.startsWith('terminating on signal'));
  return lines.slice(-3).join(' / ') || 'no message (see the VM\'s logs/qemu.log)';
}
