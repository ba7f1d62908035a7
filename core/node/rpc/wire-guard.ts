// What a client may send the core, checked before anything acts on it: the unix socket's hello
// line and every RPC message (unix socket, WebSocket, MessagePort). A bad message is refused on
// its own connection with an error naming the problem, and logged; it never throws into the
// event loop (an unhandled rejection would end the core and its supervision of every VM).
import { coreApiMethods } from '../../common/api.ts';
import { HangarError } from '../../common/errors.ts';
import type { ErrorPayload } from '../../common/errors.ts';
import type { Hello } from './framing.ts';

/** One log line per refusal: the core's stderr (daemon.log for a daemon, the terminal for serve). */
export function logRefusal(where: string, why: string): void {
  console.error(`hangar core: refused ${where}: ${why}`);
}

/**
 * logRefusal for one connection: its first `limit` refusals, then one line saying the rest go
 * unlogged (a client looping on bad messages must not fill the log; each still gets its reply).
 */
export function connectionRefusalLog(limit = 10): (where: string, why: string) => void {
  let n = 0;
  return (where, why) => {
    n++;
    if (n <= limit) logRefusal(where, why);
    else if (n === limit + 1) logRefusal(where, `${why} (further refusals on this connection are not logged)`);
  };
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'string' ? 'a string' : typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

function snippet(text: string): string {
  const s = text.length > 80 ? `${text.slice(0, 80)}...` : text;
  return JSON.stringify(s);
}

const MAX_VM_REF = 256;

/** Parses the unix socket's first line; throws HangarError('invalid-input') naming what is wrong. */
export function parseHello(line: string): Hello {
  const bad = (why: string): HangarError => new HangarError('invalid-input', `bad hello line: ${why}`,
    'the first line must be {"channel":"rpc"}, {"channel":"console","vm":NAME} or {"channel":"display","vm":NAME}');
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw bad(`not JSON: ${snippet(line)}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(`expected a JSON object, got ${describe(v)}`);
  const o = v as Record<string, unknown>;
  if (o.channel === 'rpc') return { channel: 'rpc' };
  if (o.channel === 'migration') {
    if (typeof o.vm !== 'string' || !/^[0-9a-f-]{36}$/.test(o.vm)) throw bad(`"vm" of a migration channel must be a VM id, got ${describe(o.vm)}`);
    if (typeof o.token !== 'string' || !/^[0-9a-f]{64}$/.test(o.token)) throw bad('"token" of a migration channel must be 64 hex digits');
    if (o.stream !== 'ram' && o.stream !== 'nbd') throw bad(`"stream" of a migration channel must be "ram" or "nbd", got ${describe(o.stream)}`);
    return { channel: 'migration', vm: o.vm, token: o.token, stream: o.stream };
  }
  if (o.channel !== 'console' && o.channel !== 'display') {
    throw bad(`unknown channel ${typeof o.channel === 'string' ? snippet(o.channel) : `(${describe(o.channel)})`}`);
  }
  if (typeof o.vm !== 'string' || o.vm.length === 0 || o.vm.length > MAX_VM_REF) {
    throw bad(`"vm" must be a VM name or id (a string of 1-${MAX_VM_REF} characters), got ${describe(o.vm)}`);
  }
  if (o.channel === 'display') return { channel: 'display', vm: o.vm };
  if (o.replay !== undefined && typeof o.replay !== 'boolean') throw bad(`"replay" must be true or false, got ${describe(o.replay)}`);
  return o.replay === undefined ? { channel: 'console', vm: o.vm } : { channel: 'console', vm: o.vm, replay: o.replay };
}

/** A birpc request as the core accepts it (the core never asks a client anything back). */
export interface RpcRequest { t: 'q'; i?: string; m: string; a: unknown[]; o?: boolean }

export type CheckedRpcMessage =
  | { ok: true; msg: RpcRequest }
  | { ok: false; error: ErrorPayload; reply: string };

const methods = new Set<string>(coreApiMethods);

/**
 * Checks one RPC message. A refusal carries the reply to send: a birpc response with the
 * request's id when it had a usable one (so the caller's promise rejects with the reason), or
 * without one (a client ignores a response it did not ask for).
 */
export function checkRpcMessage(raw: string): CheckedRpcMessage {
  let id: string | undefined;
  const refuse = (message: string): CheckedRpcMessage => {
    const error = new HangarError('invalid-input', `malformed RPC message: ${message}`,
      'this is a client bug or a mismatched version: each message is one birpc request {"t":"q","i":ID,"m":METHOD,"a":[ARGS]}').toPayload();
    return { ok: false, error, reply: JSON.stringify(id === undefined ? { t: 's', e: error } : { t: 's', i: id, e: error }) };
  };
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return refuse(`not JSON: ${snippet(raw)}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return refuse(`expected a JSON object, got ${describe(v)}`);
  const o = v as Record<string, unknown>;
  if (typeof o.i === 'string' && o.i.length > 0 && o.i.length <= 128) id = o.i;
  else if (o.i !== undefined) return refuse(`"i" (the request id) must be a string of 1-128 characters, got ${describe(o.i)}`);
  if (o.t !== 'q') return refuse(`"t" must be "q" (a request), got ${typeof o.t === 'string' ? snippet(o.t) : describe(o.t)}`);
  if (typeof o.m !== 'string') return refuse(`"m" (the method) must be a string, got ${describe(o.m)}`);
  if (!methods.has(o.m)) return refuse(`unknown core method ${snippet(o.m)}`);
  if (o.a !== undefined && !Array.isArray(o.a)) return refuse(`"a" (the arguments) must be an array, got ${describe(o.a)}`);
  if (o.o !== undefined && typeof o.o !== 'boolean') return refuse(`"o" must be true or false, got ${describe(o.o)}`);
  const msg: RpcRequest = { t: 'q', m: o.m, a: (o.a as unknown[] | undefined) ?? [] };
  if (id !== undefined) msg.i = id;
  if (o.o === true) msg.o = true;
  return { ok: true, msg };
}

let lastResortInstalled = false;

/**
 * Last resort only: an unhandled rejection is a bug, but ending the process would end the
 * supervision of every VM. Log it loudly (stderr, which is daemon.log for a daemon) and carry on.
 * Malformed input never gets here: it is refused where it arrives (checkRpcMessage, parseHello).
 */
export function installLastResortHandler(processName: string): void {
  if (lastResortInstalled) return;
  lastResortInstalled = true;
  process.on('unhandledRejection', (reason) => {
    const text = reason instanceof Error ? (reason.stack ?? reason.message) : (() => { try { return JSON.stringify(reason); } catch { return String(reason); } })();
    console.error(`hangar core (${processName}, pid ${process.pid}): UNHANDLED REJECTION (a bug; the core keeps running): ${text}`);
  });
}
