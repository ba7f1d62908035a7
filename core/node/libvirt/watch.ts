// Follows a libvirtd's domains for the driver's events. `virsh event --loop --all` (one
// long-running child) says *that* something happened; every event (and, without that child, every
// poll) triggers one domain list, and the difference to the previous list is what is emitted.
// Events only invalidate (clients re-fetch), so a change reported twice costs nothing, and one
// missed while the event stream restarts is caught by the list taken when it is back.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { VmSummary } from '../../common/api.ts';
import { parseEventLine } from './virsh-parse.ts';
import { VIRSH, virshEnv } from './virsh.ts';

export interface WatchSink {
  vmChanged(s: VmSummary): void;
  vmListChanged(): void;
}

/** Events arriving within this window share one list call (a start reports Resumed + Started). */
const DEBOUNCE_MS = 60;
/** An event child that dies sooner than this after starting counts as "events not available". */
const EVENTS_MIN_LIFE_MS = 3000;
const EVENTS_RETRY_MIN_MS = 5000;
const EVENTS_RETRY_MAX_MS = 300_000;

function same(a: VmSummary, b: VmSummary): boolean {
  return a.name === b.name && a.state === b.state && a.reason === b.reason && a.vcpus === b.vcpus && a.memoryMiB === b.memoryMiB;
}

export class DomainWatcher {
  private running = false;
  private child: ChildProcess | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private retryMs = EVENTS_RETRY_MIN_MS;
  private last: Map<string, VmSummary> | null = null;
  /** Domain names named by events since the last list (changed even if the summary looks the same). */
  private touched = new Set<string>();
  private refreshing: Promise<void> | null = null;
  private again = false;
  /** How the watcher learns of changes now (for tests and diagnostics). */
  mode: 'idle' | 'events' | 'polling' = 'idle';
  lastEventError = '';

  constructor(
    private readonly uri: string,
    private readonly list: () => Promise<VmSummary[]>,
    private readonly sink: WatchSink,
    private readonly pollMs: number,
    private readonly useEvents = true,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.refresh(true);
    if (this.useEvents) this.startEvents();
    else this.startPolling();
  }

  stop(): void {
    this.running = false;
    this.mode = 'idle';
    this.stopPolling();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.debounce) clearTimeout(this.debounce);
    this.retryTimer = this.debounce = null;
    const c = this.child;
    this.child = null;
    if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    this.last = null;
    this.touched.clear();
  }

  private startEvents(): void {
    const child = spawn(VIRSH, ['-c', this.uri, 'event', '--loop', '--all'], { env: virshEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const started = Date.now();
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => { stderr = (stderr + d.toString('utf8')).slice(-2000); });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const e = parseEventLine(line);
      if (!e || this.child !== child) return;
      this.retryMs = EVENTS_RETRY_MIN_MS; // the stream works: a later failure retries soon again
      this.touched.add(e.domain);
      this.schedule();
    });
    const gone = (why: string): void => {
      if (this.child !== child) return; // stopped on purpose, or replaced
      this.child = null;
      this.lastEventError = why;
      if (!this.running) return;
      // Without the event stream, poll; try the stream again later (libvirtd restarted, a
      // connection dropped). Fast deaths (no `event` command, no daemon) back off further.
      this.startPolling();
      if (Date.now() - started < EVENTS_MIN_LIFE_MS) this.retryMs = Math.min(this.retryMs * 2, EVENTS_RETRY_MAX_MS);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        if (!this.running) return;
        this.stopPolling();
        this.startEvents();
        void this.refresh(false); // what changed while the stream was down
      }, this.retryMs);
      this.retryTimer.unref();
    };
    child.on('error', (e) => gone(e.message));
    child.on('exit', (code, signal) => gone(stderr.trim() || `virsh event exited (${signal ?? code})`));
    this.mode = 'events';
  }

  private startPolling(): void {
    this.mode = 'polling';
    if (this.pollTimer) return;
    this.pollTimer = setInterval(() => void this.refresh(false), this.pollMs);
    this.pollTimer.unref();
  }

  private stopPolling(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = null;
  }

  private schedule(): void {
    if (this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = null;
      void this.refresh(false);
    }, DEBOUNCE_MS);
  }

  /** One list, compared with the previous one. Serialized: a refresh asked for meanwhile runs once after. */
  private refresh(baseline: boolean): Promise<void> {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      try {
        const now = await this.list();
        if (!this.running) return;
        this.diff(now, baseline);
      } catch {
        // libvirtd unreachable for a moment: the next event or poll tries again.
      } finally {
        this.refreshing = null;
        if (this.again && this.running) {
          this.again = false;
          void this.refresh(false);
        }
      }
    })();
    return this.refreshing;
  }

  private diff(now: VmSummary[], baseline: boolean): void {
    const prev = this.last;
    const next = new Map(now.map((s) => [s.id, s]));
    this.last = next;
    const touched = this.touched;
    this.touched = new Set();
    if (baseline || !prev) return;
    let listChanged = false;
    for (const s of now) {
      const old = prev.get(s.id);
      if (!old || !same(old, s)) listChanged = true;
      if (!old || !same(old, s) || touched.has(s.name)) this.sink.vmChanged(s);
    }
    // A domain gone (undefined) is a list change only, as a deleted VM is in Hangar's own core.
    for (const id of prev.keys()) if (!next.has(id)) listChanged = true;
    if (listChanged) this.sink.vmListChanged();
  }
}
