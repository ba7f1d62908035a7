// The serial console of one VM. QEMU is the chardev server
// (-chardev socket,id=serial0,path=RUNTIME/serial.sock,server=on,wait=off); the core connects as
// the client and owns the console: every byte from the guest goes to the scrollback ring, the
// on-disk serial log and every viewer; viewer input goes to the guest.
//
// The core may restart while QEMU keeps running: a fresh SerialConsole then calls
// attach({ seedFromLog: true }) so the scrollback starts from the log's tail. When QEMU goes away
// the console keeps its ring and log (still readable) and can attach() again on the next start.

import { EventEmitter } from 'node:events';
import { createConnection } from 'node:net';
import type { Socket } from 'node:net';
import { HangarError } from '../../common/errors.ts';
import { ByteRing, DEFAULT_RING_CAPACITY } from './ring-buffer.ts';
import { SerialLog } from './serial-log.ts';

export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
const CONNECT_RETRY_MS = 50;

export interface SerialConsoleOptions {
  /** QEMU's chardev socket (RUNTIME/serial.sock). */
  socketPath: string;
  /** The VM's directory; the log lives in <vmDir>/logs/serial.log. */
  vmDir: string;
  /** Scrollback ring capacity in bytes (default 1 MiB). */
  scrollbackBytes?: number;
  /** Log to write to; by default the console creates (and owns) a SerialLog for vmDir. */
  log?: SerialLog;
}

export interface AttachOptions {
  /** Seed an empty scrollback from the log's tail first (a restarted core re-attaching). */
  seedFromLog?: boolean;
  /** How long to keep retrying while the socket does not exist / refuses (default 5000 ms). */
  connectTimeoutMs?: number;
}

export interface AddViewerOptions {
  /** Send the current scrollback first (default true). */
  replay?: boolean;
}

export type Viewer = (chunk: Buffer) => void;

/** 'remote': QEMU closed the socket (the VM stopped); 'detached': detach()/close() was called. */
export type DisconnectReason = 'remote' | 'detached';

export type SerialConsoleEvents = {
  /** Live bytes from the guest (after they reached the ring, log and viewers). */
  data: [chunk: Buffer];
  connect: [];
  disconnect: [reason: DisconnectReason];
  /** The serial log stopped being written (with why), or works again (null). The console itself carries on. */
  'log-status': [error: HangarError | null];
};

interface ViewerEntry {
  fn: Viewer;
  active: boolean;
}

const RETRYABLE = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN']);

function errCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : undefined;
}

function errMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function connectOnce(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ path });
    const onError = (e: Error): void => {
      sock.destroy();
      reject(e);
    };
    sock.once('error', onError);
    sock.once('connect', () => {
      sock.off('error', onError);
      resolve(sock);
    });
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class SerialConsole extends EventEmitter<SerialConsoleEvents> {
  readonly socketPath: string;
  readonly vmDir: string;
  readonly log: SerialLog;

  private readonly ring: ByteRing;
  private readonly ownsLog: boolean;
  private socket: Socket | null = null;
  /** Copy-on-write, so adding/removing viewers during a dispatch never affects that dispatch. */
  private viewers: readonly ViewerEntry[] = [];
  /** Bumped by detach() to cancel an attach in progress. */
  private generation = 0;
  private attaching: Promise<void> | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;
  /** Viewers that asked to stop reading from the guest (flow control); read resumes when empty. */
  private readonly holders = new Set<object>();

  constructor(opts: SerialConsoleOptions) {
    super();
    this.socketPath = opts.socketPath;
    this.vmDir = opts.vmDir;
    this.ring = new ByteRing(opts.scrollbackBytes ?? DEFAULT_RING_CAPACITY);
    this.ownsLog = opts.log === undefined;
    this.log = opts.log ?? new SerialLog(opts.vmDir, { onStatus: (e) => this.emit('log-status', e) });
  }

  get connected(): boolean {
    return this.socket !== null;
  }

  /**
   * Connect to QEMU's serial socket, retrying while it does not exist yet (QEMU creates it at
   * start). No-op if already connected; concurrent calls share one attempt. Rejects with
   * HangarError('timeout') naming the socket path when it never accepts.
   */
  attach(opts: AttachOptions = {}): Promise<void> {
    if (this.closed) return Promise.reject(new HangarError('invalid-state', 'the serial console is closed'));
    if (this.socket) return Promise.resolve();
    if (this.attaching) return this.attaching;
    const p = this.doAttach(opts).finally(() => {
      if (this.attaching === p) this.attaching = null;
    });
    this.attaching = p;
    return p;
  }

  private async doAttach(opts: AttachOptions): Promise<void> {
    const gen = ++this.generation;
    const cancelled = (): HangarError =>
      new HangarError('invalid-state', `attaching to the serial console ${this.socketPath} was cancelled`);

    if (opts.seedFromLog && this.ring.size === 0) {
      await this.log.flush().catch(() => undefined);
      // Best effort: an unreadable log must not keep the console from connecting.
      const seed = await SerialLog.tail(this.vmDir, this.ring.capacity).catch(() => Buffer.alloc(0));
      if (gen !== this.generation) throw cancelled();
      // Only if nothing arrived meanwhile (nothing can: we are not connected yet).
      if (seed.length > 0 && this.ring.size === 0) {
        this.ring.append(seed);
        // Viewers added before seeding received an empty snapshot; give them the history now.
        this.dispatch(seed);
      }
    }

    const timeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    for (;;) {
      if (gen !== this.generation) throw cancelled();
      try {
        const sock = await connectOnce(this.socketPath);
        if (gen !== this.generation) {
          sock.destroy();
          throw cancelled();
        }
        this.adopt(sock);
        return;
      } catch (e) {
        if (e instanceof HangarError) throw e;
        const code = errCode(e);
        if (code === undefined || !RETRYABLE.has(code)) {
          throw new HangarError('io-error',
            `cannot connect to the serial console socket ${this.socketPath}: ${errMessage(e)}`,
            'check that the path is a socket created by QEMU and is accessible',
            { path: this.socketPath, code });
        }
        lastError = e;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new HangarError('timeout',
          `timed out after ${timeoutMs} ms waiting for the serial console socket ${this.socketPath}` +
            (lastError ? ` (${errCode(lastError)})` : ''),
          'is the VM running? QEMU creates this socket when it starts',
          { path: this.socketPath, code: errCode(lastError) });
      }
      await delay(Math.min(CONNECT_RETRY_MS, left));
    }
  }

  private adopt(sock: Socket): void {
    this.socket = sock;
    if (this.holders.size > 0) sock.pause();
    sock.on('data', (chunk: Buffer) => {
      if (this.socket === sock) this.onData(chunk);
    });
    // 'close' always follows an error; that is where the disconnect is handled.
    sock.on('error', () => undefined);
    sock.on('close', () => {
      if (this.socket !== sock) return;
      this.socket = null;
      this.emit('disconnect', 'remote');
    });
    this.emit('connect');
  }

  private onData(chunk: Buffer): void {
    this.ring.append(chunk);
    this.log.append(chunk);
    this.dispatch(chunk);
    this.emit('data', chunk);
  }

  private dispatch(chunk: Buffer): void {
    for (const v of this.viewers) {
      if (!v.active) continue;
      try {
        v.fn(chunk);
      } catch {
        // A broken viewer must not stop the others or the console.
      }
    }
  }

  /**
   * Register a viewer. With replay (default) it first receives the current scrollback (one call,
   * skipped when empty), then every live chunk: snapshot and registration happen synchronously,
   * so there is no gap and no duplicate. Chunks are shared: viewers must not mutate them.
   * Exceptions thrown by a viewer are swallowed (the viewer stays registered).
   * Returns the unsubscribe function (idempotent).
   */
  addViewer(fn: Viewer, opts: AddViewerOptions = {}): () => void {
    const entry: ViewerEntry = { fn, active: true };
    if (opts.replay ?? true) {
      const snap = this.ring.snapshot();
      if (snap.length > 0) {
        try {
          fn(snap);
        } catch {
          // Same policy as for live chunks: a broken viewer never breaks the console.
        }
      }
    }
    this.viewers = [...this.viewers, entry];
    return () => {
      if (!entry.active) return;
      entry.active = false;
      this.viewers = this.viewers.filter((v) => v !== entry);
    };
  }

  /**
   * Stop reading from the guest until every holder released (a slow viewer's back-pressure).
   * The guest's UART then waits; nothing is lost. Each holder counts once.
   */
  hold(holder: object): void {
    this.holders.add(holder);
    this.socket?.pause();
  }

  release(holder: object): void {
    if (!this.holders.delete(holder) || this.holders.size > 0) return;
    this.socket?.resume();
  }

  get viewerCount(): number {
    return this.viewers.length;
  }

  /** Send viewer input to the guest. Throws invalid-state when not connected. */
  write(data: Buffer | string): void {
    const sock = this.socket;
    if (!sock || sock.destroyed || !sock.writable) {
      throw new HangarError('invalid-state', 'the console is not connected (VM not running)',
        'start the VM, then open its console again');
    }
    sock.write(data);
  }

  /** A copy of the scrollback, oldest to newest. */
  scrollback(): Buffer {
    return this.ring.snapshot();
  }

  /**
   * Close the socket (cancelling an attach in progress) and flush the log. The ring, log and
   * viewers are kept; attach() may be called again. Idempotent. Never rejects: a log that cannot
   * be written (disk full, read-only data dir) was already reported through 'log-status', and
   * callers run this on every stop path, where a throw would escape as an unhandled rejection.
   */
  async detach(): Promise<void> {
    this.generation++;
    this.attaching = null; // the cancelled attempt rejects; a new attach() starts afresh
    const sock = this.socket;
    if (sock) {
      this.socket = null;
      sock.destroy();
      this.emit('disconnect', 'detached');
    }
    await this.log.flush().catch(() => undefined);
  }

  /** detach(), then close the log if this console created it. Final and idempotent. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      this.closing = (async () => {
        try {
          await this.detach();
        } finally {
          if (this.ownsLog) await this.log.close().catch(() => undefined);
        }
      })();
    }
    return this.closing;
  }
}
