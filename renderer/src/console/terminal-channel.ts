// A guest terminal's protocol (issue 18; no DOM, tested in Node): `ssh user@guest` in a pty on the
// serving host, over a terminal channel (CoreTransport.openTerminal). The console protocol: one
// ready/error control first, binary output (acknowledged once the terminal processed it, as the
// serial console does), binary input; plus { type: 'resize', cols, rows } whenever the terminal's
// size changes. The session ends with { type: 'end', reason: 'session-ended', exitCode } when ssh
// exits; a new Connect opens a new session (never reconnected by itself: a login is the user's).
import type { ConsoleLink, CoreTransport, TerminalRequest } from '../../../core/common/transport.ts';
import { decodeConsoleControl, encodeConsoleControl } from '../../../core/common/transport.ts';
import { AckBatcher } from './console-channel.ts';

export type TerminalStatus = 'idle' | 'connecting' | 'live' | 'ended' | 'failed';

export interface TerminalSinkLike {
  write(data: Uint8Array | string, done?: () => void): void;
  notice(text: string): void;
}

export interface TerminalChannelOptions {
  vm: string;
  transport: Pick<CoreTransport, 'openTerminal'>;
  sink: TerminalSinkLike;
  onStatus?: (status: TerminalStatus, detail?: string, exitCode?: number) => void;
}

const encoder = new TextEncoder();

export class TerminalChannel {
  private link: ConsoleLink | null = null;
  private acks: AckBatcher | null = null;
  private size: { cols: number; rows: number } | null = null;
  private _status: TerminalStatus = 'idle';
  private generation = 0;

  constructor(private readonly opts: TerminalChannelOptions) {}

  get status(): TerminalStatus {
    return this._status;
  }

  private setStatus(s: TerminalStatus, detail?: string, exitCode?: number): void {
    this._status = s;
    this.opts.onStatus?.(s, detail, exitCode);
  }

  /** Opens a new session (closing one still open). */
  async connect(req: Omit<TerminalRequest, 'cols' | 'rows'>): Promise<void> {
    this.close();
    const gen = ++this.generation;
    this.setStatus('connecting');
    if (!this.opts.transport.openTerminal) {
      this.setStatus('failed', 'this Hangar host has no guest terminals');
      return;
    }
    let link: ConsoleLink;
    try {
      link = await this.opts.transport.openTerminal(this.opts.vm, { ...req, ...(this.size ?? {}) });
    } catch (e) {
      if (gen === this.generation) this.setStatus('failed', e instanceof Error ? e.message : String(e));
      return;
    }
    if (gen !== this.generation) {
      link.close();
      return;
    }
    this.link = link;
    const acks = new AckBatcher((bytes) => link.send(encodeConsoleControl({ type: 'ack', bytes })));
    this.acks = acks;
    let ended = false;
    link.onMessage((m) => {
      if (gen !== this.generation) return;
      if (typeof m !== 'string') {
        const n = m.byteLength;
        this.opts.sink.write(m, () => acks.processed(n));
        return;
      }
      const c = decodeConsoleControl(m);
      if (!c) return;
      if (c.type === 'ready') {
        this.setStatus('live');
        // The size may have changed while the channel opened.
        if (this.size) link.send(encodeConsoleControl({ type: 'resize', ...this.size }));
      } else if (c.type === 'error') {
        ended = true;
        const text = c.error.hint ? `${c.error.message} (${c.error.hint})` : c.error.message;
        this.opts.sink.notice(text);
        this.setStatus('failed', text);
      } else if (c.type === 'end') {
        ended = true;
        const text = c.reason === 'session-ended'
          ? `Session ended${c.exitCode !== undefined ? ` (exit code ${c.exitCode})` : ''}.`
          : `Disconnected (${c.reason}).`;
        this.opts.sink.notice(text);
        this.setStatus('ended', text, c.reason === 'session-ended' ? c.exitCode : undefined);
      }
    });
    link.onClose((reason) => {
      if (gen !== this.generation) return;
      acks.dispose();
      this.link = null;
      if (!ended) {
        this.opts.sink.notice(`Disconnected: ${reason}`);
        this.setStatus('ended', reason);
      }
    });
  }

  /** Keystrokes and pastes (text) or raw bytes. */
  input(data: string | Uint8Array): void {
    if (!this.link || this._status !== 'live') return;
    this.link.send(typeof data === 'string' ? encoder.encode(data) : data);
  }

  /** The terminal's size changed (xterm's onResize): the pty follows. */
  resize(cols: number, rows: number): void {
    if (!(cols >= 1 && rows >= 1)) return;
    const c = Math.min(Math.floor(cols), 1000);
    const r = Math.min(Math.floor(rows), 1000);
    if (this.size && this.size.cols === c && this.size.rows === r) return;
    this.size = { cols: c, rows: r };
    if (this.link && this._status === 'live') this.link.send(encodeConsoleControl({ type: 'resize', cols: c, rows: r }));
  }

  /** Ends the session (the core ends ssh). */
  close(): void {
    this.generation++;
    this.acks?.dispose();
    this.acks = null;
    const l = this.link;
    this.link = null;
    l?.close();
    if (this._status === 'live' || this._status === 'connecting') this.setStatus('ended', 'closed');
  }
}
