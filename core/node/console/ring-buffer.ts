// A fixed-capacity byte ring: the serial console's scrollback. Keeps the newest `capacity` bytes;
// older bytes are overwritten. All copies are bulk (TypedArray.set / Buffer.copy), never per byte.

import { HangarError } from '../../common/errors.ts';

/** Default scrollback: 1 MiB. */
export const DEFAULT_RING_CAPACITY = 1024 * 1024;

export class ByteRing {
  readonly capacity: number;
  private readonly buf: Buffer;
  /** Index where the next byte is written. */
  private head = 0;
  private len = 0;

  constructor(capacity: number = DEFAULT_RING_CAPACITY) {
    if (!Number.isSafeInteger(capacity) || capacity <= 0) {
      throw new HangarError('invalid-input', `ring buffer capacity must be a positive integer, got ${String(capacity)}`);
    }
    this.capacity = capacity;
    this.buf = Buffer.alloc(capacity);
  }

  /** Number of bytes currently held (at most `capacity`). */
  get size(): number {
    return this.len;
  }

  append(data: Uint8Array): void {
    const n = data.length;
    if (n === 0) return;
    const cap = this.capacity;
    if (n >= cap) {
      // Only the last `cap` bytes survive; lay them out from index 0.
      this.buf.set(data.subarray(n - cap), 0);
      this.head = 0;
      this.len = cap;
      return;
    }
    const first = Math.min(n, cap - this.head);
    this.buf.set(data.subarray(0, first), this.head);
    if (first < n) this.buf.set(data.subarray(first), 0);
    this.head = (this.head + n) % cap;
    this.len = Math.min(cap, this.len + n);
  }

  /** A fresh copy of the held bytes, oldest to newest. */
  snapshot(): Buffer {
    const len = this.len;
    const cap = this.capacity;
    const out = Buffer.allocUnsafe(len);
    if (len === 0) return out;
    const start = (this.head - len + cap) % cap;
    if (start + len <= cap) {
      this.buf.copy(out, 0, start, start + len);
    } else {
      const first = cap - start;
      this.buf.copy(out, 0, start, cap);
      this.buf.copy(out, first, 0, len - first);
    }
    return out;
  }

  clear(): void {
    this.head = 0;
    this.len = 0;
  }
}
