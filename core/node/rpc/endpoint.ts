// Where UI channels meet the core. A CoreEndpoint serves RpcLinks and ConsoleLinks (from
// MessagePorts, WebSockets or the unix socket) either from a CoreService in this process
// (localEndpoint) or by relaying to the core daemon's unix socket (daemonEndpoint).
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createBirpc } from 'birpc';
import type { CoreApi, CoreEvents } from '../../common/api.ts';
import type { HostSummary, StatsSample } from '../../common/stats.ts';
import { coreApiMethods } from '../../common/api.ts';
import { checkApiArgs } from '../../common/api-schema.ts';
import { HangarError, isHangarError } from '../../common/errors.ts';
import type { ErrorPayload } from '../../common/errors.ts';
import { decodeConsoleControl, encodeConsoleControl } from '../../common/transport.ts';
import type { ConsoleEndReason, ConsoleLink, RpcLink } from '../../common/transport.ts';
import { isActive } from '../../common/state.ts';
import { ConsolePump } from '../console/console-pump.ts';
import type { SerialConsole } from '../console/serial-console.ts';
import type { CoreService } from '../service/core-service.ts';
import { connectCore, openConsoleStream, openDisplayStream, openSocket } from './client.ts';
import { connectVnc } from '../display/display-ops.ts';
import { DISPLAY_HIGH_WATER, DISPLAY_LOW_WATER } from '../../common/transport.ts';
import { onLines } from './framing.ts';
import { checkRpcMessage, connectionRefusalLog, logRefusal } from './wire-guard.ts';

export interface CoreEndpoint {
  serveRpc(link: RpcLink): void;
  serveConsole(link: ConsoleLink, vm: string, opts: { replay: boolean }): void;
  /** One viewer of the VM's screen: RFB bytes both ways on its own connection to QEMU's VNC server. */
  serveDisplay(link: ConsoleLink, vm: string): void;
}

/**
 * Hands each well-formed RPC message of a link to handle. A malformed one gets an error reply on
 * this link only, and a handler that throws is logged: either way the core carries on.
 */
export function onCheckedRpcMessages(link: RpcLink, handle: (msg: unknown) => unknown): void {
  const refused = connectionRefusalLog();
  link.onMessage((m) => {
    const checked = checkRpcMessage(m);
    if (!checked.ok) {
      refused('an RPC message', checked.error.message);
      try { link.send(checked.reply); } catch { /* closed */ }
      return;
    }
    try {
      void Promise.resolve(handle(checked.msg)).catch((e: unknown) => logRefusal('an RPC message', String(e)));
    } catch (e) {
      logRefusal('an RPC message', String(e));
    }
  });
}

/** Errors cross the wire as plain payloads (an Error object would serialize to {}). */
export function toPayload(e: unknown): ErrorPayload {
  if (isHangarError(e)) return e.toPayload();
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err === 'object' && typeof err.code === 'string' && typeof err.message === 'string') {
    return { code: 'io-error', message: err.message };
  }
  return { code: 'internal', message: e instanceof Error ? e.message : String(e) };
}

/** The service's methods, each checking its arguments against the schema first. */
export function coreFunctions(service: CoreService): CoreApi {
  const fns = Object.create(null) as Record<string, (...args: unknown[]) => Promise<unknown>>;
  for (const m of coreApiMethods) {
    const f = (service[m] as (...a: unknown[]) => Promise<unknown>).bind(service);
    fns[m] = async (...args: unknown[]) => {
      let checked: unknown[];
      try {
        checked = checkApiArgs(m, args);
      } catch (e) {
        logRefusal('an RPC request', e instanceof Error ? e.message : String(e));
        throw toPayload(e);
      }
      try {
        return await f(...checked);
      } catch (e) {
        throw toPayload(e);
      }
    };
  }
  return fns as unknown as CoreApi;
}

function asBuffer(m: string | Uint8Array): Buffer {
  return typeof m === 'string' ? Buffer.from(m, 'utf8') : Buffer.from(m.buffer, m.byteOffset, m.byteLength);
}

function sendControl(link: ConsoleLink, c: Parameters<typeof encodeConsoleControl>[0]): void {
  try { link.send(encodeConsoleControl(c)); } catch { /* link already gone */ }
}

