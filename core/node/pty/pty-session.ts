// A process on a pseudo-terminal (node-pty), for programs that must see a TTY: `ssh` asks for
// host-key confirmation, passwords and passphrases only on a terminal, and `virsh console` wants
// one too. Runs in the core's process; bytes in, bytes out (never decoded strings, so a
// multi-byte character split across reads reaches xterm.js intact).
//
// Known limit (node-pty on Linux, microsoft/node-pty#72): output still unread in the terminal when
// the child exits can be lost, more so on a loaded machine; a program that prints a lot and exits
// at once may lose its last few KiB. Interactive programs (ssh, virsh console) wait for input and
// are not affected in practice.
//
// node-pty is loaded on first use, not when this module is imported: a machine where its native
// build failed still runs everything that needs no terminal, and the error names the cause.
import { accessSync, constants } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, join } from 'node:path';
import { Duplex } from 'node:stream';
import type * as NodePty from 'node-pty';

export interface PtySpawnOptions {
  /** Initial size; 80x24 when left out. Follow the viewer's size with resize(). */
  cols?: number;
  rows?: number;
  /** The child's environment (default: the core's own, minus terminal-multiplexer variables). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface PtyExit {
  exitCode: number;
  /** The signal number that ended the process, when a signal did. */
  signal?: number;
}

export interface PtySession {
  readonly pid: number;
  readonly cols: number;
  readonly rows: number;
  /** Set once the process has exited (and all its output was delivered). */
  readonly exit: PtyExit | null;
  /** Resolves when the process has exited and all its output was delivered. */
  readonly exited: Promise<PtyExit>;
  /** Output bytes. Returns a function that removes the listener. */
  onData(cb: (b: Buffer) => void): () => void;
  /** Called once, after the last output; called soon after registering if the process is gone. */
  onExit(cb: (e: PtyExit) => void): () => void;
  /**
   * Input, as typed on the terminal (Enter is "\r"). Ignored after exit. Like keys typed on a
   * real terminal, input sent before the child has set up its terminal may be discarded: answer
   * prompts once they appear.
   */
  write(data: Buffer | string): void;
  resize(cols: number, rows: number): void;
  /** Sends a signal (default SIGHUP, as a closed terminal does). A no-op after exit. */
  kill(signal?: NodeJS.Signals): void;
  /**
   * The terminal as a stream: readable side = output, writable side = input. Ending or destroying
   * it kills the process (SIGHUP) if it still runs; it ends and closes by itself when the process
   * exits. Output that came before the call is not in it: call it right after spawnPty().
   */
  toDuplex(): Duplex;
}

/** TERM for the child: the viewer is xterm.js. */
const DEFAULT_TERM = 'xterm-256color';

let nodePty: typeof NodePty | null = null;
function loadNodePty(): typeof NodePty {
  if (nodePty) return nodePty;
  try {
    nodePty = createRequire(import.meta.url)('node-pty') as typeof NodePty;
  } catch (e) {
    throw new Error(`node-pty is not usable (its native module is built by \`npm ci\`; run \`npm run setup\` or \`npm rebuild node-pty\`): ${(e as Error).message}`, { cause: e });
  }
  return nodePty;
}

/** node-pty reports a missing program only as output text and exit 1: look it up first. */
function checkExecutable(file: string, env: NodeJS.ProcessEnv): void {
  const candidates = file.includes('/') ? [file] : (env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, file));
  for (const c of candidates) {
    try { accessSync(c, constants.X_OK); return; } catch { /* next */ }
  }
  const err = new Error(file.includes('/') ? `${file}: not found or not executable` : `${file}: not found on PATH`) as NodeJS.ErrnoException;
  err.code = 'ENOENT';
  err.path = file;
  throw err;
}

export function spawnPty(file: string, args: string[], opts: PtySpawnOptions = {}): PtySession {
  const env = opts.env ?? process.env;
  checkExecutable(file, env);
  const term = loadNodePty().spawn(file, args, {
    name: opts.env?.TERM ?? DEFAULT_TERM,
    cols: opts.cols ?? 80,
    rows: opts.rows ?? 24,
    // The same object as process.env makes node-pty drop TMUX, STY, COLUMNS, LINES ...
    env: opts.env ?? process.env,
    ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
    encoding: null,
  });
  return new Session(term);
}

/** node-pty closes its read side 200 ms after the child exits, dropping what the terminal still holds. */
const EXIT_POLL_MS = 40;

function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

class Session implements PtySession {
  exit: PtyExit | null = null;
  readonly exited: Promise<PtyExit>;
  private readonly term: NodePty.IPty;
  private held = false;
  private childGone = false;
  private exitPoll: NodeJS.Timeout | undefined;

  constructor(term: NodePty.IPty) {
    this.term = term;
    this.exited = new Promise((resolve) => {
      // node-pty fires exit after its read side closed, so no output follows it.
      term.onExit(({ exitCode, signal }) => {
        this.release();
        this.exit = signal ? { exitCode, signal } : { exitCode };
        resolve(this.exit);
      });
    });
  }

  get pid(): number { return this.term.pid; }
  get cols(): number { return this.term.cols; }
  get rows(): number { return this.term.rows; }

  onData(cb: (b: Buffer) => void): () => void {
    // With encoding null node-pty hands out Buffers (its typings say string).
    const d = this.term.onData(cb as unknown as (s: string) => void);
    return () => d.dispose();
  }

  onExit(cb: (e: PtyExit) => void): () => void {
    let live = true;
    void this.exited.then((e) => { if (live) cb(e); });
    return () => { live = false; };
  }

  write(data: Buffer | string): void {
    if (!this.exit) this.term.write(data);
  }

  resize(cols: number, rows: number): void {
    if (!this.exit) this.term.resize(cols, rows);
  }

  kill(signal: NodeJS.Signals = 'SIGHUP'): void {
    // After exit the pid may belong to another process.
    if (!this.exit && !this.childGone) this.term.kill(signal);
  }

  /**
   * Stops reading the terminal, so a child that writes faster than the consumer reads blocks.
   * node-pty drops unread output 200 ms after the child exits, so while held, a poll notices the
   * child is gone (reaped by node-pty) and reads the rest: that output waits in memory instead.
   */
  private hold(): void {
    if (this.held || this.childGone || this.exit) return;
    this.held = true;
    this.term.pause();
    this.exitPoll = setInterval(() => {
      if (pidAlive(this.term.pid)) return;
      this.childGone = true;
      this.release();
    }, EXIT_POLL_MS);
    this.exitPoll.unref();
  }

  private release(): void {
    if (!this.held) return;
    this.held = false;
    clearInterval(this.exitPoll);
    this.term.resume();
  }

  toDuplex(): Duplex {
    let offData = (): void => {};
    const stream = new Duplex({
      // When the output ends (the process exited) the input side ends too, so the stream closes.
      allowHalfOpen: false,
      read: () => this.release(),
      write: (chunk: Buffer, _enc, cb) => { this.write(chunk); cb(); },
      final: (cb) => { this.kill(); cb(); },
      destroy: (err, cb) => { offData(); this.kill(); cb(err); },
    });
    offData = this.onData((b) => {
      // Backpressure: stop reading the pty until the consumer reads again.
      if (!stream.push(b)) this.hold();
    });
    this.onExit(() => { offData(); stream.push(null); });
    return stream;
  }
}
