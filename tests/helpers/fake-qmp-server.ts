// A scripted QMP server on a unix socket, so QMP clients can be tested without QEMU — including
// the nasty cases (split writes, interleaved events, early EOF) real QEMU rarely produces on cue.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ReceivedCommand {
  execute: string;
  arguments?: Record<string, unknown>;
  /** The whole parsed request, including its id. */
  raw: Record<string, unknown>;
}

export type FakeReplyValue =
  | { return: unknown }
  | { error: { class: string; desc: string } }
  /** Leave the command unanswered; the test answers later with conn.reply(). */
  | { noReply: true };

/** A canned reply, or a function that may answer itself (return nothing) or return a reply. */
export type FakeReply =
  | FakeReplyValue
  | ((cmd: ReceivedCommand, conn: FakeQmpConnection) => FakeReplyValue | void | Promise<FakeReplyValue | void>);

export interface FakeQmpOptions {
  /** The greeting's QMP object; false sends none (the test can sendRaw one). */
  greeting?: Record<string, unknown> | false;
  /** Per-command replies. qmp_capabilities answers {} by default; others get CommandNotFound. */
  replies?: Record<string, FakeReply>;
  /** Write every outgoing byte as its own chunk (can be toggled per connection later). */
  splitWrites?: boolean;
  /** Called as soon as a client connects, before the greeting is written. */
  onConnection?: (conn: FakeQmpConnection) => void;
}

export const FAKE_GREETING = {
  version: { qemu: { major: 7, minor: 2, micro: 0 }, package: 'fake-qmp' },
  capabilities: ['oob'],
};

/** One serialized QMP message as QEMU writes it (QEMU ends lines with CRLF). */
export function qmpLine(msg: unknown): string {
  return `${JSON.stringify(msg)}\r\n`;
}

export class FakeQmpConnection {
  readonly socket: Socket;
  readonly received: ReceivedCommand[] = [];
  splitWrites: boolean;
  negotiated = false;
  readonly #server: FakeQmpServer;
  #queue: Promise<void> = Promise.resolve();
  #inbox = '';
  #waiters: Array<() => boolean> = [];

  constructor(server: FakeQmpServer, socket: Socket, splitWrites: boolean) {
    this.#server = server;
    this.socket = socket;
    this.splitWrites = splitWrites;
    socket.setEncoding('utf8');
    socket.on('error', () => {}); // the client hanging up mid-write is part of the tests
    socket.on('data', (chunk: string) => this.#onData(chunk));
  }

  /** Queued behind earlier writes so byte-split messages never interleave. */
  sendRaw(data: string | Buffer): Promise<void> {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    this.#queue = this.#queue.then(() => this.#write(buf));
    return this.#queue;
  }

  send(msg: unknown): Promise<void> {
    return this.sendRaw(qmpLine(msg));
  }

  sendEvent(event: string, data?: Record<string, unknown>): Promise<void> {
    const msg: Record<string, unknown> = { event, timestamp: { seconds: 1700000000, microseconds: 42 } };
    if (data !== undefined) msg.data = data;
    return this.send(msg);
  }

  /** Answers a command received earlier (echoing its id, as QEMU does). */
  reply(cmd: ReceivedCommand, value: FakeReplyValue): Promise<void> {
    if ('noReply' in value) return this.#queue;
    const msg: Record<string, unknown> = { ...value };
    if ('id' in cmd.raw) msg.id = cmd.raw.id;
    return this.send(msg);
  }

  /** Resolves with the nth (1-based) command of that name on this connection, past or future. */
  waitForCommand(name: string, nth = 1): Promise<ReceivedCommand> {
    return new Promise((resolve) => {
      const check = (): boolean => {
        const found = this.received.filter((c) => c.execute === name)[nth - 1];
        if (found) resolve(found);
        return found !== undefined;
      };
      if (!check()) this.#waiters.push(check);
    });
  }

  /** Half-closes after everything queued has been written (QEMU exiting). */
  end(): Promise<void> {
    this.#queue = this.#queue.then(() => new Promise<void>((resolve) => this.socket.end(resolve)));
    return this.#queue;
  }

  destroy(): void {
    this.socket.destroy();
  }

  async #write(buf: Buffer): Promise<void> {
    if (!this.socket.writable) return;
    if (!this.splitWrites) {
      this.socket.write(buf);
      return;
    }
    for (let i = 0; i < buf.length && this.socket.writable; i++) {
      this.socket.write(buf.subarray(i, i + 1));
      // One loop turn per byte: the client reads each byte as its own chunk.
      await new Promise((r) => setTimeout(r, 0));
    }
  }

