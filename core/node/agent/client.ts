// A qemu-ga client on the unix socket QEMU serves for the org.qemu.guest_agent.0 channel. QEMU
// accepts the connection whether or not an agent runs in the guest, and bytes written to a port
// nobody opened in the guest just wait: so every step has a timeout, and a guest without an agent
// is a quick 'timeout' error, never a hang. One session at a time per socket (QEMU serves one
// client on a channel; a second would sit in the listen backlog).
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { HangarError } from '../../common/errors.ts';
import { AgentReader, encodeCommand, encodeSync, isSyncAnswer } from './protocol.ts';
import type { AgentMessage } from './protocol.ts';

export const AGENT_SYNC_TIMEOUT_MS = 3000;
export const AGENT_COMMAND_TIMEOUT_MS = 10_000;

const NO_AGENT_FIX = 'install and start qemu-guest-agent in the guest (the VM has its channel)';

export class AgentSession {
  private readonly reader = new AgentReader();
  private waiter: ((m: AgentMessage | Error) => void) | null = null;
  private readonly queue: AgentMessage[] = [];
  private failure: Error | null = null;

  private constructor(private readonly sock: Socket) {
    sock.on('data', (chunk: Buffer) => {
      for (const m of this.reader.feed(chunk)) this.deliver(m);
    });
    const fail = (e: Error): void => {
      this.failure ??= e;
      this.deliver(e);
    };
    sock.on('error', (e) => fail(new HangarError('qmp-closed', `guest agent channel failed: ${e.message}`)));
    sock.on('close', () => fail(new HangarError('qmp-closed', 'guest agent channel closed')));
  }

  /** Connects and synchronises (guest-sync-delimited); a silent guest is a 'timeout' error after syncTimeoutMs. */
  static async open(socketPath: string, syncTimeoutMs = AGENT_SYNC_TIMEOUT_MS, signal?: AbortSignal): Promise<AgentSession> {
    const sock = await new Promise<Socket>((resolve, reject) => {
      const s = connect(socketPath);
      const t = setTimeout(() => { s.destroy(); reject(new HangarError('timeout', 'could not connect to the guest agent channel')); }, syncTimeoutMs);
      s.once('connect', () => { clearTimeout(t); resolve(s); });
      s.once('error', (e) => { clearTimeout(t); reject(new HangarError('invalid-state', `cannot open the guest agent channel: ${e.message}`)); });
      signal?.addEventListener('abort', () => { clearTimeout(t); s.destroy(); reject(new HangarError('busy', 'the guest agent session gave way')); }, { once: true });
    });
    const session = new AgentSession(sock);
    // Aborting closes the socket: whatever the session waits for fails at once ('qmp-closed').
    signal?.addEventListener('abort', () => session.close(), { once: true });
    try {
      await session.sync(syncTimeoutMs);
    } catch (e) {
      session.close();
      throw e;
    }
    return session;
  }

  private async sync(timeoutMs: number): Promise<void> {
    const id = 1 + Math.floor(Math.random() * 0x7fffffff);
    this.reader.expectDelimiter();
    this.queue.length = 0;
    this.sock.write(encodeSync(id));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      const msg = await this.next(left, () => new HangarError('timeout', `the guest agent did not answer within ${Math.round(timeoutMs / 100) / 10} s: it is not running in the guest, or not installed`, NO_AGENT_FIX));
      if (isSyncAnswer(msg, id)) return;
    }
  }

  /**
   * Runs a command and returns its `return`. An agent error is 'qmp-error' with its description.
   * noReply: the command answers only when it fails (guest-shutdown): waits timeoutMs for an error.
   */
  async command<T = unknown>(execute: string, args?: Record<string, unknown>, opts: { timeoutMs?: number; noReply?: boolean } = {}): Promise<T | undefined> {
    const timeoutMs = opts.timeoutMs ?? AGENT_COMMAND_TIMEOUT_MS;
    this.sock.write(encodeCommand(execute, args));
    let msg: AgentMessage;
    try {
      msg = await this.next(timeoutMs, () => new HangarError('timeout', `the guest agent did not answer ${execute} within ${Math.round(timeoutMs / 100) / 10} s`));
    } catch (e) {
      if (opts.noReply && e instanceof HangarError && (e.code === 'timeout' || e.code === 'qmp-closed')) return undefined;
      throw e;
    }
    if (msg.error) throw new HangarError('qmp-error', `guest agent: ${execute} failed: ${msg.error.desc ?? msg.error.class ?? 'error'}`);
    return msg.return as T;
  }

  close(): void {
    this.sock.destroy();
  }

  private deliver(m: AgentMessage | Error): void {
    const w = this.waiter;
    if (w) {
      this.waiter = null;
      w(m);
    } else if (!(m instanceof Error)) {
      this.queue.push(m);
    }
  }

  private next(timeoutMs: number, onTimeout: () => Error): Promise<AgentMessage> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.failure) return Promise.reject(this.failure);
    if (timeoutMs <= 0) return Promise.reject(onTimeout());
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.waiter = null; reject(onTimeout()); }, timeoutMs);
      this.waiter = (m) => {
        clearTimeout(t);
        if (m instanceof Error) reject(m); else resolve(m);
      };
    });
  }
}

const locks = new Map<string, Promise<unknown>>();
/** A background session in progress per socket, and how to end it. */
const backgroundRuns = new Map<string, AbortController>();

/**
 * Runs fn on a fresh, synchronised session on socketPath, one at a time per socket; closes it after.
 * background (the list's poll, agent-watch.ts): never waits behind another caller (a 'busy' error
 * when the socket is in use) and gives way at once to any other caller (its session is closed,
 * the poll fails with 'busy'), so polling never delays a shutdown, a freeze or an exec.
 */
export function withAgent<T>(socketPath: string, fn: (s: AgentSession) => Promise<T>, syncTimeoutMs?: number, opts: { background?: boolean } = {}): Promise<T> {
  if (opts.background && locks.has(socketPath)) {
    return Promise.reject(new HangarError('busy', 'the guest agent channel is in use'));
  }
  if (!opts.background) backgroundRuns.get(socketPath)?.abort();
  const abort = opts.background ? new AbortController() : null;
  if (abort) backgroundRuns.set(socketPath, abort);
  const prev = locks.get(socketPath) ?? Promise.resolve();
  const run = prev.catch(() => {}).then(async () => {
    try {
      const session = await AgentSession.open(socketPath, syncTimeoutMs, abort?.signal);
      try {
        return await fn(session);
      } finally {
        session.close();
      }
    } catch (e) {
      if (abort?.signal.aborted) throw new HangarError('busy', 'the guest agent session gave way to another caller');
      throw e;
    } finally {
      if (abort && backgroundRuns.get(socketPath) === abort) backgroundRuns.delete(socketPath);
    }
  });
  const tail = run.catch(() => {});
  locks.set(socketPath, tail);
  void tail.then(() => { if (locks.get(socketPath) === tail) locks.delete(socketPath); });
  return run;
}
