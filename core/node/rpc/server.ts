// Serves the core API (birpc over NDJSON) and console byte streams on a unix socket (0600).
import { chmodSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { createBirpc } from 'birpc';
import type { CoreApi, CoreEvents } from '../../common/api.ts';
import { coreApiMethods } from '../../common/api.ts';
import { HangarError, isHangarError } from '../../common/errors.ts';
import type { ErrorPayload } from '../../common/errors.ts';
import type { CoreService } from '../service/core-service.ts';
import { onLines, readFirstLine } from './framing.ts';
import type { Hello } from './framing.ts';

/** Errors cross the wire as plain payloads (an Error object would serialize to {}). */
export function toPayload(e: unknown): ErrorPayload {
  if (isHangarError(e)) return e.toPayload();
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err === 'object' && typeof err.code === 'string' && typeof err.message === 'string') {
    return { code: 'io-error', message: err.message };
  }
  return { code: 'internal', message: e instanceof Error ? e.message : String(e) };
}

function apiFunctions(service: CoreService): CoreApi {
  const fns = {} as Record<string, (...args: unknown[]) => Promise<unknown>>;
  for (const m of coreApiMethods) {
    const f = (service[m] as (...a: unknown[]) => Promise<unknown>).bind(service);
    fns[m] = async (...args: unknown[]) => {
      try {
        return await f(...args);
      } catch (e) {
        throw toPayload(e);
      }
    };
  }
  return fns as unknown as CoreApi;
}

export async function listenCore(service: CoreService, socketPath: string): Promise<Server> {
  await unlink(socketPath).catch(() => {});
  const functions = apiFunctions(service);
  const server = createServer((sock) => {
    sock.on('error', () => {});
    void handleConnection(service, functions, sock);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(socketPath, 0o600);
  return server;
}

async function handleConnection(service: CoreService, functions: CoreApi, sock: Socket): Promise<void> {
  let hello: Hello;
  let rest: Buffer;
  try {
    const first = await readFirstLine(sock, 10_000);
    hello = JSON.parse(first.line) as Hello;
    rest = first.rest;
  } catch {
    sock.destroy();
    return;
  }
  if (hello.channel === 'rpc') serveRpc(service, functions, sock, rest);
  else if (hello.channel === 'console') serveConsole(service, sock, hello, rest);
  else sock.destroy();
}

function serveRpc(service: CoreService, functions: CoreApi, sock: Socket, rest: Buffer): void {
  let handler: ((data: unknown) => void) | null = null;
  const rpc = createBirpc<CoreEvents, CoreApi>(functions, {
    post: (data: string) => { if (!sock.destroyed) sock.write(data + '\n'); },
    on: (fn) => { handler = fn; },
    serialize: (v) => JSON.stringify(v),
    deserialize: (v: string) => JSON.parse(v),
    eventNames: ['vmChanged', 'vmListChanged'],
    timeout: -1, // no RPC deadline: long operations (shutdown --wait) have their own
  });
  const onVm = (e: Parameters<CoreEvents['vmChanged']>[0]): void => { void rpc.vmChanged.asEvent(e).catch(() => {}); };
  const onList = (): void => { void rpc.vmListChanged.asEvent().catch(() => {}); };
  service.on('vmChanged', onVm);
  service.on('vmListChanged', onList);
  onLines(sock, (line) => handler?.(line), () => sock.destroy());
  sock.on('close', () => {
    service.off('vmChanged', onVm);
    service.off('vmListChanged', onList);
    rpc.$close();
  });
  sock.resume();
  if (rest.length) sock.emit('data', rest);
}

function serveConsole(service: CoreService, sock: Socket, hello: Extract<Hello, { channel: 'console' }>, rest: Buffer): void {
  let vm;
  try {
    vm = service.consoleOf(hello.vm);
    if (!vm.console.connected) {
      throw new HangarError('invalid-state', `VM "${vm.name}" is not running (${vm.state}): its console is not live`, `start it with \`hangar start ${vm.name}\``);
    }
  } catch (e) {
    sock.end(JSON.stringify({ error: toPayload(e) }) + '\n');
    return;
  }
  const con = vm.console;
  sock.write(JSON.stringify({ ok: true, vm: vm.name }) + '\n');
  const removeViewer = con.addViewer((chunk) => { if (!sock.destroyed) sock.write(chunk); }, { replay: hello.replay ?? true });
  const onDisconnect = (): void => { sock.end(); };
  con.once('disconnect', onDisconnect);
  const forward = (d: Buffer): void => {
    try { con.write(d); } catch { sock.end(); }
  };
  sock.on('data', forward);
  sock.on('close', () => {
    removeViewer();
    con.off('disconnect', onDisconnect);
  });
  sock.resume();
  if (rest.length) forward(rest);
}
