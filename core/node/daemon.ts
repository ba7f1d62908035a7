// The core daemon: one per data dir. Takes a lock, re-attaches to running VMs, serves the API.
// Stopping it (signal or `hangar daemon stop`) leaves every VM running.
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { HangarError } from '../common/errors.ts';
import { dataDir, daemonSocketPath, ensurePrivateDir, runtimeDir } from './paths.ts';
import { listenCore } from './rpc/server.ts';
import { CoreService } from './service/core-service.ts';

function lockPath(runtime: string): string {
  return join(runtime, 'daemon.pid');
}

function processLooksLikeDaemon(pid: number): boolean {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmd.includes('daemon') && cmd.includes('run');
  } catch {
    return false;
  }
}

/** A pidfile lock: created exclusively; a stale one (dead or foreign PID) is taken over. */
function takeLock(runtime: string): () => void {
  const path = lockPath(runtime);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => { try { if (readFileSync(path, 'utf8') === String(process.pid)) unlinkSync(path); } catch { /* gone */ } };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = parseInt(readFileSync(path, 'utf8') || '0', 10);
      if (pid > 0 && pid !== process.pid && processLooksLikeDaemon(pid)) {
        throw new HangarError('already-exists', `a Hangar core daemon already runs (pid ${pid})`);
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
