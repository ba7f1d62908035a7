// QMP wire layer: newline-framed JSON, replies matched by id, events, and fail-fast once the
// connection is gone (a dead QEMU must never leave a caller hanging).
import { EventEmitter } from 'node:events';
import { createConnection } from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import type { Duplex } from 'node:stream';
import { HangarError } from '../../common/errors.ts';

export interface QmpVersion {
  qemu: { major: number; minor: number; micro: number };
  package: string;
}

export interface QmpGreeting {
  version: QmpVersion;
  capabilities: string[];
}

export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

export interface QmpTransportEvents {
  event: [QmpEvent];
  /** The error that ended the connection, or undefined when close() was called. */
  close: [HangarError | undefined];
  /** The monitor stopped (true) or started again (false) answering: see notResponding. */
  health: [boolean];
}

export interface QmpConnectOptions {
  /** Budget for connect + greeting + capabilities negotiation. */
  connectTimeoutMs?: number;
  /** Default per-command timeout (there is always one: 0 or less means the default). */
  commandTimeoutMs?: number;
  /** How often a silent monitor is asked something (query-status), to notice a hung QEMU. */
  probeIntervalMs?: number;
}

export interface QmpExecuteOptions {
  /** Overrides the transport default (0 or less means the default: no command waits forever). */
  timeoutMs?: number;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;
export const DEFAULT_PROBE_INTERVAL_MS = 3_000;
/** A monitor that leaves a command unanswered this long counts as not responding (libvirt's "monitor not responding"). */
export const NOT_RESPONDING_AFTER_MS = 5_000;

function validTimeout(ms: number | undefined): ms is number {
  return ms !== undefined && ms > 0 && Number.isFinite(ms);
}

const CLOSED_HINT = 'QEMU exited or closed its monitor; check the VM log, then restart the VM.';

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: HangarError) => void;
  timer: NodeJS.Timeout;
  sentAt: number;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export class QmpTransport extends EventEmitter<QmpTransportEvents> {
  readonly #stream: Duplex;
  readonly #label: string;
  readonly #commandTimeoutMs: number;
  readonly #decoder = new StringDecoder('utf8');
  readonly #pending = new Map<string, Pending>();
  #buffer = '';
  #nextId = 1;
  #greeting: QmpGreeting | undefined;
  #closeError: HangarError | undefined;
  #greeted!: { resolve: () => void; reject: (e: HangarError) => void };
  readonly #greetedPromise: Promise<void>;
  /** When QEMU last sent anything (a reply, an event, a greeting). */
  #lastRx = Date.now();
  #probe: NodeJS.Timeout | undefined;
  #probing = false;
  #reportedNotResponding = false;

  private constructor(stream: Duplex, label: string, commandTimeoutMs: number) {
    super();
    this.#stream = stream;
    this.#label = label;
    this.#commandTimeoutMs = validTimeout(commandTimeoutMs) ? commandTimeoutMs : DEFAULT_COMMAND_TIMEOUT_MS;
    this.#greetedPromise = new Promise<void>((resolve, reject) => {
      this.#greeted = { resolve, reject };
    });
    stream.on('data', (chunk: Buffer | string) => this.#onData(chunk));
    stream.on('end', () => this.#fail(this.#closed('QEMU closed the QMP connection')));
    stream.on('close', () => this.#fail(this.#closed('QMP connection closed')));
    // Kept attached forever so a late socket error can never become an uncaught exception.
    stream.on('error', (err: NodeJS.ErrnoException) =>
      this.#fail(this.#closed(`QMP connection failed: ${err.message}`, err.code)));
  }

  /** Connects to QEMU's QMP unix socket and negotiates capabilities. */
  static async connect(socketPath: string, opts: QmpConnectOptions = {}): Promise<QmpTransport> {
    return QmpTransport.fromStream(createConnection(socketPath), { ...opts, label: socketPath });
  }

  /** Runs the handshake over an already-open stream (tests, or sockets opened elsewhere). */
  static async fromStream(stream: Duplex, opts: QmpConnectOptions & { label?: string } = {}): Promise<QmpTransport> {
    const t = new QmpTransport(stream, opts.label ?? 'QMP stream', opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS);
    const ms = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const timer = setTimeout(() => t.#fail(new HangarError('timeout',
      `QMP handshake with ${t.#label} did not finish within ${ms} ms`,
      'Make sure the path is a QEMU QMP socket (-qmp unix:PATH,server=on) and QEMU is not stuck.')), ms);
    try {
      await t.#greetedPromise;
      await t.execute('qmp_capabilities', undefined, { timeoutMs: ms });
    } finally {
      clearTimeout(timer);
    }
    t.#startProbe(validTimeout(opts.probeIntervalMs) ? opts.probeIntervalMs : DEFAULT_PROBE_INTERVAL_MS);
    return t;
  }

  /**
   * A stopped (SIGSTOP) or hung QEMU answers nothing; without a question pending nobody would
   * notice. When the monitor has been silent for an interval, ask it something cheap.
   */
  #startProbe(intervalMs: number): void {
    this.#probe = setInterval(() => {
      this.#checkHealth();
      if (this.#closeError || this.#probing || Date.now() - this.#lastRx < intervalMs) return;
      this.#probing = true;
      this.execute('query-status').catch(() => {}).finally(() => { this.#probing = false; });
    }, intervalMs);
    this.#probe.unref();
  }

  /**
   * How long QEMU has left a command unanswered while sending nothing at all (0 when it is
   * answering). Above NOT_RESPONDING_AFTER_MS the VM counts as not responding.
   */
  silentForMs(now = Date.now()): number {
    if (this.#closeError || this.#pending.size === 0) return 0;
    let oldest = Infinity;
    for (const p of this.#pending.values()) oldest = Math.min(oldest, p.sentAt);
    return Math.max(0, now - Math.max(oldest, this.#lastRx));
  }

  get notResponding(): boolean {
    return this.silentForMs() >= NOT_RESPONDING_AFTER_MS;
  }

  /** Tells listeners when the monitor goes silent or comes back (so the UI updates unasked). */
  #checkHealth(): void {
    const now = !this.#closeError && this.notResponding;
    if (now === this.#reportedNotResponding) return;
    this.#reportedNotResponding = now;
    this.emit('health', now);
  }

  get greeting(): QmpGreeting {
    if (!this.#greeting) throw new HangarError('internal', 'QMP greeting read before the handshake');
    return this.#greeting;
  }

  get isClosed(): boolean {
    return this.#closeError !== undefined;
  }

  /** Why the connection ended (also set by close()); later execute() calls reject with it. */
  get closeError(): HangarError | undefined {
    return this.#closeError;
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: QmpExecuteOptions = {}): Promise<T> {
    if (this.#closeError) return Promise.reject(this.#closeError);
    const id = `hangar-${this.#nextId++}`;
    return new Promise<T>((resolve, reject) => {
      // Every command has a deadline: a stopped or hung QEMU never answers.
      const ms = validTimeout(opts.timeoutMs) ? opts.timeoutMs : this.#commandTimeoutMs;
      const timer = setTimeout(() => {
        // Forgetting the id makes the late reply fall through as unknown and get dropped.
        this.#pending.delete(id);
        reject(new HangarError('timeout', `QEMU is not responding: QMP ${command} got no reply within ${ms} ms (${this.#label})`,
          'QEMU may be stopped (SIGSTOP), hung or very busy: retry, or force the VM off.', { command }));
      }, ms);
      const p: Pending = { command, resolve: resolve as (v: unknown) => void, reject, timer, sentAt: Date.now() };
      this.#pending.set(id, p);
      const msg = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
      this.#stream.write(`${JSON.stringify(msg)}\n`);
    });
  }

  /** Drops the connection; pending calls reject with 'qmp-closed'. Idempotent. */
  close(): void {
    this.#fail(new HangarError('qmp-closed', `QMP connection to ${this.#label} was closed`), true);
  }

  #closed(message: string, cause?: string): HangarError {
    return new HangarError('qmp-closed', `${message} (${this.#label})`, CLOSED_HINT, cause ? { cause } : undefined);
  }

  #fail(err: HangarError, byUser = false): void {
    if (this.#closeError) return;
    this.#closeError = err;
    this.#buffer = '';
    clearInterval(this.#probe);
    this.#greeted.reject(err);
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.#pending.clear();
    this.#stream.destroy();
    this.emit('close', byUser ? undefined : err);
  }

  #onData(chunk: Buffer | string): void {
    if (this.#closeError) return;
    this.#lastRx = Date.now();
    const from = this.#buffer.length;
    this.#buffer += typeof chunk === 'string' ? chunk : this.#decoder.write(chunk);
    let nl = this.#buffer.indexOf('\n', from);
    while (nl >= 0) {
      // Consume the line before dispatching so a throwing listener leaves the buffer consistent.
      const line = this.#buffer.slice(0, nl).trim();
      this.#buffer = this.#buffer.slice(nl + 1);
      if (line) this.#onLine(line);
      if (this.#closeError) return;
      nl = this.#buffer.indexOf('\n');
    }
    if (this.#reportedNotResponding) this.#checkHealth();
  }

  #onLine(line: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      this.#fail(this.#closed(`QMP protocol error: invalid JSON from QEMU: ${line.slice(0, 120)}`));
      return;
    }
    if (!isObject(msg)) {
      this.#fail(this.#closed(`QMP protocol error: expected a JSON object, got ${line.slice(0, 120)}`));
      return;
    }
    if (!this.#greeting) {
      this.#onGreeting(msg, line);
      return;
    }
    if (typeof msg.event === 'string') {
      this.#onEvent(msg);
    } else if ('return' in msg || 'error' in msg) {
      this.#onReply(msg);
    }
    // Anything else is a message kind this QEMU added later: ignore it.
  }

  #onGreeting(msg: Json, line: string): void {
    const qmp = msg.QMP;
    if (!isObject(qmp) || !isObject(qmp.version)) {
      this.#fail(this.#closed(`QMP protocol error: expected a greeting, got ${line.slice(0, 120)}`));
      return;
    }
    this.#greeting = {
      version: qmp.version as unknown as QmpVersion,
      capabilities: Array.isArray(qmp.capabilities) ? (qmp.capabilities as string[]) : [],
    };
    this.#greeted.resolve();
  }

  #onEvent(msg: Json): void {
    const ts = isObject(msg.timestamp) ? msg.timestamp : {};
    this.emit('event', {
      event: msg.event as string,
      data: isObject(msg.data) ? msg.data : {},
      timestamp: {
        seconds: typeof ts.seconds === 'number' ? ts.seconds : 0,
        microseconds: typeof ts.microseconds === 'number' ? ts.microseconds : 0,
      },
    });
  }

  #onReply(msg: Json): void {
    // Replies without a known id (late after a timeout, or QEMU's id-less parse errors) are dropped.
    const p = typeof msg.id === 'string' ? this.#pending.get(msg.id) : undefined;
    if (!p) return;
    this.#pending.delete(msg.id as string);
    clearTimeout(p.timer);
    if ('error' in msg) {
      const e = isObject(msg.error) ? msg.error : {};
      const cls = typeof e.class === 'string' ? e.class : 'GenericError';
      const desc = typeof e.desc === 'string' ? e.desc : JSON.stringify(msg.error);
      p.reject(new HangarError('qmp-error', `QMP ${p.command} failed: ${desc}`, undefined, { class: cls }));
    } else {
      p.resolve(msg.return);
    }
  }
}
