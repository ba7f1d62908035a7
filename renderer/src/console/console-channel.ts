// The console protocol as a terminal sees it, with no xterm.js or DOM dependency (so tests drive
// it in Node): open the channel with replay, write output, acknowledge what the terminal has
// processed (batched), send input, and reconnect.
//
// Flow control: the core stops reading from the guest while a viewer has more than 512 KiB
// unacknowledged. We acknowledge in the terminal's write callback, i.e. only after xterm.js has
// parsed the bytes, batched to one ack per 16 KiB processed or per 50 ms, whichever comes first.
//
// Reconnects always reset the terminal first and ask for the replay, so the scrollback the core
// keeps is shown once, never twice:
// - end 'vm-stopped' (or the channel closes while the VM is not running): print a dim
//   "[console disconnected: VM stopped]" and wait until the VM runs again (setVmLive(true)).
// - end 'too-slow' / 'core-closing', or an unexpected close: reconnect after a short delay
//   (growing to a few seconds while it keeps failing).
import type { ConsoleEndReason, ConsoleLink, CoreTransport } from '../../../core/common/transport.ts';
import { decodeConsoleControl, encodeConsoleControl } from '../../../core/common/transport.ts';
import type { ErrorPayload } from '../../../core/common/errors.ts';
import type { Timers } from '../stores/connection.ts';
import { realTimers } from '../stores/connection.ts';

export const ACK_BATCH_BYTES = 16 * 1024;
export const ACK_BATCH_MS = 50;
export const RETRY_INITIAL_MS = 300;
export const RETRY_MAX_MS = 5000;
export const NOTICE_VM_STOPPED = '[console disconnected: VM stopped]';

/** What the channel needs from a terminal. */
export interface TerminalSink {
  /** Writes output; calls done once the terminal has processed it. */
  write(data: Uint8Array, done: () => void): void;
  /** Clears the screen and scrollback (before a replay). */
  reset(): void;
  /** Shows a dim status line. */
  notice(text: string): void;
}

export type ConsoleStatus =
  | 'idle' // nothing opened yet (the VM has not run)
  | 'connecting'
  | 'live'
  | 'waiting-for-vm' // the VM stopped; reconnects when it runs again
  | 'reconnecting' // a retry is scheduled
  | 'disposed';

/** Counts processed bytes and sends one ack per batchBytes, or after batchMs, whichever first. */
export class AckBatcher {
  private pending = 0;
  private timer: unknown = null;
  private disposed = false;

  constructor(
    private readonly sendAck: (bytes: number) => void,
    private readonly batchBytes = ACK_BATCH_BYTES,
    private readonly batchMs = ACK_BATCH_MS,
    private readonly timers: Timers = realTimers,
  ) {}

  processed(bytes: number): void {
    if (this.disposed || bytes <= 0) return;
    this.pending += bytes;
    if (this.pending >= this.batchBytes) this.flush();
    else if (this.timer === null) {
      this.timer = this.timers.setTimeout(() => {
        this.timer = null;
        this.flush();
      }, this.batchMs);
    }
  }

  flush(): void {
    if (this.timer !== null) {
      this.timers.clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.disposed || this.pending === 0) return;
    const n = this.pending;
    this.pending = 0;
    this.sendAck(n);
  }

  dispose(): void {
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
    this.pending = 0;
    this.disposed = true;
  }
}

export interface ConsoleChannelOptions {
  vm: string;
  transport: Pick<CoreTransport, 'openConsole'>;
  /** The connection the VM lives on (absent = this machine's core). */
  connection?: string;
  sink: TerminalSink;
  onStatus?: (status: ConsoleStatus, detail?: string) => void;
  timers?: Timers;
  ackBatchBytes?: number;
  ackBatchMs?: number;
  retryInitialMs?: number;
  retryMaxMs?: number;
}

export class ConsoleChannel {
  private link: ConsoleLink | null = null;
  /** Bumped on every (re)connect and on dispose: callbacks of older channels are ignored. */
  private generation = 0;
  private statusValue: ConsoleStatus = 'idle';
  private vmLive = false;
  /** Whether the terminal shows anything since its last reset. */
  private dirty = false;
  private retryTimer: unknown = null;
  private retryDelay: number;
  private lastNotice = '';
  /** The terminal is still processing replayed scrollback. */
  private inHistory = false;
  private readonly timers: Timers;
  private readonly encoder = new TextEncoder();

  constructor(private readonly opts: ConsoleChannelOptions) {
    this.timers = opts.timers ?? realTimers;
    this.retryDelay = opts.retryInitialMs ?? RETRY_INITIAL_MS;
  }

  get status(): ConsoleStatus {
    return this.statusValue;
  }

  private setStatus(s: ConsoleStatus, detail?: string): void {
    this.statusValue = s;
    this.opts.onStatus?.(s, detail);
  }

  private notice(text: string): void {
    if (text === this.lastNotice) return;
    this.lastNotice = text;
    this.dirty = true;
    this.opts.sink.notice(text);
  }

