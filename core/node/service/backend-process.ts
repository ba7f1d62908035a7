// What every supervised back-end process (passt, qemu-storage-daemon ...) needs: start it
// daemonized and wait for its parent to exit, read a pid's argv to check it really is ours, and
// stop it (TERM, then KILL) only while it still is.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { waitForExit } from './qemu-process.ts';

/** PID's argv, or null when it is gone (or not readable). */
export function procArgs(pid: number): string[] | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return null;
  }
}

/** Runs a program until its parent exits (it daemonizes); rejects with its message when it fails. */
export function runDaemonizing(binary: string, args: string[], timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const t = setTimeout(() => { child.kill('SIGKILL'); }, timeoutMs);
    child.once('error', (e) => { clearTimeout(t); reject(e); });
    child.once('exit', (code, signal) => {
      clearTimeout(t);
      // The daemon closes its standard streams; do not wait for them beyond the parent's exit.
      child.stderr.destroy();
      const msg = stderr.split('\n').map((l) => l.trim()).filter((l) => l && !/^Failed to send \d+ bytes to syslog$/.test(l)).join('; ');
      if (code === 0) resolve();
      else reject(new Error(msg || (signal ? `killed by ${signal}${signal === 'SIGKILL' ? ` (no answer within ${timeoutMs / 1000} s)` : ''}` : `exit code ${code}`)));
    });
  });
}

/** TERM, then KILL if it lingers and is still ours (a pid may be reused once it is gone). */
export async function killBackend(pid: number, stillOurs: () => boolean): Promise<void> {
  try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
  if (!(await waitForExit(pid, 3000)) && stillOurs()) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    await waitForExit(pid, 2000);
  }
}
