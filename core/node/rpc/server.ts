// Serves the core API (birpc over NDJSON) and console byte streams on a unix socket (0600).
import { chmodSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { HangarError } from '../../common/errors.ts';
import type { RpcLink } from '../../common/transport.ts';
import { ConsolePump } from '../console/console-pump.ts';
import type { CoreService } from '../service/core-service.ts';
import { localEndpoint, toPayload } from './endpoint.ts';
import { connectVnc } from '../display/display-ops.ts';
import type { CoreEndpoint } from './endpoint.ts';
import { MAX_LINE_BYTES, onLines, readFirstLine } from './framing.ts';
import { logRefusal, parseHello } from './wire-guard.ts';
import { serveMigrationStream } from '../service/migration-tunnel.ts';
import type { Hello } from './framing.ts';

export async function listenCore(service: CoreService, socketPath: string): Promise<Server> {
  await unlink(socketPath).catch(() => {});
  const endpoint = localEndpoint(service);
  const server = createServer((sock) => {
    sock.on('error', () => {});
    // Nothing a client sends may end the core: whatever escapes is logged, the socket dropped.
    handleConnection(service, endpoint, sock).catch((e: unknown) => {
      logRefusal('a connection', e instanceof Error ? e.message : String(e));
      sock.destroy();
    });
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

/** Refuses a connection: one JSON error line (the reply shape console/display clients read), then close. */
function refuseConnection(sock: Socket, e: unknown): void {
  const error = toPayload(e);
  logRefusal('a connection on the core socket', error.message);
  if (!sock.destroyed) sock.end(JSON.stringify({ error }) + '\n');
  // A client that never reads must not hold the socket open.
  setTimeout(() => sock.destroy(), 2000).unref();
}

async function handleConnection(service: CoreService, endpoint: CoreEndpoint, sock: Socket): Promise<void> {
  let first: { line: string; rest: Buffer };
  try {
    first = await readFirstLine(sock, 10_000);
  } catch (e) {
    if (sock.destroyed) return; // the client went away before saying anything: nothing to refuse
    refuseConnection(sock, new HangarError('invalid-input', `bad hello line: ${e instanceof Error ? e.message : String(e)}`,
      'send one JSON line such as {"channel":"rpc"} first (at most 64 KiB)'));
    return;
  }
  let hello: Hello;
  try {
    hello = parseHello(first.line);
  } catch (e) {
    refuseConnection(sock, e);
    return;
  }
  const rest = first.rest;
  if (hello.channel === 'rpc') endpoint.serveRpc(lineLink(sock, rest));
  else if (hello.channel === 'console') serveConsole(service, sock, hello, rest);
  else if (hello.channel === 'migration') await serveMigrationStream(service.incomingMigrations, sock, hello, rest);
  else await serveDisplay(service, sock, hello, rest);
}

/** The socket as an RpcLink: one JSON message per line. */
function lineLink(sock: Socket, rest: Buffer): RpcLink {
  return {
    send: (m) => { if (!sock.destroyed) sock.write(m + '\n'); },
    onMessage: (cb) => {
      onLines(sock, cb, () => {
        const error = new HangarError('invalid-input', `RPC message longer than ${MAX_LINE_BYTES} bytes: connection closed`,
          'send one JSON message per line, each under 16 MiB').toPayload();
        logRefusal('an RPC message', error.message);
        if (!sock.destroyed) sock.end(JSON.stringify({ t: 's', e: error }) + '\n');
        setTimeout(() => sock.destroy(), 2000).unref();
      });
      queueMicrotask(() => {
        sock.resume();
        if (rest.length) sock.emit('data', rest);
      });
    },
    onClose: (cb) => { sock.on('close', () => cb('socket closed')); },
    close: () => { sock.end(); },
  };
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
  const holder = {};
  const replayBytes = hello.replay ?? true ? con.scrollback().length : 0;
  sock.write(JSON.stringify({ ok: true, vm: vm.name, replayBytes }) + '\n');
  // Raw bytes for the CLI; a chunk counts as acknowledged once the kernel took it.
  const pump = new ConsolePump({
    send: (chunk) => { if (!sock.destroyed) sock.write(chunk, () => pump.ack(chunk.length)); },
    pause: () => con.hold(holder),
    resume: () => con.release(holder),
    onStall: () => sock.destroy(),
  });
  const removeViewer = con.addViewer((chunk) => pump.push(chunk), { replay: hello.replay ?? true });
  const onDisconnect = (): void => { pump.flush(); sock.end(); };
  con.once('disconnect', onDisconnect);
  const forward = (d: Buffer): void => {
    try { con.write(d); } catch { sock.end(); }
  };
  sock.on('data', forward);
  sock.on('close', () => {
    removeViewer();
    pump.close();
    con.release(holder);
    con.off('disconnect', onDisconnect);
  });
  sock.resume();
  if (rest.length) forward(rest);
}

/** A raw RFB stream for a CLI or relay: a reply line, then the VNC connection's bytes both ways. */
async function serveDisplay(service: CoreService, sock: Socket, hello: Extract<Hello, { channel: 'display' }>, rest: Buffer): Promise<void> {
  let vnc: Socket;
  let name: string;
  try {
    const vm = service.consoleOf(String(hello.vm));
    name = vm.name;
    vnc = await connectVnc(vm);
  } catch (e) {
    sock.end(JSON.stringify({ error: toPayload(e) }) + '\n');
    return;
  }
  sock.write(JSON.stringify({ ok: true, vm: name }) + '\n');
  if (rest.length) vnc.write(rest);
  // pipe() carries backpressure both ways: a slow reader pauses the other side, nothing piles up.
  vnc.pipe(sock);
  sock.pipe(vnc);
  vnc.on('error', () => sock.destroy());
  vnc.on('close', () => sock.end());
  sock.on('close', () => vnc.destroy());
}
