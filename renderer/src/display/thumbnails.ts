// Thumbnails of running VMs' screens (GNOME Boxes' habit), with no DOM dependency: which VMs to
// ask the core for a screenshot, and when. A VM is asked for only while
//   - some view shows its thumbnail on screen (the views report visibility: IntersectionObserver),
//   - it runs,
//   - the page is visible (document.visibilityState),
//   - and it has not answered "no display" during this run.
// Every intervalMs (5 s) each such VM is refreshed, one screenshot at a time, so a list of 1000
// VMs costs what its visible running rows cost and nothing when the window is hidden.
import type { Screenshot } from '../../../core/common/api.ts';
import type { Timers } from '../stores/connection.ts';
import { realTimers } from '../stores/connection.ts';
import { toUiError } from '../util/ui-error.ts';

export const THUMBNAIL_INTERVAL_MS = 5000;

export interface ThumbnailOptions {
  screenshot: (vm: string) => Promise<Screenshot>;
  /** Turns a screenshot into what the views show (a small data URL); may fail. */
  shrink?: (shot: Screenshot) => Promise<string>;
  /** A new image for a VM, or null when it has none any more. */
  onImage: (vm: string, url: string | null) => void;
  timers?: Timers;
  intervalMs?: number;
  now?: () => number;
}

interface Entry {
  /** Views that show this VM's thumbnail, and how many of them are on screen. */
  watchers: number;
  visible: number;
  running: boolean;
  /** The VM answered that it has no screen (during this run). */
  noScreen: boolean;
  lastFetch: number;
  hasImage: boolean;
}

/** One view's thumbnail of one VM. */
export interface ThumbnailHandle {
  setVisible(visible: boolean): void;
  setRunning(running: boolean): void;
  release(): void;
}

export class ThumbnailScheduler {
  private readonly entries = new Map<string, Entry>();
  private readonly timers: Timers;
  private readonly interval: number;
  private readonly now: () => number;
  private timer: unknown = null;
  private busy = false;
  private again = false;
  private pageVisible = true;
  /** Screenshots asked for (diagnostics and tests). */
  fetches = 0;

  constructor(private readonly opts: ThumbnailOptions) {
    this.timers = opts.timers ?? realTimers;
    this.interval = opts.intervalMs ?? THUMBNAIL_INTERVAL_MS;
    this.now = opts.now ?? (() => Date.now());
  }

  watch(vm: string, running: boolean): ThumbnailHandle {
    let e = this.entries.get(vm);
    if (!e) {
      e = { watchers: 0, visible: 0, running, noScreen: false, lastFetch: -Infinity, hasImage: false };
      this.entries.set(vm, e);
    }
    e.watchers++;
    this.setRunning(vm, running);
    let visible = false;
    let released = false;
    return {
      setVisible: (v) => {
        if (released || v === visible) return;
        visible = v;
        const entry = this.entries.get(vm);
        if (!entry) return;
        entry.visible += v ? 1 : -1;
        if (v) this.kick();
      },
      setRunning: (r) => { if (!released) this.setRunning(vm, r); },
      release: () => {
        if (released) return;
        released = true;
        const entry = this.entries.get(vm);
        if (!entry) return;
        if (visible) entry.visible--;
        entry.watchers--;
        if (entry.watchers <= 0) {
          this.entries.delete(vm);
          if (entry.hasImage) this.opts.onImage(vm, null);
        }
        this.schedule();
      },
    };
  }

  /** The page was hidden or shown again. */
  setPageVisible(visible: boolean): void {
    this.pageVisible = visible;
    if (visible) this.kick();
    else this.stopTimer();
  }

  private setRunning(vm: string, running: boolean): void {
    const e = this.entries.get(vm);
    if (!e) return;
    if (e.running === running) {
      if (running) this.kick();
      return;
    }
    e.running = running;
    if (!running) {
      // A new run may have a screen (a display added meanwhile); the old picture is gone.
      e.noScreen = false;
      e.lastFetch = -Infinity;
      if (e.hasImage) {
        e.hasImage = false;
        this.opts.onImage(vm, null);
      }
      this.schedule();
    } else {
      this.kick();
    }
  }

  private due(e: Entry): boolean {
    return e.visible > 0 && e.running && !e.noScreen;
  }

  /** VMs whose thumbnail should be refreshed now. */
  private dueNow(): string[] {
    const t = this.now();
    return [...this.entries].filter(([, e]) => this.due(e) && t - e.lastFetch >= this.interval - 50).map(([vm]) => vm);
  }

  /** Runs a refresh round now (for VMs not refreshed within the interval), then keeps the timer. */
  private kick(): void {
    if (!this.pageVisible) return;
    void this.round();
  }

  private async round(): Promise<void> {
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    try {
      for (;;) {
        this.again = false;
        for (const vm of this.dueNow()) {
          if (!this.pageVisible) break;
          const e = this.entries.get(vm);
          if (!e || !this.due(e)) continue;
          e.lastFetch = this.now();
          await this.fetchOne(vm);
        }
        if (!this.again) break;
      }
    } finally {
      this.busy = false;
      this.schedule();
    }
  }

  private async fetchOne(vm: string): Promise<void> {
    this.fetches++;
    try {
      const shot = await this.opts.screenshot(vm);
      const url = this.opts.shrink ? await this.opts.shrink(shot) : `data:image/png;base64,${shot.pngBase64}`;
      const e = this.entries.get(vm);
      if (!e || !e.running) return;
      e.hasImage = true;
      this.opts.onImage(vm, url);
    } catch (err) {
      const e = this.entries.get(vm);
      if (!e) return;
      // No screen in this run (no video device, started before one was added, not running any
      // more): ask again only after the VM's next start. Anything else: at the next round.
      const code = toUiError(err).code;
      if (code === 'invalid-state' || code === 'qmp-error' || code === 'not-found') e.noScreen = true;
    }
  }

  private stopTimer(): void {
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
  }

  /** Keeps one timer while anything is due, none otherwise. */
  private schedule(): void {
    this.stopTimer();
    if (!this.pageVisible || this.busy) return;
    const t = this.now();
    let next = Infinity;
    for (const e of this.entries.values()) {
      if (this.due(e)) next = Math.min(next, Math.max(0, e.lastFetch + this.interval - t));
    }
    if (next === Infinity) return;
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      this.kick();
    }, next);
  }

  /** VMs currently followed (tests). */
  get size(): number {
    return this.entries.size;
  }

  dispose(): void {
    this.stopTimer();
    this.entries.clear();
  }
}
