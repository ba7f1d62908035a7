// Refreshes something every intervalMs while a view shows it and the page is visible: nothing
// runs while the window is hidden or no view watches; showing it again refreshes at once. One run
// at a time; the next is timed from the end of the last, so a slow core is never asked twice.
import type { Timers } from '../stores/connection.ts';
import { realTimers } from '../stores/connection.ts';

export class Poller {
  private watchers = 0;
  private visible = true;
  private timer: unknown = null;
  private running = false;
  private readonly timers: Timers;

  constructor(private readonly run: () => Promise<void>, private readonly intervalMs: number, timers: Timers = realTimers) {
    this.timers = timers;
  }

  /** A view shows it from now on: refreshed at once, then every interval; call the result when it goes. */
  watch(): () => void {
    this.watchers++;
    if (this.watchers === 1) this.tick();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.watchers--;
      if (this.watchers === 0) this.cancel();
    };
  }

  setPageVisible(visible: boolean): void {
    if (visible === this.visible) return;
    this.visible = visible;
    if (!visible) this.cancel();
    else if (this.watchers > 0) this.tick();
  }

  get active(): boolean {
    return this.watchers > 0 && this.visible;
  }

  private cancel(): void {
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
  }

  private tick(): void {
    this.cancel();
    if (!this.active || this.running) return;
    this.running = true;
    void this.run().catch(() => { /* run reports its own errors */ }).finally(() => {
      this.running = false;
      if (this.active && this.timer === null) this.timer = this.timers.setTimeout(() => { this.timer = null; this.tick(); }, this.intervalMs);
    });
  }
}
