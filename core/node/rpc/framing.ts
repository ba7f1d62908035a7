// Newline-delimited JSON framing for the core's unix socket: a first "hello" line chooses the
// channel (typed RPC, or a raw console byte stream), then RPC messages are one JSON per line.
import type { Duplex } from 'node:stream';

export type Hello =
  | { channel: 'rpc' }
  | { channel: 'console'; vm: string; replay?: boolean }
  | { channel: 'display'; vm: string }
  /** A live migration's byte stream from a source core, into this core's incoming QEMU (RAM, or a disk's NBD export). */
  | { channel: 'migration'; vm: string; token: string; stream: 'ram' | 'nbd' };

export const MAX_LINE_BYTES = 16 * 1024 * 1024;

/** Calls onLine for each complete line; returns a function that stops listening. */
export function onLines(sock: Duplex, onLine: (line: string) => void, onOverflow: () => void): () => void {
  let buf = '';
  const onData = (chunk: Buffer): void => {
    buf += chunk.toString('utf8');
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim()) onLine(line);
    }
    if (buf.length > MAX_LINE_BYTES) {
      // The stream is out of step from here on: stop reading lines, let the caller close it.
      buf = '';
      sock.off('data', onData);
      onOverflow();
    }
  };
  sock.on('data', onData);
  return () => sock.off('data', onData);
}

/** Reads exactly one line, then hands the socket back with any bytes after it. */
export function readFirstLine(sock: Duplex, timeoutMs: number): Promise<{ line: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const cleanup = (): void => {
      clearTimeout(t);
      sock.off('data', onData);
      sock.off('close', onClose);
      sock.off('error', onClose);
    };
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const nl = buf.indexOf(0x0a);
      if (nl >= 0) {
        cleanup();
        sock.pause();
        resolve({ line: buf.subarray(0, nl).toString('utf8'), rest: buf.subarray(nl + 1) });
      } else if (buf.length > 64 * 1024) {
        cleanup();
        reject(new Error('first line too long'));
      }
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error('connection closed before the first line'));
    };
    const t = setTimeout(() => {
      cleanup();
      reject(new Error('no first line in time'));
    }, timeoutMs);
    sock.on('data', onData);
    sock.on('close', onClose);
    sock.on('error', onClose);
    // A stream paused by an earlier readFirstLine (an ssh channel's hello) flows again.
    sock.resume();
  });
}
