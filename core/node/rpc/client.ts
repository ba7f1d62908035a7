// Connects to the core daemon's unix socket, starting the daemon first when none runs
// (like libvirt's session daemon), and exposes the typed API.
import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { createConnection } from 'node:net';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { createBirpc } from 'birpc';
import type { CoreApi, CoreEvents } from '../../common/api.ts';
import { HangarError } from '../../common/errors.ts';
import type { ErrorPayload } from '../../common/errors.ts';
import { daemonSocketPath, ensurePrivateDir, runtimeDir } from '../paths.ts';
import { onLines, readFirstLine } from './framing.ts';

export interface CoreConnection {
  api: CoreApi;
  events: Partial<CoreEvents>;
  close(): void;
}

function connectSocket(path: string): Promise<Socket> {
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
  const log = openSync(join(runtime, 'daemon.log'), 'a', 0o600);
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

function toHangarError(e: unknown): Error {
  if (e && typeof e === 'object' && 'code' in e && 'message' in e && !(e instanceof Error)) {
    return HangarError.fromPayload(e as ErrorPayload);
  }
  return e instanceof Error ? e : new Error(String(e));
}

export async function connectCore(opts: { autostart?: boolean; events?: Partial<CoreEvents> } = {}): Promise<CoreConnection> {
  const sock = await openSocket({ autostart: opts.autostart ?? true });
  sock.write(JSON.stringify({ channel: 'rpc' }) + '\n');
  let handler: ((data: unknown) => void) | null = null;
  const events: Partial<CoreEvents> = opts.events ?? {};
  const closedError = new HangarError('daemon-unavailable', 'the connection to the Hangar core was lost', 'run the command again (the core restarts on demand)');
  const rpc = createBirpc<CoreApi, CoreEvents>({
    vmChanged: (e) => events.vmChanged?.(e),
    vmListChanged: () => events.vmListChanged?.(),
  }, {
    post: (data: string) => { sock.write(data + '\n'); },
    on: (fn) => { handler = fn; },
    serialize: (v) => JSON.stringify(v),
    deserialize: (v: string) => JSON.parse(v),
    timeout: -1, // no RPC deadline: long operations (shutdown --wait) have their own
  });
  onLines(sock, (line) => handler?.(line), () => sock.destroy());
  sock.on('error', () => {});
  sock.on('close', () => { if (!rpc.$closed) rpc.$close(closedError); });
  const api = new Proxy({} as CoreApi, {
    get: (_t, method: string) => async (...args: unknown[]) => {
      try {
        return await (rpc as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[method]!(...args);
      } catch (e) {
        throw toHangarError(e);
      }
    },
  });
  return { api, events, close: () => { rpc.$close(); sock.end(); } };
}

/** Opens a VM's console stream: returns the socket after the daemon accepted it. */
export async function openConsoleStream(vm: string, replay: boolean): Promise<{ socket: Socket; rest: Buffer; vmName: string }> {
  const sock = await openSocket({ autostart: true });
  sock.write(JSON.stringify({ channel: 'console', vm, replay }) + '\n');
  const { line, rest } = await readFirstLine(sock, 10_000);
  const reply = JSON.parse(line) as { ok?: boolean; vm?: string; error?: ErrorPayload };
  if (reply.error) {
    sock.destroy();
    throw HangarError.fromPayload(reply.error);
  }
  return { socket: sock, rest, vmName: reply.vm ?? vm };
}
