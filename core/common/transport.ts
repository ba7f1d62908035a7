// The one transport contract between a UI and the core. Two implementations exist in the
// renderer (Electron MessagePort, browser-mode WebSocket); the core serves the same messages on
// each, and on its unix socket for the CLI. Pure TypeScript: the renderer imports this.
import type { ErrorPayload } from './errors.ts';

/**
 * The RPC channel carries birpc messages, one JSON string per message (the same JSON the unix
 * socket carries one per line).
 */
export interface RpcLink {
  send(message: string): void;
  onMessage(cb: (message: string) => void): void;
  /** Called once when the link is gone (either side closed it, or the core went away). */
  onClose(cb: (reason: string) => void): void;
  close(): void;
}

/** Why a console channel ended, sent by the core before it closes the channel. */
export type ConsoleEndReason =
  /** The VM stopped (QEMU closed its serial socket). Reconnect when the VM runs again. */
  | 'vm-stopped'
  /** The viewer did not acknowledge output for too long; reconnect (scrollback is replayed). */
  | 'too-slow'
  /** The core is going away (restart); reconnect. */
  | 'core-closing'
  /**
   * A terminal channel's program ended (ssh logged out, or failed: its message is in the output
   * before this); the end control carries its exit code. Open a new terminal to log in again.
   */
  | 'session-ended';

/**
 * Messages on a console channel, in both directions. Output and input bytes travel as binary
 * (Uint8Array / ArrayBuffer) messages; everything else is a JSON string of ConsoleControl.
 *
 * core -> UI: first exactly one { type: 'ready' } or { type: 'error' } control; then binary
 *   output chunks (batched), of which the first replayBytes are the scrollback: a terminal must
 *   not send its automatic answers to queries in that history (cursor position reports) to the guest; finally an { type: 'end' } control before the core closes.
 * UI -> core: binary input bytes (keystrokes, paste); { type: 'ack' } after the terminal has
 *   processed output (xterm.js write callback). The core stops reading from the guest while a
 *   viewer has more than CONSOLE_HIGH_WATER unacknowledged bytes, and resumes under
 *   CONSOLE_LOW_WATER, so memory stays bounded at every hop.
 *   On a terminal channel (WS_TERMINAL_PATH: `ssh` to the guest in a pty in the UI host) also
 *   { type: 'resize', cols, rows } whenever the terminal's size changes (xterm's onResize; cols and
 *   rows 1..1000), which resizes the pty (the guest's shell sees SIGWINCH); a console ignores it.
 *   A terminal ends with { type: 'end', reason: 'session-ended', exitCode } when ssh exits.
 */
export type ConsoleControl =
  /** replayBytes: how much of the output that follows is scrollback (already answered history). */
  | { type: 'ready'; vm: string; replayBytes?: number }
  | { type: 'error'; error: ErrorPayload }
  /** exitCode: the program's exit status, on a terminal's 'session-ended'. */
  | { type: 'end'; reason: ConsoleEndReason; exitCode?: number }
  | { type: 'ack'; bytes: number }
  | { type: 'resize'; cols: number; rows: number };

/** The largest terminal size a resize control may ask for (either dimension). */
export const MAX_TERMINAL_SIZE = 1000;

/** A terminal dimension every layer accepts: an integer 1..MAX_TERMINAL_SIZE. */
export const isTerminalSize = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= MAX_TERMINAL_SIZE;

export const CONSOLE_HIGH_WATER = 512 * 1024;
export const CONSOLE_LOW_WATER = 128 * 1024;
/** A viewer stuck above the high-water mark this long is cut off (reason 'too-slow'). */
export const CONSOLE_STALL_MS = 15_000;
/** Output is batched: one message per this many milliseconds, or per CONSOLE_BATCH_BYTES. */
export const CONSOLE_BATCH_MS = 4;
export const CONSOLE_BATCH_BYTES = 64 * 1024;

export function encodeConsoleControl(c: ConsoleControl): string {
  return JSON.stringify(c);
}

