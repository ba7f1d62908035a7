// Carries console output from a source (the VM's serial console, or a relayed socket) to one
// viewer: batches bursts of small chunks into fewer messages, counts bytes the viewer has not yet
// acknowledged, pauses the source above the high-water mark and resumes it below the low one.
// A viewer that stays above the mark too long is cut off, so one hung tab cannot stall a guest.
import {
  CONSOLE_BATCH_BYTES, CONSOLE_BATCH_MS, CONSOLE_HIGH_WATER, CONSOLE_LOW_WATER, CONSOLE_STALL_MS,
} from '../../common/transport.ts';

export interface ConsolePumpOptions {
  send(chunk: Buffer): void;
  pause(): void;
  resume(): void;
  /** The viewer stalled past stallMs: the owner ends the channel. */
  onStall(): void;
  batchMs?: number;
  batchBytes?: number;
  highWater?: number;
  lowWater?: number;
  stallMs?: number;
  /** The clock that decides "a quiet spell"; tests pass one that a slow machine cannot move. */
  now?: () => number;
}

export class ConsolePump {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private timer: NodeJS.Timeout | null = null;
  private stallTimer: NodeJS.Timeout | null = null;
  private unacked = 0;
  private lastFlush = 0;
  private paused = false;
  private closed = false;
  private readonly o: Required<ConsolePumpOptions>;

  constructor(opts: ConsolePumpOptions) {
    this.o = {
      batchMs: CONSOLE_BATCH_MS, batchBytes: CONSOLE_BATCH_BYTES, highWater: CONSOLE_HIGH_WATER,
      lowWater: CONSOLE_LOW_WATER, stallMs: CONSOLE_STALL_MS, now: Date.now, ...opts,
    };
  }

  /** Bytes sent but not acknowledged yet. */
  get inFlight(): number {
    return this.unacked;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  push(chunk: Buffer): void {
    if (this.closed || chunk.length === 0) return;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= this.o.batchBytes) {
      this.flush();
    } else if (!this.timer) {
      // Leading edge: a chunk after a quiet spell (a keystroke's echo) leaves at once; only
      // chunks that follow it within batchMs wait to be sent together.
      const since = this.o.now() - this.lastFlush;
      if (since >= this.o.batchMs) this.flush();
      else this.timer = setTimeout(() => this.flush(), this.o.batchMs - since);
    }
    // Count queued bytes too: the source must stop even before the batch leaves.
    this.checkHigh();
  }

  flush(): void {
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    if (this.closed || this.pending.length === 0) return;
    const batch = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.lastFlush = this.o.now();
    this.unacked += this.pendingBytes;
    this.pendingBytes = 0;
    this.o.send(batch);
  }

  ack(bytes: number): void {
    if (this.closed) return;
    this.unacked = Math.max(0, this.unacked - bytes);
    if (this.paused && this.unacked + this.pendingBytes <= this.o.lowWater) {
      this.paused = false;
      if (this.stallTimer) { clearTimeout(this.stallTimer); this.stallTimer = null; }
      this.o.resume();
    }
  }

  private checkHigh(): void {
    if (this.paused || this.unacked + this.pendingBytes <= this.o.highWater) return;
    this.paused = true;
    this.o.pause();
    this.stallTimer = setTimeout(() => {
      this.stallTimer = null;
      if (this.paused && !this.closed) this.o.onStall();
    }, this.o.stallMs);
    this.stallTimer.unref?.();
  }

  /** Stops the pump; resumes the source if this pump paused it. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.timer = this.stallTimer = null;
    this.pending = [];
    if (this.paused) {
      this.paused = false;
      this.o.resume();
    }
  }
}
