// Memory tuning figures (issue 16), on the test guest under TCG:
// - KSM: N identical idle guests (BENCH_KSM_GUESTS, default 3, 192 MiB each) booted to their
//   shell; KSM switched on with pages_to_scan=1000 and sleep_millisecs=20 (about 200 MB/s of
//   scanning); MiB saved per guest (pages_sharing x 4 KiB / N) once it stops growing for 10 s,
//   and how long that took. KSM's settings are put back afterwards.
// - Guest memory bandwidth with and without 2 MiB huge pages: a copy loop inside the guest
//   (busybox dd of a 64 MiB tmpfs file to /dev/null, BENCH_COPY_ROUNDS times), as a ratio.
//   Under TCG the emulator's own work dominates, so expect a ratio near 1.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../tests/guest/guest.ts';
import { HangarHarness } from '../tests/helpers/hangar.ts';
import { reserveHugepages2M } from '../tests/helpers/hugepages.ts';

const GUESTS = Number(process.env.BENCH_KSM_GUESTS ?? 3);
const ROUNDS = Number(process.env.BENCH_COPY_ROUNDS ?? 8);
const KSM = '/sys/kernel/mm/ksm';

const readKsm = (f: string): number => Number(readFileSync(join(KSM, f), 'utf8').trim());

export async function benchMemory(): Promise<void> {
  const guest = await ensureTestGuest();
  const h = new HangarHarness();
  const saved = Object.fromEntries(['run', 'pages_to_scan', 'sleep_millisecs'].map((f) => [f, readFileSync(join(KSM, f), 'utf8').trim()]));
  let restorePool: (() => void) | undefined;
  const boot = async (name: string, flags: string[]): Promise<void> => {
    const vm = await h.json<{ id: string }>(['create', '--name', name, '--memory', '192', '--accel', 'tcg', '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE, ...flags]);
    await h.ok(['start', name]);
    await h.waitForSerial(vm.id, READY_MARKER, 1, 300_000);
  };
  try {
    // KSM over identical idle guests.
    writeFileSync(join(KSM, 'run'), '0');
    for (let i = 0; i < GUESTS; i++) await boot(`ksm-${i}`, []);
    writeFileSync(join(KSM, 'pages_to_scan'), '1000');
    writeFileSync(join(KSM, 'sleep_millisecs'), '20');
    const t0 = performance.now();
    writeFileSync(join(KSM, 'run'), '1');
    let best = 0;
    let bestAt = t0;
    while (performance.now() - bestAt < 10_000 && performance.now() - t0 < 300_000) {
      await new Promise((r) => setTimeout(r, 1000));
      const now = readKsm('pages_sharing');
      if (now > best * 1.01) { best = now; bestAt = performance.now(); }
    }
    const savedMiB = best * 4096 / 1048576;
    console.log(`ksm: ${GUESTS} identical idle guests of 192 MiB: ${savedMiB.toFixed(0)} MiB saved (${(savedMiB / GUESTS).toFixed(1)} MiB per guest), reached in ${((bestAt - t0) / 1000).toFixed(1)} s (pages_to_scan 1000, sleep 20 ms)`);
    writeFileSync(join(KSM, 'run'), '0');
    for (let i = 0; i < GUESTS; i++) await h.ok(['destroy', `ksm-${i}`]);

    // Guest memory copy rate with and without huge pages.
    restorePool = reserveHugepages2M(96, 'bench memory');
    const rate = async (name: string): Promise<number> => {
      const out = await h.consoleCommand(name, `dd if=/dev/zero of=/tmp/big bs=1M count=64 2>/dev/null; s=$(cut -d' ' -f1 /proc/uptime); for i in $(seq ${ROUNDS}); do dd if=/tmp/big of=/dev/null bs=1M 2>/dev/null; done; e=$(cut -d' ' -f1 /proc/uptime); echo "ELAPSED-$((1+1)) $s $e"`, 60);
      const m = /ELAPSED-2 (\S+) (\S+)/.exec(out);
      if (!m) throw new Error(`no timing from the guest: ${out}`);
      return (64 * ROUNDS) / (Number(m[2]) - Number(m[1]));
    };
    await boot('bw-plain', []);
    await boot('bw-huge', ['--hugepages', '2M']);
    const plain = await rate('bw-plain');
    const huge = await rate('bw-huge');
    console.log(`memory copy in the guest (${ROUNDS} x 64 MiB): ${plain.toFixed(0)} MiB/s on normal pages, ${huge.toFixed(0)} MiB/s on 2 MiB huge pages: ${(huge / plain).toFixed(2)}x`);
  } finally {
    await h.cleanup();
    for (const [f, v] of Object.entries(saved)) writeFileSync(join(KSM, f), v);
    restorePool?.();
  }
}