/** Ends a console link with a reason the UI acts on (reconnect now, or when the VM runs). */
function endConsole(link: ConsoleLink, reason: ConsoleEndReason, exitCode?: number): void {
  sendControl(link, exitCode === undefined ? { type: 'end', reason } : { type: 'end', reason, exitCode });
  link.close();
}

/** Routes a viewer's messages: binary = input for the guest, text = control (acks; resizes where the stream has a size). */
function onViewerMessages(link: ConsoleLink, pump: ConsolePump, input: (b: Buffer) => void, onResize?: (cols: number, rows: number) => void): void {
  link.onMessage((m) => {
    if (typeof m !== 'string') { input(asBuffer(m)); return; }
    const c = decodeConsoleControl(m);
    if (c?.type === 'ack') pump.ack(c.bytes);
    else if (c?.type === 'resize') onResize?.(c.cols, c.rows);
  });
}

export function localEndpoint(service: CoreService, functions: CoreApi = coreFunctions(service)): CoreEndpoint {
  return {
    serveRpc(link) {
      let handler: ((data: unknown) => void) | null = null;
      // Live samples go only to a connection that asked (watchStats): which VMs, null = all, empty = none.
      let watching: Set<string> | null = new Set();
      let closed = false;
      // hostStats: only while this connection watches something; the listener itself is the
      // service's cue (no listener, no host summary built).
      const onHost = (e: HostSummary): void => { void rpc.hostStats.asEvent(e).catch(() => {}); };
      let hostListening = false;
      const setHostListening = (on: boolean): void => {
        if (on === hostListening) return;
        hostListening = on;
        if (on) service.on('hostStats', onHost); else service.off('hostStats', onHost);
      };
      const perConnection: CoreApi = Object.assign(Object.create(null) as CoreApi, functions, {
        watchStats: async (refs: string[] | null): Promise<void> => {
          await functions.watchStats(refs);
          watching = service.statsWatchIds(refs);
          if (!closed) setHostListening(watching === null || watching.size > 0);
        },
      });
      const rpc = createBirpc<CoreEvents, CoreApi>(perConnection, {
        post: (data: string) => { try { link.send(data); } catch { /* closed */ } },
        on: (fn) => { handler = fn; },
        serialize: (v) => JSON.stringify(v),
        // Messages arrive already parsed and checked (onCheckedRpcMessages below).
        deserialize: (v: unknown) => v,
        eventNames: ['vmChanged', 'vmListChanged', 'createProgress', 'snapshotProgress', 'statsSample', 'hostStats', 'migrationProgress'],
        timeout: -1, // long operations (shutdown --wait) carry their own deadline
        // Never rethrow into the event loop: an unhandled rejection would end the core.
        onGeneralError: (e) => { logRefusal('an RPC message', e instanceof Error ? e.message : String(e)); return true; },
      });
      const onVm = (e: Parameters<CoreEvents['vmChanged']>[0]): void => { void rpc.vmChanged.asEvent(e).catch(() => {}); };
      const onList = (): void => { void rpc.vmListChanged.asEvent().catch(() => {}); };
      const onProgress = (e: Parameters<CoreEvents['createProgress']>[0]): void => { void rpc.createProgress.asEvent(e).catch(() => {}); };
      const onSnapshot = (e: Parameters<CoreEvents['snapshotProgress']>[0]): void => { void rpc.snapshotProgress.asEvent(e).catch(() => {}); };
      service.on('vmChanged', onVm);
      service.on('vmListChanged', onList);
      service.on('createProgress', onProgress);
      service.on('snapshotProgress', onSnapshot);
      const onMigration = (e: Parameters<CoreEvents['migrationProgress']>[0]): void => { void rpc.migrationProgress.asEvent(e).catch(() => {}); };
      service.on('migrationProgress', onMigration);
      const onStats = (e: StatsSample): void => {
        if (watching === null || watching.has(e.vmId)) void rpc.statsSample.asEvent(e).catch(() => {});
      };
      service.on('statsSample', onStats);
      onCheckedRpcMessages(link, (msg) => handler?.(msg));
      link.onClose(() => {
        service.off('vmChanged', onVm);
        service.off('vmListChanged', onList);
        service.off('createProgress', onProgress);
        service.off('snapshotProgress', onSnapshot);
        service.off('migrationProgress', onMigration);
        service.off('statsSample', onStats);
        closed = true;
        setHostListening(false);
        rpc.$close();
      });
    },

    serveConsole(link, vmRef, opts) {
      let vm;
      try {
        vm = service.consoleOf(vmRef);
        if (!vm.console.connected) {
          throw new HangarError('invalid-state', `VM "${vm.name}" is not running (${vm.state}): its console is not live`, `start it with \`hangar start ${vm.name}\``);
        }
      } catch (e) {
        sendControl(link, { type: 'error', error: toPayload(e) });
        link.close();
        return;
      }
      serveConsoleOn(link, vm.console, vm.name, opts);
    },

    serveDisplay(link, vmRef) {
      let closed = false;
      link.onClose(() => { closed = true; });
      let name = vmRef;
      Promise.resolve().then(() => {
        const vm = service.consoleOf(vmRef);
        name = vm.name;
        return connectVnc(vm);
      }).then((socket) => {
        if (closed) { socket.destroy(); return; }
        // QEMU closing the VNC connection means the VM went away (a guest reboot keeps it open).
        serveStreamOn(link, socket, { name, display: true, endReason: () => Promise.resolve('vm-stopped') });
      }, (e: unknown) => {
        sendControl(link, { type: 'error', error: toPayload(e) });
        link.close();
      });
    },
  };
}

