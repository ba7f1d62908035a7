// A display channel (ConsoleLink) dressed as the WebSocket noVNC expects (its Websock.attach()
// takes any object with send/close/binaryType/onopen/onmessage/onclose/onerror/protocol/
// readyState). No DOM, no noVNC import: the tests drive it in Node.
//
// - readyState follows a WebSocket's: CONNECTING until the core's { type: 'ready' }, then OPEN;
//   CLOSING after close(); CLOSED once the link is gone.
// - Binary messages reach onmessage as { data: ArrayBuffer }. noVNC parses synchronously in its
//   onmessage, so right after it returns the bytes are processed: an { type: 'ack', bytes } goes
//   back for each message (the core pauses QEMU's VNC stream above DISPLAY_HIGH_WATER unacked).
// - Messages that arrive before noVNC set onmessage wait, and are handed over in a microtask
//   (noVNC sets onmessage in attach() before it has seen that the channel is already open).
// - The close event is dispatched asynchronously, as a browser's WebSocket does: noVNC's
//   disconnect path calls close() and must not see its close event inside that call.
// - The owner learns how the channel ended (the core's 'end' reason or 'error' payload) through
//   onEnded, independently of noVNC's onclose.
import type { ErrorPayload } from '../../../core/common/errors.ts';
import type { ConsoleEndReason, ConsoleLink } from '../../../core/common/transport.ts';
import { decodeConsoleControl, encodeConsoleControl } from '../../../core/common/transport.ts';

export const WS_CONNECTING = 0;
export const WS_OPEN = 1;
export const WS_CLOSING = 2;
export const WS_CLOSED = 3;

/** How a display channel ended, for the reconnect rules. */
export interface ChannelEnd {
  /** The core's 'end' control, when it sent one. */
  ended: ConsoleEndReason | null;
  /** The core's 'error' control (instead of 'ready'), when it sent one. */
  error: ErrorPayload | null;
  /** The link's close reason, in words. */
  reason: string;
  /** The channel had been open (the core said 'ready'). */
  wasOpen: boolean;
}

export interface SocketCloseEvent { code: number; reason: string; wasClean: boolean }
export interface SocketMessageEvent { data: ArrayBuffer }

type Handler<E> = ((ev: E) => void) | null;

function exactBuffer(b: Uint8Array): ArrayBuffer {
  // A view of a larger buffer (or a shared one) is copied; a whole ArrayBuffer is handed over as is.
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer) return b.buffer;
  return b.slice().buffer;
}

export class ChannelSocket {
  // noVNC checks these names with Object.keys() and the prototype's own property names, so
  // they are plain fields here or accessors on this class itself (no base class).
  binaryType = 'arraybuffer';
  protocol = '';
  onopen: Handler<unknown> = null;
  onclose: Handler<SocketCloseEvent> = null;
  onerror: Handler<unknown> = null;
  /** Called once with how the channel ended (after noVNC's onclose). */
  onEnded: ((end: ChannelEnd) => void) | null = null;

  private state = WS_CONNECTING;
  private messageHandler: Handler<SocketMessageEvent> = null;
  private readonly inbox: ArrayBuffer[] = [];
  private flushQueued = false;
  private ended: ConsoleEndReason | null = null;
  private error: ErrorPayload | null = null;
  private wasOpen = false;
  private closeFired = false;
  /** Bytes handed to noVNC and acknowledged. */
  bytesAcked = 0;

  constructor(private readonly link: ConsoleLink) {
    link.onMessage((m) => this.receive(m));
    link.onClose((reason) => this.linkClosed(reason));
  }

  get readyState(): number {
    return this.state;
  }

  get onmessage(): Handler<SocketMessageEvent> {
    return this.messageHandler;
  }

  set onmessage(h: Handler<SocketMessageEvent>) {
    this.messageHandler = h;
    if (h && this.inbox.length) this.queueFlush();
  }

  /** Sends RFB bytes (noVNC reuses its send buffer: copied before it leaves). */
  send(data: ArrayBuffer | ArrayBufferView | string): void {
    if (this.state === WS_CONNECTING) throw new Error('the display channel is not open yet');
    if (this.state !== WS_OPEN) return; // a closing WebSocket drops what is sent
    let bytes: Uint8Array;
    if (typeof data === 'string') bytes = new TextEncoder().encode(data);
    else if (data instanceof ArrayBuffer) bytes = new Uint8Array(data.slice(0));
    else bytes = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    if (bytes.byteLength === 0) return;
    try {
      this.link.send(bytes);
    } catch {
      /* closing: the close event follows */
    }
  }

  close(): void {
    if (this.state === WS_CLOSING || this.state === WS_CLOSED) return;
    this.state = WS_CLOSING;
    this.link.close();
  }

  private receive(m: string | Uint8Array): void {
    if (this.state === WS_CLOSED) return;
    if (typeof m === 'string') {
      const c = decodeConsoleControl(m);
      if (!c) return;
      if (c.type === 'ready') {
        if (this.state !== WS_CONNECTING) return;
        this.state = WS_OPEN;
        this.wasOpen = true;
        // Inside the link's message callback, not inside a noVNC call: the open event goes out
        // at once, so it always comes before the first data. (A viewer attached later sees
        // readyState OPEN instead.)
        this.onopen?.({ type: 'open' });
        if (this.inbox.length) this.queueFlush();
      } else if (c.type === 'end') {
        this.ended = c.reason;
      } else if (c.type === 'error') {
        this.error = c.error;
      }
      return;
    }
    if (m.byteLength === 0) return;
    this.inbox.push(exactBuffer(m));
    // In order: nothing overtakes what is already waiting.
    if (this.inbox.length === 1 && this.canDeliver()) this.deliver();
    else if (this.canDeliver()) this.queueFlush();
  }

  private canDeliver(): boolean {
    return this.state === WS_OPEN && this.messageHandler !== null;
  }

  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      if (this.canDeliver()) this.deliver();
    });
  }

  /** Hands every waiting message to noVNC, acknowledging each once it returned. */
  private deliver(): void {
    while (this.inbox.length && this.canDeliver()) {
      const buf = this.inbox.shift()!;
      try {
        this.messageHandler!({ data: buf });
      } finally {
        this.ack(buf.byteLength);
      }
    }
  }

  private ack(bytes: number): void {
    this.bytesAcked += bytes;
    if (this.state !== WS_OPEN) return;
    try {
      this.link.send(encodeConsoleControl({ type: 'ack', bytes }));
    } catch {
      /* closed */
    }
  }

  private linkClosed(reason: string): void {
    if (this.closeFired) return;
    this.closeFired = true;
    this.state = WS_CLOSED;
    this.inbox.length = 0;
    const clean = this.ended !== null || reason === 'closed locally';
    const ev: SocketCloseEvent = { code: clean ? 1000 : 1006, reason: this.ended ?? this.error?.message ?? reason, wasClean: clean };
    const end: ChannelEnd = { ended: this.ended, error: this.error, reason, wasOpen: this.wasOpen };
    queueMicrotask(() => {
      try {
        this.onclose?.(ev);
      } finally {
        this.onEnded?.(end);
      }
    });
  }
}
