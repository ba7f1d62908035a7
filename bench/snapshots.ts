// Snapshots, managed save and clones (issue 14), on the test guest under TCG:
// - a running guest with 256 MiB and 1 GiB of RAM (BENCH_SNAPSHOT_MEMORIES, MiB), two thirds of it
//   filled inside the guest so the RAM state is real: `hangar snapshot create` (with RAM) and
//   `hangar snapshot revert` (loaded in place) wall times, and the RAM state's size;
// - `hangar save` and `hangar start` (restore until the guest's shell answers) versus a cold boot
//   to the ready marker, as a ratio;
// - a full clone's copy rate (`hangar clone`, a whole CLI call) versus `qemu-img convert` of the
//   same image alone (target >= 0.95x), on a 1 GiB qcow2 with BENCH_CLONE_MIB of data.
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../tests/guest/guest.ts';
import { HangarHarness } from '../tests/helpers/hangar.ts';

const MEMORIES = (process.env.BENCH_SNAPSHOT_MEMORIES ?? '256,1024').split(',').filter(Boolean).map(Number);
const CLONE_MIB = Number(process.env.BENCH_CLONE_MIB ?? 768);

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

/** Until the guest's shell answers a command (the console round trip included). */
async function shellAnswers(h: HangarHarness, name: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (/ANSWER-42/.test(await h.consoleCommand(name, 'echo ANSWER-$((6*7))', 1))) return;
  }
  throw new Error('the guest shell did not answer');
}

export async function benchSnapshots(): Promise<void> {
  const guest = await ensureTestGuest();
  const h = new HangarHarness();
  try {
    for (const mib of MEMORIES) {
      const name = `bench-snap-${mib}`;
      const vm = await h.json<{ id: string }>(['create', '--name', name, '--memory', String(mib), '--accel', 'tcg',
        '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE, '--new-disk', '64M']);
      const cold = await timed(async () => {
        await h.ok(['start', name]);
        await h.waitForSerial(vm.id, READY_MARKER, 1, 300_000);
      });
      // Fill two thirds of the RAM with non-zero data (zero pages would cost nothing to save).
      const fill = Math.floor(mib * 2 / 3);
      // Copies of the busybox binary (about 2 MiB each): non-zero pages, fast even under TCG.
      await h.consoleCommand(name, `for i in $(seq ${Math.ceil(fill / 2)}); do cat /bin/busybox; done > /tmp/fill; echo FILLED`, Math.max(10, fill / 10));
      const snap = await timed(() => h.ok(['snapshot', 'create', name, 'bench']));
      const list = await h.json<{ snapshots: Array<{ vmStateBytes?: number }> }>(['snapshot', 'list', name]);
      const revert = await timed(() => h.ok(['snapshot', 'revert', name, 'bench']));
      await shellAnswers(h, name);
      const save = await timed(() => h.ok(['save', name]));
      const restore = await timed(async () => {
        await h.ok(['start', name]);
        await shellAnswers(h, name);
      });
      const stateMiB = (list.snapshots[0]?.vmStateBytes ?? 0) / 1048576;
      console.log(`snapshots, ${mib} MiB guest (${fill} MiB filled): snapshot with RAM ${(snap.ms / 1000).toFixed(2)} s (${stateMiB.toFixed(0)} MiB state), revert ${(revert.ms / 1000).toFixed(2)} s`);
      console.log(`managed save, ${mib} MiB guest: save ${(save.ms / 1000).toFixed(2)} s, restore to a shell ${(restore.ms / 1000).toFixed(2)} s vs cold boot to the ready marker ${(cold.ms / 1000).toFixed(2)} s: restore/cold ${(restore.ms / cold.ms).toFixed(2)}`);
      await h.ok(['destroy', name]);
      await h.ok(['delete', name, '--delete-disks']);
    }

    // Clone copy rate vs qemu-img convert alone.
    const src = await h.json<{ dir: string; definition: { disks: Array<{ file: string }> } }>(['create', '--name', 'bench-clone-src', '--memory', '128', '--accel', 'tcg',
      '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE, '--new-disk', '1G']);
    const image = src.definition.disks[0]!.file;
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x5a 0 ${CLONE_MIB}M`, image], { stdio: 'ignore' });
    // Alternating rounds, each after a sync (the previous copy's dirty pages would otherwise slow
    // the next one's writes); medians. A clone's fixed cost (the CLI process, the core's checks,
    // the staging folder) is timed apart on a VM with a 1 MiB disk.
    await h.ok(['create', '--name', 'bench-clone-tiny', '--memory', '64', '--accel', 'tcg', '--kernel', guest.kernel, '--initrd', guest.initrd, '--new-disk', '1M']);
    const plainMs: number[] = [];
    const cloneMs: number[] = [];
    const cliMs: number[] = [];
    for (let round = 0; round < 3; round++) {
      const plainOut = join(h.home, `plain-copy-${round}.qcow2`);
      spawnSync('sync');
      const t0 = performance.now();
      const r = spawnSync('qemu-img', ['convert', '-p', '-f', 'qcow2', '-O', 'qcow2', image, plainOut]);
      plainMs.push(performance.now() - t0);
      if (r.status !== 0) throw new Error(`qemu-img convert failed: ${r.stderr}`);
      spawnSync('sync');
      cloneMs.push((await timed(() => h.ok(['clone', 'bench-clone-src', `bench-clone-${round}`]))).ms);
      cliMs.push((await timed(() => h.ok(['clone', 'bench-clone-tiny', `bench-clone-tiny-${round}`]))).ms);
    }
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const [plain, clone, cli] = [median(plainMs), median(cloneMs), median(cliMs)];
    const rate = (ms: number): number => CLONE_MIB / (ms / 1000);
    console.log(`clone: ${CLONE_MIB} MiB of data, medians of 3: hangar clone ${(clone / 1000).toFixed(2)} s (${rate(clone).toFixed(0)} MiB/s), qemu-img convert alone ${(plain / 1000).toFixed(2)} s (${rate(plain).toFixed(0)} MiB/s): ${(plain / clone).toFixed(2)}x (target >= 0.95); a clone's fixed cost (1 MiB disk) ${(cli / 1000).toFixed(2)} s, the copy alone ${(plain / (clone - cli)).toFixed(2)}x`);
  } finally {
    await h.cleanup();
  }
}
