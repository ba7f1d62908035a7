// The core daemon: one per data dir. Takes a lock, re-attaches to running VMs, serves the API.
// Stopping it (signal or `hangar daemon stop`) leaves every VM running.
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { HangarError } from '../common/errors.ts';
import { dataDir, daemonSocketPath, ensurePrivateDir, runtimeDir } from './paths.ts';
import { listenCore } from './rpc/server.ts';
import { installLastResortHandler } from './rpc/wire-guard.ts';
import { CoreService } from './service/core-service.ts';

function lockPath(runtime: string): string {
  return join(runtime, 'daemon.pid');
}

/** The kernel's start time of a process (clock ticks since boot), or null when it is gone or a zombie. */
function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces): state is field 3, start time 22.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // A killed core that nobody reaped yet is a zombie: gone, for the lock's purpose.
    if (fields[0] === 'Z' || fields[0] === 'X') return null;
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

/**
 * Whether the pidfile's owner still runs. The pidfile holds "PID STARTTIME", so a reused PID is
 * not mistaken for the core whatever the core's command line is (CLI daemon, `hangar serve`, the
 * desktop app's utility process).
 */
function lockHolderAlive(content: string): number | null {
  const [pidText, start] = content.trim().split(/\s+/);
  const pid = parseInt(pidText ?? '', 10);
  if (!(pid > 0) || pid === process.pid) return null;
  const actual = processStartTime(pid);
  if (actual === null) return null;
  return start === undefined || start === actual ? pid : null;
}

/** A pidfile lock: created exclusively; a stale one (its process gone) is taken over. */
function takeLock(runtime: string): () => void {
  const path = lockPath(runtime);
  const mine = `${process.pid} ${processStartTime(process.pid) ?? ''}`.trim();
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, mine);
      closeSync(fd);
      return () => { try { if (readFileSync(path, 'utf8') === mine) unlinkSync(path); } catch { /* gone */ } };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = lockHolderAlive(readFileSync(path, 'utf8'));
      if (pid !== null) {
        throw new HangarError('already-exists', `a Hangar core already runs (pid ${pid})`);
      }
      try { unlinkSync(path); } catch { /* raced with another starter */ }
    }
  }
  throw new HangarError('busy', 'another Hangar core daemon is starting');
}

export interface DaemonCore {
  service: CoreService;
  socketPath: string;
  /** Stops serving and releases the lock; VMs keep running. Idempotent. */
  stop(): void;
}

/**
 * Becomes the core daemon of this data dir: takes the lock, re-attaches to running VMs and
 * serves the unix socket. Throws HangarError 'already-exists' when another daemon runs.
 */
export async function startDaemonCore(): Promise<DaemonCore> {
  // Whatever hosts the core (daemon, `hangar serve`, the desktop app's utility process) must not
  // end on a stray rejection: it supervises every running VM.
  installLastResortHandler(`core of ${dataDir()}`);
  const runtime = ensurePrivateDir(runtimeDir());
  const release = takeLock(runtime);
  const socketPath = daemonSocketPath(runtime);
  let service: CoreService;
  let server: Awaited<ReturnType<typeof listenCore>>;
  try {
    service = new CoreService({ dataDir: dataDir(), runtimeDir: runtime, socketPath });
    await service.init();
    server = await listenCore(service, socketPath);
  } catch (e) {
    release();
    throw e;
  }
  void service.probe().catch(() => {}); // warm the accelerator probe cache
  void service.autostart().catch((e: unknown) => console.error(`autostart: ${(e as Error).message}`));
  let stopped = false;
  return {
    service,
    socketPath,
    stop: () => {
      if (stopped) return;
      stopped = true;
      server.close();
      try { unlinkSync(socketPath); } catch { /* already gone */ }
      service.close();
      release();
    },
  };
}

export async function runDaemon(opts: { quietIfRunning?: boolean } = {}): Promise<void> {
  let core: DaemonCore;
  try {
    core = await startDaemonCore();
  } catch (e) {
    if (opts.quietIfRunning && e instanceof HangarError && e.code === 'already-exists') return;
    throw e;
  }
  console.log(`hangar core ${process.pid} listening on ${core.socketPath} (data: ${dataDir()})`);
  const stop = (): void => {
    core.stop();
    setTimeout(() => process.exit(0), 100).unref();
  };
  core.service.onStopRequested = stop;
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', () => {}); // keep running when the terminal that started us goes away
}
