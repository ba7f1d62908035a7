// Connects to the core daemon's unix socket, starting the daemon first when none runs
// (like libvirt's session daemon), and exposes the typed API.
import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { createConnection } from 'node:net';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import type { CoreApi, CoreEvents } from '../../common/api.ts';
import { createCoreClient } from '../../common/core-client.ts';
import { HangarError } from '../../common/errors.ts';
import type { ErrorPayload } from '../../common/errors.ts';
import { daemonSocketPath, ensurePrivateDir, runtimeDir } from '../paths.ts';
import { ioError } from '../io-error-reason.ts';
import { onLines, readFirstLine } from './framing.ts';

export interface CoreConnection {
  api: CoreApi;
  events: Partial<CoreEvents>;
  close(): void;
}

export function connectSocket(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ path });
    s.once('connect', () => { s.off('error', reject); resolve(s); });
    s.once('error', reject);
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** How to run `hangar daemon run`: the same node, loader flags and entry script as this process. */
function daemonCommand(): string[] {
  const entry = process.env.HANGAR_ENTRY || process.argv[1];
  if (!entry) throw new HangarError('internal', 'cannot tell how to start the core daemon');
  return [...process.execArgv, entry, 'daemon', 'run'];
}

export function startDaemonProcess(runtime: string): void {
  ensurePrivateDir(runtime);
  let log: number;
  try {
    log = openSync(join(runtime, 'daemon.log'), 'a', 0o600);
  } catch (e) {
    throw ioError('start the core daemon', join(runtime, 'daemon.log'), e); // e.g. a read-only data dir: say so and how to fix it
  }
  try {
    const child = spawn(process.execPath, daemonCommand(), { detached: true, stdio: ['ignore', log, log], env: process.env });
    child.unref();
  } finally {
    closeSync(log);
  }
}

/** Connects to the daemon socket; with autostart, starts a daemon when nobody listens. */
export async function openSocket(opts: { autostart?: boolean; timeoutMs?: number } = {}): Promise<Socket> {
  const runtime = runtimeDir();
  const path = daemonSocketPath(runtime);
  try {
    return await connectSocket(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (!opts.autostart || (code !== 'ENOENT' && code !== 'ECONNREFUSED')) {
      throw new HangarError('daemon-unavailable', `the Hangar core is not running (${path}: ${code})`, 'run any hangar command to start it, or `hangar daemon run`');
    }
  }
  startDaemonProcess(runtime);
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  let last = '';
  while (Date.now() < deadline) {
    await sleep(25);
    try {
      return await connectSocket(path);
    } catch (e) {
      last = (e as NodeJS.ErrnoException).code ?? String(e);
    }
  }
  throw new HangarError('daemon-unavailable', `the Hangar core daemon did not start (${path}: ${last})`, `see ${join(runtime, 'daemon.log')}`);
}

/** How to reach a core: this machine's socket (default), or a stream another transport opened (ssh). */
export type OpenCoreStream = () => Promise<Duplex>;

export async function connectCore(opts: { autostart?: boolean; events?: Partial<CoreEvents>; open?: OpenCoreStream } = {}): Promise<CoreConnection> {
  const sock = await (opts.open ?? (() => openSocket({ autostart: opts.autostart ?? true })))();
  sock.write(JSON.stringify({ channel: 'rpc' }) + '\n');
  sock.on('error', () => {});
  const events: Partial<CoreEvents> = opts.events ?? {};
  const client = createCoreClient({
    send: (m) => { sock.write(m + '\n'); },
    onMessage: (cb) => { onLines(sock, cb, () => sock.destroy()); sock.resume(); },
    onClose: (cb) => { sock.on('close', () => cb('socket closed')); },
    close: () => { sock.end(); },
  }, {
    vmChanged: (e) => events.vmChanged?.(e),
    vmListChanged: () => events.vmListChanged?.(),
    createProgress: (e) => events.createProgress?.(e),
    snapshotProgress: (e) => events.snapshotProgress?.(e),
    statsSample: (e) => events.statsSample?.(e),
    hostStats: (e) => events.hostStats?.(e),
    migrationProgress: (e) => events.migrationProgress?.(e),
  });
  return { api: client.api, events, close: () => client.close() };
}

/** Opens a VM's console stream: returns the socket after the daemon accepted it. */
/** A raw RFB stream to a running VM's VNC server, through the core (one per viewer). */
export async function openDisplayStream(vm: string, open?: OpenCoreStream): Promise<{ socket: Duplex; rest: Buffer; vmName: string }> {
  const sock = await (open ?? (() => openSocket({ autostart: true })))();
  sock.write(JSON.stringify({ channel: 'display', vm }) + '\n');
  const { line, rest } = await readFirstLine(sock, 10_000);
  const reply = JSON.parse(line) as { ok?: boolean; vm?: string; error?: ErrorPayload };
  if (reply.error) {
    sock.destroy();
    throw HangarError.fromPayload(reply.error);
  }
  return { socket: sock, rest, vmName: reply.vm ?? vm };
}

export async function openConsoleStream(vm: string, replay: boolean, open?: OpenCoreStream): Promise<{ socket: Duplex; rest: Buffer; vmName: string; replayBytes: number }> {
  const sock = await (open ?? (() => openSocket({ autostart: true })))();
  sock.write(JSON.stringify({ channel: 'console', vm, replay }) + '\n');
  const { line, rest } = await readFirstLine(sock, 10_000);
  const reply = JSON.parse(line) as { ok?: boolean; vm?: string; replayBytes?: number; error?: ErrorPayload };
  if (reply.error) {
    sock.destroy();
    throw HangarError.fromPayload(reply.error);
  }
  return { socket: sock, rest, vmName: reply.vm ?? vm, replayBytes: reply.replayBytes ?? 0 };
}