  /** Tells the channel whether the VM has a live console (from the VM store). */
  setVmLive(live: boolean): void {
    this.vmLive = live;
    if (this.statusValue === 'disposed') return;
    if (live && (this.statusValue === 'idle' || this.statusValue === 'waiting-for-vm')) {
      this.connect();
    } else if (!live && this.statusValue === 'reconnecting') {
      this.clearRetry();
      this.notice(NOTICE_VM_STOPPED);
      this.setStatus('waiting-for-vm');
    }
  }

  /**
   * Sends keyboard input / paste (dropped unless the channel is live). While the scrollback
   * replays, xterm answers the history's terminal queries (cursor position reports) through the
   * same path: those answers belong to a session long gone and would reach the shell as garbage.
   */
  input(data: string | Uint8Array): void {
    if (this.statusValue !== 'live' || !this.link || this.inHistory) return;
    const bytes = typeof data === 'string' ? this.encoder.encode(data) : data;
    if (bytes.byteLength === 0) return;
    try {
      this.link.send(bytes);
    } catch {
      /* closing; the close handler reconnects */
    }
  }

  /** Opens (or re-opens) the channel now, resetting the terminal for the replay. */
  connect(): void {
    if (this.statusValue === 'disposed') return;
    this.clearRetry();
    const gen = ++this.generation;
    const old = this.link;
    this.link = null;
    old?.close();
    if (this.dirty) {
      this.opts.sink.reset();
      this.dirty = false;
      this.lastNotice = '';
    }
    this.setStatus('connecting');
    this.opts.transport.openConsole(this.opts.vm, { replay: true, ...(this.opts.connection !== undefined ? { connection: this.opts.connection } : {}) }).then(
      (link) => this.attach(link, gen),
      (e: unknown) => {
        if (gen !== this.generation) return;
        this.lost(null, null, e instanceof Error ? e.message : String(e));
      },
    );
  }

  private attach(link: ConsoleLink, gen: number): void {
    if (gen !== this.generation) {
      link.close();
      return;
    }
    this.link = link;
    const acks = new AckBatcher((bytes) => {
      if (gen !== this.generation) return;
      try {
        link.send(encodeConsoleControl({ type: 'ack', bytes }));
      } catch {
        /* closed */
      }
    }, this.opts.ackBatchBytes, this.opts.ackBatchMs, this.timers);
    let ended: ConsoleEndReason | null = null;
    let error: ErrorPayload | null = null;
    let historyLeft = 0;
    link.onMessage((m) => {
      if (gen !== this.generation) return;
      if (typeof m === 'string') {
        const c = decodeConsoleControl(m);
        if (!c) return;
        if (c.type === 'ready') {
          historyLeft = c.replayBytes ?? 0;
          this.inHistory = historyLeft > 0;
          this.retryDelay = this.opts.retryInitialMs ?? RETRY_INITIAL_MS;
          this.lastNotice = '';
          this.setStatus('live');
        } else if (c.type === 'end') ended = c.reason;
        else if (c.type === 'error') error = c.error;
        return;
      }
      this.dirty = true;
      const n = m.byteLength;
      const endsHistory = historyLeft > 0 && (historyLeft -= n) <= 0;
      this.opts.sink.write(m, () => {
        if (gen !== this.generation) return;
        if (endsHistory) this.inHistory = false;
        acks.processed(n);
      });
    });
    link.onClose((reason) => {
      acks.dispose();
      if (gen !== this.generation) return;
      this.link = null;
      this.lost(ended, error, reason);
    });
  }

  private lost(ended: ConsoleEndReason | null, error: ErrorPayload | null, reason: string): void {
    if (this.statusValue === 'disposed') return;
    if (ended === 'vm-stopped' || (!this.vmLive && ended === null)) {
      this.notice(NOTICE_VM_STOPPED);
      this.setStatus('waiting-for-vm');
      // Our view of the VM may lag behind (it stopped and started again before the store saw
      // it): while the store still says it runs, probe now and then.
      if (this.vmLive) this.scheduleRetry('waiting-for-vm');
      return;
    }
    if (error) {
      // Typically "not running" during a race with a stop or start.
      this.notice(`[console unavailable: ${error.message}]`);
      this.setStatus('waiting-for-vm', error.message);
      if (this.vmLive) this.scheduleRetry('waiting-for-vm');
      return;
    }
    this.notice(ended === 'too-slow' ? '[console fell behind: reconnecting…]'
      : ended === 'core-closing' ? '[the Hangar core is restarting: reconnecting…]'
        : `[console disconnected (${reason}): reconnecting…]`);
    this.scheduleRetry('reconnecting');
  }

  private scheduleRetry(status: ConsoleStatus): void {
    this.clearRetry();
    const delay = this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, this.opts.retryMaxMs ?? RETRY_MAX_MS);
    this.setStatus(status);
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = null;
      if (this.statusValue === 'disposed') return;
      if (this.vmLive) this.connect();
      else {
        this.notice(NOTICE_VM_STOPPED);
        this.setStatus('waiting-for-vm');
      }
    }, delay);
  }

  private clearRetry(): void {
    if (this.retryTimer !== null) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  dispose(): void {
    this.generation++;
    this.clearRetry();
    const link = this.link;
    this.link = null;
    link?.close();
    this.setStatus('disposed');
  }
}
