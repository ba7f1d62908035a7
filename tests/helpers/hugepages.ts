// The host's 2 MiB huge page pool for tests that back guests with huge pages: raised for the test
// (as root) and put back to what it was afterwards, whatever happens in between.
import { readFileSync, writeFileSync } from 'node:fs';

const POOL = '/sys/kernel/mm/hugepages/hugepages-2048kB';

export function hugepages2M(): { total: number; free: number } {
  const read = (f: string): number => Number(readFileSync(`${POOL}/${f}`, 'utf8').trim());
  return { total: read('nr_hugepages'), free: read('free_hugepages') };
}

/** Makes `free` more pages free (as root) and returns how to put the pool back. */
export function reserveHugepages2M(free: number, what: string): () => void {
  if (process.geteuid?.() !== 0) throw new Error(`${what} needs root to size the huge page pool (${POOL}/nr_hugepages); run the tests as root`);
  const before = hugepages2M();
  const want = before.total + Math.max(0, free - before.free);
  writeFileSync(`${POOL}/nr_hugepages`, String(want));
  const now = hugepages2M();
  if (now.free < free) {
    writeFileSync(`${POOL}/nr_hugepages`, String(before.total));
    throw new Error(`${what}: the kernel gave only ${now.free} free 2 MiB huge pages of the ${free} asked for (memory too fragmented?)`);
  }
  return () => writeFileSync(`${POOL}/nr_hugepages`, String(before.total));
}
