// The display's connection rules, with no noVNC or DOM dependency (so tests drive it in Node):
// open the VM's display channel while the VM runs, hand it to a viewer (noVNC in the app, a fake
// in the tests) dressed as a WebSocket, and reconnect as the serial console does:
// - end 'vm-stopped' (or the channel closes while the VM is not running): wait until the VM runs
//   again (setVmLive(true)), then reconnect by itself;
// - end 'too-slow' / 'core-closing', an unexpected close, or a viewer that failed: reconnect after
//   a short delay (growing to a few seconds while it keeps failing);
// - an { type: 'error' } instead of 'ready' (the VM stopped meanwhile, no VNC server yet): shown,
//   and probed again now and then while the store says the VM runs.
// One viewer per connection: noVNC's RFB object cannot reconnect, so each channel gets a new one.
import type { CoreTransport } from '../../../core/common/transport.ts';
import type { Timers } from '../stores/connection.ts';
import { realTimers } from '../stores/connection.ts';
import { ChannelSocket } from './channel-socket.ts';
import type { ChannelEnd } from './channel-socket.ts';

export const RETRY_INITIAL_MS = 300;
export const RETRY_MAX_MS = 5000;

export type DisplayStatus =
  | 'idle' // nothing opened yet (the VM has not run)
  | 'connecting' // the channel is opening, or the RFB handshake runs
  | 'live' // the viewer shows the screen
  | 'waiting-for-vm' // the VM stopped (or refused the display); reconnects when it runs again
  | 'reconnecting' // a retry is scheduled
  | 'disposed';

/** What the channel tells the viewer it made. */
export interface ViewerEvents {
  /** The RFB handshake is done: the screen is live. */
  connected(): void;
  /** The viewer gave up (e.g. a security failure); the channel closes and reconnects. */
  failed(message: string): void;
}

/** One viewer of one connection (noVNC's RFB in the app). */
export interface DisplayViewer {
  /** Disconnects (if still connected) and removes what the viewer put into the page. */
  dispose(): void;
}

export type CreateViewer = (socket: ChannelSocket, events: ViewerEvents) => DisplayViewer;

export interface DisplayChannelOptions {
  vm: string;
  transport: Pick<CoreTransport, 'openDisplay'>;
  /** The connection the VM lives on (absent = this machine's core). */
  connection?: string;
  createViewer: CreateViewer;
  /** detail: why (the VM stopped, the core's error message, the close reason). */
  onStatus?: (status: DisplayStatus, detail?: string) => void;
  timers?: Timers;
  retryInitialMs?: number;
  retryMaxMs?: number;
}

export class DisplayChannel {
  private socket: ChannelSocket | null = null;
  private viewer: DisplayViewer | null = null;
  /** Bumped on every (re)connect and on dispose: callbacks of older channels are ignored. */
  private generation = 0;
  private statusValue: DisplayStatus = 'idle';
  private detailValue: string | undefined;
  private vmLive = false;
  private retryTimer: unknown = null;
  private retryDelay: number;
  private readonly timers: Timers;
  /** Why the viewer gave up on the current connection (shown with the retry). */
  private failure: string | null = null;
  /** Connections opened so far (diagnostics and tests). */
  opens = 0;

  constructor(private readonly opts: DisplayChannelOptions) {
    this.timers = opts.timers ?? realTimers;
    this.retryDelay = opts.retryInitialMs ?? RETRY_INITIAL_MS;
  }

  get status(): DisplayStatus {
    return this.statusValue;
  }

  get detail(): string | undefined {
    return this.detailValue;
  }

  private setStatus(s: DisplayStatus, detail?: string): void {
    this.statusValue = s;
    this.detailValue = detail;
    this.opts.onStatus?.(s, detail);
  }

  /** Tells the channel whether the VM runs (from the VM store). */
  setVmLive(live: boolean): void {
    this.vmLive = live;
    if (this.statusValue === 'disposed') return;
    if (live && (this.statusValue === 'idle' || this.statusValue === 'waiting-for-vm')) {
      this.connect();
    } else if (!live && this.statusValue === 'reconnecting') {
      this.clearRetry();
      this.setStatus('waiting-for-vm', 'the VM stopped');
    }
  }

  /** Opens (or re-opens) the channel now, with a new viewer. */
  connect(): void {
    if (this.statusValue === 'disposed') return;
    this.clearRetry();
    const gen = ++this.generation;
    this.dropConnection();
    this.setStatus('connecting');
    this.opens++;
    this.opts.transport.openDisplay(this.opts.vm, this.opts.connection).then(
      (link) => {
        if (gen !== this.generation) {
          link.close();
          return;
        }
        const socket = new ChannelSocket(link);
        this.socket = socket;
        socket.onEnded = (end) => {
          if (gen !== this.generation) return;
          this.socket = null;
          this.disposeViewer();
          this.lost(end);
        };
        try {
          this.viewer = this.opts.createViewer(socket, {
            connected: () => {
              if (gen !== this.generation) return;
              this.retryDelay = this.opts.retryInitialMs ?? RETRY_INITIAL_MS;
              this.setStatus('live');
            },
            failed: (message) => {
              if (gen !== this.generation) return;
              this.failure = message;
              socket.close();
            },
          });
        } catch (e) {
          this.failure = e instanceof Error ? e.message : String(e);
          socket.close();
        }
      },
      (e: unknown) => {
        if (gen !== this.generation) return;
        this.lost({ ended: null, error: null, reason: e instanceof Error ? e.message : String(e), wasOpen: false });
      },
    );
  }

  private lost(end: ChannelEnd): void {
    if (this.statusValue === 'disposed') return;
    const failure = this.failure;
    this.failure = null;
    if (end.ended === 'vm-stopped' || (!this.vmLive && end.ended === null && !end.error)) {
      this.setStatus('waiting-for-vm', 'the VM stopped');
      // Our view of the VM may lag behind (it stopped and started again before the store saw
      // it): while the store still says it runs, probe now and then.
      if (this.vmLive) this.scheduleRetry('waiting-for-vm', 'the VM stopped');
      return;
    }
    if (end.error) {
      // Typically "not running" during a race with a stop or start, or a VM started before
      // its display was added.
      this.setStatus('waiting-for-vm', end.error.hint ? `${end.error.message} (${end.error.hint})` : end.error.message);
      if (this.vmLive) this.scheduleRetry('waiting-for-vm', this.detailValue);
      return;
    }
    const detail = failure ?? (end.ended === 'too-slow' ? 'the display fell behind'
      : end.ended === 'core-closing' ? 'the Hangar core is restarting'
        : end.reason);
    this.scheduleRetry('reconnecting', detail);
  }

  private scheduleRetry(status: DisplayStatus, detail?: string): void {
    this.clearRetry();
    const delay = this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, this.opts.retryMaxMs ?? RETRY_MAX_MS);
    this.setStatus(status, detail);
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = null;
      if (this.statusValue === 'disposed') return;
      if (this.vmLive) this.connect();
      else this.setStatus('waiting-for-vm', 'the VM stopped');
    }, delay);
  }

  private clearRetry(): void {
    if (this.retryTimer !== null) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private disposeViewer(): void {
    const v = this.viewer;
    this.viewer = null;
    try {
      v?.dispose();
    } catch (e) {
      console.warn('display viewer:', e);
    }
  }

  private dropConnection(): void {
    this.failure = null;
    const s = this.socket;
    this.socket = null;
    this.disposeViewer();
    s?.close();
  }

  dispose(): void {
    this.generation++;
    this.clearRetry();
    this.dropConnection();
    this.setStatus('disposed');
  }
}
