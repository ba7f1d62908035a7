// A fixed-size ring of samples stored column by column: one Uint32Array of timestamps (epoch
// seconds) and one Float32Array per series, so an hour at 1 s costs 4 bytes per value and the
// memory is allocated once (the console's ByteRing holds bytes, not columns of numbers).
// Series can be added later (a hot-plugged disk): their earlier slots read as missing (NaN).

export class SeriesRing {
  private readonly times: Uint32Array;
  private readonly columns = new Map<string, Float32Array>();
  /** Next slot to write. */
  private head = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    this.times = new Uint32Array(capacity);
  }

  get size(): number {
    return this.count;
  }

  /** Bytes held by the typed arrays. */
  get bytes(): number {
    return this.times.byteLength + [...this.columns.values()].reduce((a, c) => a + c.byteLength, 0);
  }

  private column(key: string): Float32Array {
    let c = this.columns.get(key);
    if (!c) {
      c = new Float32Array(this.capacity).fill(Number.NaN);
      this.columns.set(key, c);
    }
    return c;
  }

  /** Appends one point; series not in `values` get NaN at this point. */
  push(timeSec: number, values: ReadonlyMap<string, number>): void {
    const i = this.head;
    this.times[i] = timeSec;
    for (const k of values.keys()) this.column(k);
    for (const [k, c] of this.columns) c[i] = values.get(k) ?? Number.NaN;
    this.head = (i + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
  }

  /** The points with time >= sinceSec, oldest first: times and each series (NaN -> null). */
  read(sinceSec = 0): { t: number[]; series: Record<string, Array<number | null>> } {
    const start = (this.head - this.count + this.capacity) % this.capacity;
    const idx: number[] = [];
    for (let n = 0; n < this.count; n++) {
      const i = (start + n) % this.capacity;
      if (this.times[i]! >= sinceSec) idx.push(i);
    }
    const series: Record<string, Array<number | null>> = {};
    for (const [k, c] of this.columns) series[k] = idx.map((i) => (Number.isNaN(c[i]!) ? null : c[i]!));
    return { t: idx.map((i) => this.times[i]! * 1000), series };
  }
}

/** Averages points over a window (a minute) into one: mean of each series' numbers, NaN when it had none. */
export class WindowAverage {
  private readonly sums = new Map<string, { sum: number; n: number }>();
  private windowStart = -1;

  constructor(private readonly windowSec: number) {}

  /** Adds a point; returns the finished window's averages when this point starts a new window. */
  add(timeSec: number, values: ReadonlyMap<string, number>): { timeSec: number; values: Map<string, number> } | null {
    const w = Math.floor(timeSec / this.windowSec) * this.windowSec;
    let done: { timeSec: number; values: Map<string, number> } | null = null;
    if (this.windowStart >= 0 && w !== this.windowStart) done = this.flush();
    this.windowStart = w;
    for (const [k, v] of values) {
      if (Number.isNaN(v)) continue;
      const s = this.sums.get(k) ?? { sum: 0, n: 0 };
      s.sum += v;
      s.n++;
      this.sums.set(k, s);
    }
    return done;
  }

  private flush(): { timeSec: number; values: Map<string, number> } {
    const values = new Map<string, number>();
    for (const [k, s] of this.sums) values.set(k, s.n ? s.sum / s.n : Number.NaN);
    this.sums.clear();
    return { timeSec: this.windowStart, values };
  }
}