/** Parses a control message; returns null for anything that is not a well-formed control. */
export function decodeConsoleControl(text: string): ConsoleControl | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (!v || typeof v !== 'object') return null;
  const o = v as Record<string, unknown>;
  switch (o.type) {
    case 'ready':
      if (typeof o.vm !== 'string') return null;
      return Number.isSafeInteger(o.replayBytes) && (o.replayBytes as number) > 0 ? { type: 'ready', vm: o.vm, replayBytes: o.replayBytes as number } : { type: 'ready', vm: o.vm };
    case 'error': return o.error && typeof o.error === 'object' ? { type: 'error', error: o.error as ErrorPayload } : null;
    case 'end':
      if (typeof o.reason !== 'string') return null;
      return Number.isSafeInteger(o.exitCode) ? { type: 'end', reason: o.reason as ConsoleEndReason, exitCode: o.exitCode as number } : { type: 'end', reason: o.reason as ConsoleEndReason };
    case 'ack': return Number.isSafeInteger(o.bytes) && (o.bytes as number) >= 0 ? { type: 'ack', bytes: o.bytes as number } : null;
    case 'resize': return isTerminalSize(o.cols) && isTerminalSize(o.rows) ? { type: 'resize', cols: o.cols, rows: o.rows } : null;
    default: return null;
  }
}

/**
 * A display channel carries RFB (VNC) bytes between one viewer and the VM's VNC server, each
 * viewer on its own connection to QEMU (shared session: QEMU serves all of them). The messages
 * are a console channel's: one ready/error control first, binary RFB both ways, acks from the
 * viewer, an end control before the core closes (never a replay). The window is larger than a
 * console's: one full 1280x800 update is several MiB before compression.
 */
export const DISPLAY_HIGH_WATER = 4 * 1024 * 1024;
export const DISPLAY_LOW_WATER = 1024 * 1024;

/** A console channel as the UI sees it (raw messages; see ConsoleControl for the protocol). */
export interface ConsoleLink {
  send(message: string | Uint8Array): void;
  onMessage(cb: (message: string | Uint8Array) => void): void;
  onClose(cb: (reason: string) => void): void;
  close(): void;
}

/** What a UI needs from its environment: open channels to the core. */
export interface CoreTransport {
  /** 'electron' or 'browser', for the About box and diagnostics. */
  readonly kind: 'electron' | 'browser';
  /**
   * Each channel may name the connection it is for (a saved connection's name or a URI; absent or
   * 'local' = this machine's core): the UI host serves that connection's API, console or display.
   */
  openRpc(connection?: string): Promise<RpcLink>;
  openConsole(vm: string, opts: { replay: boolean; connection?: string }): Promise<ConsoleLink>;
  /** The VM's screen: RFB bytes (see DISPLAY_HIGH_WATER for the protocol). */
  openDisplay(vm: string, connection?: string): Promise<ConsoleLink>;
  /**
   * A shell in the running guest: `ssh [user@]guest` in a pty in the UI host (TerminalRequest; the
   * console protocol plus resize controls, see ConsoleControl). Optional until both transports have it.
   */
  openTerminal?(vm: string, opts: TerminalRequest): Promise<ConsoleLink>;
}

/** What a terminal channel asks for (WS_TERMINAL_PATH query: vm, user, cols, rows, connection). */
export interface TerminalRequest {
  /** The login name in the guest (default: ssh's own choice: ~/.ssh/config, else the local user). */
  user?: string;
  /** The terminal's size when it opens (default 80x24); later changes travel as resize controls. */
  cols?: number;
  rows?: number;
  connection?: string;
  /**
   * Instead of a guest shell: log in to the connection's host (`ssh -M`, a master kept 10 minutes
   * for every later channel) with its questions (host key, password, passphrase) in this terminal.
   */
  login?: boolean;
}

/** The longest connection reference a channel request may carry (a name or a URI). */
export const MAX_CONNECTION_REF = 2048;

/** Browser-mode HTTP paths (WebSocket upgrades). The token travels as ?token=, the connection as ?connection=. */
export const WS_RPC_PATH = '/api/rpc';
export const WS_CONSOLE_PATH = '/api/console';
export const WS_DISPLAY_PATH = '/api/display';
/** A terminal: ?vm=NAME[&user=U][&cols=N&rows=N][&connection=C]. */
export const WS_TERMINAL_PATH = '/api/terminal';
