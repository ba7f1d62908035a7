// Runs the core host (electron/core-host.ts) as an Electron utility process, restarts it with
// backoff when it dies unexpectedly, and brokers channels: for each request a MessageChannelMain
// is made, port1 goes to the core host with the request, port2 to whoever asked (a window, or
// main itself). Bytes then flow port to port, never through main.
import type { ChannelLike, MessagePortLike, UtilityProcessLike } from './electron-api.ts';

/** What a window (or main) asks for. */
/** connection: a saved connection's name or a URI; absent = this machine's core. */
export type PortRequest =
  | { kind: 'rpc'; connection?: string }
  | { kind: 'console'; vm: string; replay: boolean; connection?: string }
  | { kind: 'display'; vm: string; connection?: string }
  /** A guest shell (ssh in a pty on the core host), or with login an ssh login to the connection's host (vm ''). */
  | { kind: 'terminal'; vm: string; user?: string; cols?: number; rows?: number; login?: boolean; connection?: string };

/**
 * Main -> core host messages (process.parentPort in the utility process). Port requests carry
 * exactly one transferred port (port1 of the channel); 'stop' carries none.
 */
export type CoreHostMessage = PortRequest | { kind: 'stop' };

/** Core host -> main. */
export type CoreHostReport = { kind: 'ready'; mode: 'in-process' | 'relay' } | { kind: 'fatal'; message: string };

export interface SupervisorDeps {
  fork(): UtilityProcessLike;
  createChannel(): ChannelLike;
  /** Called after a restarted core host is up again (not after the first start). */
  onRestarted(): void;
  log(message: string): void;
  schedule?: (fn: () => void, ms: number) => { cancel(): void };
  now?: () => number;
  /** Delays before each successive restart; the last repeats. */
  backoffMs?: readonly number[];
  /** A core host that ran this long resets the backoff. */
  stableMs?: number;
  /** How long stop() waits for a clean exit before killing. */
  stopTimeoutMs?: number;
  /** Port requests kept while the core host is down (older ones are closed). */
  maxPending?: number;
}

const defaultSchedule = (fn: () => void, ms: number): { cancel(): void } => {
  const t = setTimeout(fn, ms);
  return { cancel: () => clearTimeout(t) };
};

export class CoreHostSupervisor {
  private child: UtilityProcessLike | null = null;
  private alive = false;
  private startedAt = 0;
  private failures = 0;
  private starts = 0;
  private stopping = false;
  private restartTimer: { cancel(): void } | null = null;
  private pending: { message: PortRequest; port: MessagePortLike }[] = [];
  private exitWaiters: (() => void)[] = [];
  private readonly schedule: NonNullable<SupervisorDeps['schedule']>;
  private readonly now: () => number;
  private readonly backoff: readonly number[];

  constructor(private readonly deps: SupervisorDeps) {
    this.schedule = deps.schedule ?? defaultSchedule;
    this.now = deps.now ?? Date.now;
    this.backoff = deps.backoffMs ?? [250, 1000, 2000, 5000, 10_000, 30_000];
  }

  get running(): boolean {
    return this.alive;
  }

  /** The number of times the core host was restarted after an unexpected exit. */
  get restarts(): number {
    return Math.max(0, this.starts - 1);
  }

  start(): void {
    if (this.child || this.stopping) return;
    this.spawn();
  }

  private spawn(): void {
    this.restartTimer = null;
    const child = this.deps.fork();
    this.child = child;
    this.starts++;
    const isRestart = this.starts > 1;
    child.on('spawn', () => {
      if (this.child !== child) return;
      this.alive = true;
      this.startedAt = this.now();
      for (const p of this.pending.splice(0)) this.post(child, p.message, p.port);
      if (isRestart) this.deps.onRestarted();
    });
    child.on('message', (m) => {
      const r = m as CoreHostReport | null;
      if (r && r.kind === 'ready') this.deps.log(`core host ${child.pid ?? '?'} ready (${r.mode})`);
      else if (r && r.kind === 'fatal') this.deps.log(`core host failed: ${r.message}`);
    });
    child.on('exit', (code) => this.onExit(child, code));
  }

  private onExit(child: UtilityProcessLike, code: number): void {
    if (this.child !== child) return;
    const ranMs = this.alive ? this.now() - this.startedAt : 0;
    this.child = null;
    this.alive = false;
    for (const w of this.exitWaiters.splice(0)) w();
    if (this.stopping) return;
    if (ranMs >= (this.deps.stableMs ?? 60_000)) this.failures = 0;
    const delay = this.backoff[Math.min(this.failures, this.backoff.length - 1)] ?? 1000;
    this.failures++;
    this.deps.log(`core host exited unexpectedly (code ${code}); restarting in ${delay} ms`);
    this.restartTimer = this.schedule(() => { if (!this.stopping) this.spawn(); }, delay);
  }

  private post(child: UtilityProcessLike, message: CoreHostMessage, port: MessagePortLike): void {
    try {
      child.postMessage(message, [port]);
    } catch (e) {
      this.deps.log(`could not hand a channel to the core host: ${String(e)}`);
      try { port.close(); } catch { /* gone */ }
    }
  }

  /**
   * Opens a channel to the core host and returns the requester's end. While the core host is
   * (re)starting the request waits; once stopping, the returned port is already closed.
   */
  open(request: PortRequest): MessagePortLike {
    const { port1, port2 } = this.deps.createChannel();
    // A clean copy: only the fields each kind has cross to the core host.
    const conn = request.connection !== undefined ? { connection: request.connection } : {};
    const message: PortRequest = request.kind === 'rpc' ? { kind: 'rpc', ...conn }
      : request.kind === 'display' ? { kind: 'display', vm: request.vm, ...conn }
        : request.kind === 'terminal' ? terminalRequest(request)
          : { kind: 'console', vm: request.vm, replay: request.replay, ...conn };
    if (this.stopping) {
      port1.close();
    } else if (this.child && this.alive) {
      this.post(this.child, message, port1);
    } else {
      this.pending.push({ message, port: port1 });
      const max = this.deps.maxPending ?? 64;
      while (this.pending.length > max) this.pending.shift()!.port.close();
    }
    return port2;
  }

  /** Asks the core host to stop (VMs keep running), killing it if it does not exit in time. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.restartTimer?.cancel();
    this.restartTimer = null;
    for (const p of this.pending.splice(0)) p.port.close();
    const child = this.child;
    if (!child) return;
    const exited = new Promise<void>((r) => this.exitWaiters.push(r));
    try {
      child.postMessage({ kind: 'stop' } satisfies CoreHostMessage);
    } catch { /* not up yet */ }
    let timer: { cancel(): void } | null = null;
    const timedOut = new Promise<'timeout'>((r) => { timer = this.schedule(() => r('timeout'), this.deps.stopTimeoutMs ?? 3000); });
    const result = await Promise.race([exited, timedOut]);
    (timer as { cancel(): void } | null)?.cancel();
    if (result === 'timeout') {
      this.deps.log('core host did not stop in time; killing it');
      child.kill();
    }
  }
}

/** A clean copy of a terminal request: only the fields it has. */
function terminalRequest(r: Extract<PortRequest, { kind: 'terminal' }>): PortRequest {
  return {
    kind: 'terminal', vm: r.vm,
    ...(r.user !== undefined ? { user: r.user } : {}),
    ...(r.cols !== undefined && r.rows !== undefined ? { cols: r.cols, rows: r.rows } : {}),
    ...(r.login ? { login: true } : {}),
    ...(r.connection !== undefined ? { connection: r.connection } : {}),
  };
}
