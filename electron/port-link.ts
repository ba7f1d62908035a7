// A MessagePortMain as the transport's RpcLink / ConsoleLink (core/common/transport.ts). Used by
// the core host (its end of each window's channel) and by main (its own RPC channel).
import type { ConsoleLink, RpcLink } from '../core/common/transport.ts';
import type { MessagePortLike } from './electron-api.ts';

interface Link<T> {
  send(message: T): void;
  onMessage(cb: (message: T) => void): void;
  onClose(cb: (reason: string) => void): void;
  close(): void;
}

function portLink<T>(port: MessagePortLike, decode: (data: unknown) => T | null, encode: (m: T) => unknown): Link<T> {
  const listeners: ((m: T) => void)[] = [];
  const closeListeners: ((reason: string) => void)[] = [];
  // Messages that arrive before anyone listens are kept, not dropped.
  const early: T[] = [];
  let closed = false;
  const fireClose = (reason: string): void => {
    if (closed) return;
    closed = true;
    for (const cb of closeListeners.splice(0)) {
      try { cb(reason); } catch { /* one listener must not stop the others */ }
    }
  };
  port.on('message', (e) => {
    if (closed) return;
    const m = decode(e.data);
    if (m === null) return; // not a message of this protocol: ignored
    if (listeners.length === 0) { early.push(m); return; }
    for (const cb of listeners) cb(m);
  });
  port.on('close', () => fireClose('the other side closed the channel'));
  port.start();
  return {
    send(message) {
      if (closed) throw new Error('channel closed');
      port.postMessage(encode(message));
    },
    onMessage(cb) {
      listeners.push(cb);
      if (listeners.length === 1) for (const m of early.splice(0)) cb(m);
    },
    onClose(cb) {
      if (closed) queueMicrotask(() => cb('closed'));
      else closeListeners.push(cb);
    },
    close() {
      try { port.close(); } catch { /* already closed */ }
      fireClose('closed locally');
    },
  };
}

/** Binary data as a standalone Uint8Array (a pooled Buffer would carry its whole pool). */
export function toBytes(data: unknown): Uint8Array | null {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) {
    const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data instanceof Uint8Array && !Buffer.isBuffer(data)
      ? view
      : new Uint8Array(view); // copy
  }
  return null;
}

export function rpcLinkFromPort(port: MessagePortLike): RpcLink {
  return portLink<string>(port, (d) => (typeof d === 'string' ? d : null), (m) => m);
}

export function consoleLinkFromPort(port: MessagePortLike): ConsoleLink {
  return portLink<string | Uint8Array>(
    port,
    (d) => (typeof d === 'string' ? d : toBytes(d)),
    (m) => (typeof m === 'string' ? m : toBytes(m)),
  );
}