/** How serveStreamOn carries one stream: console (small window, small batches) or display (RFB). */
export interface StreamOptions {
  name: string;
  /** Why the stream ended when its socket closed (a relay asks the core); a terminal adds its program's exit code. */
  endReason: () => Promise<ConsoleEndReason | { reason: ConsoleEndReason; exitCode?: number }>;
  /** A terminal: the viewer's resize controls (already checked: 1..MAX_TERMINAL_SIZE). */
  onResize?: (cols: number, rows: number) => void;
  /** A display stream gets the larger window and batches (one 1280x800 update is MiBs). */
  display?: boolean;
  /** Console replay: how much of what follows is scrollback. */
  replayBytes?: number;
  /** Bytes that arrived with the stream's reply line. */
  rest?: Buffer;
}

/**
 * Carries one byte stream (a VNC connection, or the daemon's relayed console or display stream)
 * to one viewer: ready, output with acks (the source is paused above the window, so a stalled
 * viewer holds at most that much in this process), input, and an end with its reason.
 */
export function serveStreamOn(link: ConsoleLink, socket: Duplex, o: StreamOptions): void {
  let ended = false;
  const end = (why: ConsoleEndReason | { reason: ConsoleEndReason; exitCode?: number }): void => {
    if (ended) return;
    ended = true;
    pump.flush();
    pump.close();
    socket.destroy();
    if (typeof why === 'string') endConsole(link, why);
    else endConsole(link, why.reason, why.exitCode);
  };
  const pump = new ConsolePump({
    send: (chunk) => link.send(chunk),
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    onStall: () => end('too-slow'),
    // RFB updates arrive in bursts of large writes: a larger window, big messages.
    ...(o.display ? { highWater: DISPLAY_HIGH_WATER, lowWater: DISPLAY_LOW_WATER, batchBytes: 256 * 1024 } : {}),
  });
  sendControl(link, o.replayBytes ? { type: 'ready', vm: o.name, replayBytes: o.replayBytes } : { type: 'ready', vm: o.name });
  socket.on('data', (d: Buffer) => pump.push(d));
  socket.on('error', () => {});
  socket.on('close', () => { if (!ended) void o.endReason().then(end); });
  onViewerMessages(link, pump, (b) => { if (!socket.destroyed) socket.write(b); }, o.onResize);
  link.onClose(() => {
    if (ended) return;
    ended = true;
    pump.close();
    socket.destroy();
  });
  if (o.rest?.length) pump.push(o.rest);
  socket.resume();
}