  #onData(chunk: string): void {
    this.#inbox += chunk;
    let nl = this.#inbox.indexOf('\n');
    while (nl >= 0) {
      const line = this.#inbox.slice(0, nl).trim();
      this.#inbox = this.#inbox.slice(nl + 1);
      if (line) void this.#onCommand(JSON.parse(line) as Record<string, unknown>);
      nl = this.#inbox.indexOf('\n');
    }
  }

  async #onCommand(raw: Record<string, unknown>): Promise<void> {
    const cmd: ReceivedCommand = { execute: String(raw.execute), raw };
    if (raw.arguments !== undefined) cmd.arguments = raw.arguments as Record<string, unknown>;
    this.received.push(cmd);
    this.#server.received.push(cmd);
    this.#waiters = this.#waiters.filter((w) => !w());

    // Mirror QEMU: nothing but qmp_capabilities works before negotiation.
    if (!this.negotiated && cmd.execute !== 'qmp_capabilities') {
      await this.reply(cmd, { error: { class: 'CommandNotFound', desc: "Expecting capabilities negotiation with 'qmp_capabilities'" } });
      return;
    }
    const script = this.#server.replies.get(cmd.execute);
    if (cmd.execute === 'qmp_capabilities') this.negotiated = true;
    let value: FakeReplyValue | void;
    if (typeof script === 'function') value = await script(cmd, this);
    else if (script) value = script;
    else if (cmd.execute === 'qmp_capabilities') value = { return: {} };
    else value = { error: { class: 'CommandNotFound', desc: `The command ${cmd.execute} has not been found` } };
    if (value) await this.reply(cmd, value);
  }
}

export class FakeQmpServer {
  readonly path: string;
  readonly replies: Map<string, FakeReply>;
  readonly connections: FakeQmpConnection[] = [];
  /** Every command from every connection, in arrival order. */
  readonly received: ReceivedCommand[] = [];
  readonly #dir: string;
  readonly #server: Server;
  readonly #opts: FakeQmpOptions;
  #waiters: Array<() => boolean> = [];

  private constructor(dir: string, opts: FakeQmpOptions) {
    this.#dir = dir;
    this.path = join(dir, 'qmp.sock');
    this.#opts = opts;
    this.replies = new Map(Object.entries(opts.replies ?? {}));
    this.#server = createServer((socket) => this.#onConnection(socket));
  }

  static async start(opts: FakeQmpOptions = {}): Promise<FakeQmpServer> {
    const srv = new FakeQmpServer(await mkdtemp(join(tmpdir(), 'hangar-fakeqmp-')), opts);
    await new Promise<void>((resolve, reject) => {
      srv.#server.once('error', reject);
      srv.#server.listen(srv.path, resolve);
    });
    return srv;
  }

  /** Sets (or replaces) the reply for one command. */
  script(command: string, reply: FakeReply): this {
    this.replies.set(command, reply);
    return this;
  }

  /** Resolves with the nth (0-based) connection once it exists. */
  connection(index = 0): Promise<FakeQmpConnection> {
    return new Promise((resolve) => {
      const check = (): boolean => {
        const c = this.connections[index];
        if (c) resolve(c);
        return c !== undefined;
      };
      if (!check()) this.#waiters.push(check);
    });
  }

  async stop(): Promise<void> {
    for (const c of this.connections) c.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    await rm(this.#dir, { recursive: true, force: true });
  }

  #onConnection(socket: Socket): void {
    const conn = new FakeQmpConnection(this, socket, this.#opts.splitWrites ?? false);
    this.connections.push(conn);
    this.#opts.onConnection?.(conn);
    this.#waiters = this.#waiters.filter((w) => !w());
    const greeting = this.#opts.greeting ?? FAKE_GREETING;
    if (greeting !== false) void conn.send({ QMP: greeting });
  }
}
