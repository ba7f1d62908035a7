import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ByteRing, DEFAULT_RING_CAPACITY } from '../../core/node/console/ring-buffer.ts';
import { HangarError } from '../../core/common/errors.ts';

/** Small deterministic PRNG (mulberry32) so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomBytes(rand: () => number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

/** Reference model: keep everything, take the last `cap` bytes. */
function lastBytes(all: Buffer[], cap: number): Buffer {
  const joined = Buffer.concat(all);
  return joined.subarray(Math.max(0, joined.length - cap));
}

describe('ByteRing', () => {
  it('defaults to 1 MiB and starts empty', () => {
    const r = new ByteRing();
    assert.equal(r.capacity, 1048576);
    assert.equal(DEFAULT_RING_CAPACITY, 1048576);
    assert.equal(r.size, 0);
    assert.equal(r.snapshot().length, 0);
  });

  it('keeps exact bytes before wrapping', () => {
    const r = new ByteRing(16);
    r.append(Buffer.from('hello '));
    r.append(Buffer.from('world'));
    assert.equal(r.size, 11);
    assert.equal(r.snapshot().toString(), 'hello world');
  });

  it('matches a reference model across wrap-arounds with random chunk sizes', () => {
    for (const seed of [1, 2, 3, 42, 1234]) {
      const rand = rng(seed);
      const cap = 1 + Math.floor(rand() * 300);
      const r = new ByteRing(cap);
      const written: Buffer[] = [];
      for (let step = 0; step < 400; step++) {
        // Mostly small chunks, sometimes around or above the capacity, sometimes empty.
        const roll = rand();
        const n = roll < 0.05 ? 0 : roll < 0.85 ? Math.floor(rand() * (cap / 3 + 2)) : Math.floor(rand() * cap * 2.5);
        const chunk = randomBytes(rand, n);
        r.append(chunk);
        written.push(chunk);
        const expected = lastBytes(written, cap);
        assert.equal(r.size, expected.length, `seed ${seed} step ${step}: size`);
        assert.deepEqual(r.snapshot(), expected, `seed ${seed} step ${step}: contents`);
      }
    }
  });

  it('handles a single chunk larger than the capacity (at any head position)', () => {
    const r = new ByteRing(10);
    r.append(Buffer.from('abc')); // head not at 0
    const big = Buffer.from('0123456789ABCDEFGHIJ');
    r.append(big);
    assert.equal(r.size, 10);
    assert.equal(r.snapshot().toString(), 'ABCDEFGHIJ');
    r.append(Buffer.from('xy'));
    assert.equal(r.snapshot().toString(), 'CDEFGHIJxy');
  });

  it('handles a chunk exactly the capacity', () => {
    const r = new ByteRing(8);
    r.append(Buffer.from('12345'));
    r.append(Buffer.from('abcdefgh'));
    assert.equal(r.snapshot().toString(), 'abcdefgh');
    r.append(Buffer.from('Z'));
    assert.equal(r.snapshot().toString(), 'bcdefghZ');
  });

  it('accepts plain Uint8Array views with a byte offset', () => {
    const backing = new Uint8Array([9, 9, 1, 2, 3, 4, 9]);
    const view = backing.subarray(2, 6);
    const r = new ByteRing(3);
    r.append(view);
    assert.deepEqual([...r.snapshot()], [2, 3, 4]);
  });

  it('capacity 1 keeps only the last byte', () => {
    const r = new ByteRing(1);
    r.append(Buffer.from('a'));
    r.append(Buffer.from('bc'));
    assert.equal(r.snapshot().toString(), 'c');
  });

  it('snapshot is a copy', () => {
    const r = new ByteRing(4);
    r.append(Buffer.from('abcd'));
    const s = r.snapshot();
    s[0] = 0x7a;
    assert.equal(r.snapshot().toString(), 'abcd');
  });

  it('clear() empties it and it keeps working', () => {
    const r = new ByteRing(5);
    r.append(Buffer.from('abcdefg'));
    r.clear();
    assert.equal(r.size, 0);
    assert.equal(r.snapshot().length, 0);
    r.append(Buffer.from('xyz'));
    assert.equal(r.snapshot().toString(), 'xyz');
  });

  it('rejects invalid capacities with a typed error', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => new ByteRing(bad), (e: unknown) => e instanceof HangarError && e.code === 'invalid-input');
    }
  });

  it('is fast for big writes (sanity, not timed)', () => {
    const r = new ByteRing();
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    for (let i = 0; i < 200; i++) r.append(chunk); // 12.5 MiB
    r.append(Buffer.from('END'));
    const s = r.snapshot();
    assert.equal(s.length, 1048576);
    assert.equal(s.subarray(-3).toString(), 'END');
  });
});