/** Serves one viewer of a live serial console: ready, batched output with acks, input, end. */
export function serveConsoleOn(link: ConsoleLink, con: SerialConsole, name: string, opts: { replay: boolean }): void {
  const holder = {};
  let ended = false;
  const end = (reason: ConsoleEndReason): void => {
    if (ended) return;
    ended = true;
    pump.flush();
    cleanup();
    endConsole(link, reason);
  };
  const pump = new ConsolePump({
    send: (chunk) => link.send(chunk),
    pause: () => con.hold(holder),
    resume: () => con.release(holder),
    onStall: () => end('too-slow'),
  });
  // The replay arrives synchronously inside addViewer: count it, so the UI can tell history
  // from live output.
  let replay: Buffer[] | null = [];
  const removeViewer = con.addViewer((chunk) => { if (replay) replay.push(chunk); else pump.push(chunk); }, { replay: opts.replay });
  const replayed = replay;
  replay = null;
  const replayBytes = replayed.reduce((n, c) => n + c.length, 0);
  sendControl(link, replayBytes > 0 ? { type: 'ready', vm: name, replayBytes } : { type: 'ready', vm: name });
  for (const c of replayed) pump.push(c);
  const onDisconnect = (): void => end('vm-stopped');
  con.once('disconnect', onDisconnect);
  const cleanup = (): void => {
    removeViewer();
    con.off('disconnect', onDisconnect);
    pump.close();
    con.release(holder);
  };
  onViewerMessages(link, pump, (b) => {
    try { con.write(b); } catch { end('vm-stopped'); }
  });
  link.onClose(() => {
    if (ended) return;
    ended = true;
    cleanup();
  });
}

/** Relays to the core daemon's unix socket (starting it when none runs). */
export function daemonEndpoint(): CoreEndpoint {
  return {
    serveRpc(link) {
      let sock: Socket | null = null;
      let closed = false;
      const early: string[] = [];
      const refused = connectionRefusalLog();
      link.onMessage((raw) => {
        // Checked here too, and re-serialized: one JSON per line, a raw newline cannot split it.
        const checked = checkRpcMessage(raw);
        if (!checked.ok) {
          refused('an RPC message', checked.error.message);
          try { link.send(checked.reply); } catch { /* closed */ }
          return;
        }
        const m = JSON.stringify(checked.msg);
        if (sock) sock.write(m + '\n'); else early.push(m);
      });
      link.onClose(() => { closed = true; sock?.end(); });
      openSocket({ autostart: true }).then((s) => {
        if (closed) { s.destroy(); return; }
        sock = s;
        s.on('error', () => {});
        s.write(JSON.stringify({ channel: 'rpc' }) + '\n');
        for (const m of early.splice(0)) s.write(m + '\n');
        onLines(s, (line) => { try { link.send(line); } catch { /* closed */ } }, () => s.destroy());
        s.on('close', () => { if (!closed) { closed = true; link.close(); } });
      }, () => link.close());
    },

    serveConsole(link, vmRef, opts) {
      let closed = false;
      link.onClose(() => { closed = true; });
      openConsoleStream(vmRef, opts.replay).then(({ socket, rest, vmName, replayBytes }) => {
        if (closed) { socket.destroy(); return; }
        // The raw stream carries no reason: ask the core whether the VM is still up.
        serveStreamOn(link, socket, { name: vmName, replayBytes, rest, endReason: () => relayEndReason(vmName) });
      }, (e: unknown) => {
        sendControl(link, { type: 'error', error: toPayload(e) });
        link.close();
      });
    },

    serveDisplay(link, vmRef) {
      relayDisplay(link, vmRef);
    },
  };
}

function relayDisplay(link: ConsoleLink, vmRef: string): void {
  let closed = false;
  link.onClose(() => { closed = true; });
  openDisplayStream(vmRef).then(({ socket, rest, vmName }) => {
    if (closed) { socket.destroy(); return; }
    serveStreamOn(link, socket, { name: vmName, display: true, rest, endReason: () => relayEndReason(vmName) });
  }, (e: unknown) => {
    sendControl(link, { type: 'error', error: toPayload(e) });
    link.close();
  });
}

async function relayEndReason(vm: string): Promise<ConsoleEndReason> {
  try {
    const c = await connectCore({ autostart: false });
    try {
      // The stream closes while the VM is still on its way down: wait for a settled state.
      for (let i = 0; i < 40; i++) {
        const { state } = await c.api.get(vm);
        if (!isActive(state)) return 'vm-stopped';
        if (state === 'running' || state === 'paused' || state === 'guest-error') return 'core-closing';
        await new Promise((r) => setTimeout(r, 250));
      }
      return 'core-closing';
    } finally {
      c.close();
    }
  } catch {
    return 'core-closing';
  }
}
