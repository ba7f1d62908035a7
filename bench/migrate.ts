// Live migration between two local Hangar cores (issue 18), on the test guest under TCG: for a
// 256 MiB and a 1 GiB guest (BENCH_MIGRATE_MEMORIES, MiB) with half its RAM filled with non-zero
// data (BENCH_MIGRATE_FILL, a fraction), idle and with a dirtying loop (dd from /dev/urandom over
// a 16 MiB tmpfs file, again and again), with shared storage and with --copy-storage (a 256 MiB
// qcow2 disk with BENCH_MIGRATE_DISK_MIB of data): the migration's total time (the core's, from
// the first check to the destination running the guest), the `hangar migrate` wall time, the
// downtime QEMU measured (query-migrate `downtime`), the guest's pause as the cores saw it (its
// STOP at the source until the destination's `cont`) and the RAM sent. The guest goes back and
// forth between the two cores (A -> B -> A ...), so each case migrates the same running guest.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../tests/guest/guest.ts';
import { HangarHarness } from '../tests/helpers/hangar.ts';

const MEMORIES = (process.env.BENCH_MIGRATE_MEMORIES ?? '256,1024').split(',').filter(Boolean).map(Number);
const FILL = Number(process.env.BENCH_MIGRATE_FILL ?? 0.5);
const DISK_MIB = Number(process.env.BENCH_MIGRATE_DISK_MIB ?? 128);

interface Result { totalTimeMs: number; downtimeMs: number; guestPauseMs?: number; transferredBytes: number; storageBytes?: number }

export async function benchMigrate(): Promise<void> {
  const guest = await ensureTestGuest();
  const a = new HangarHarness();
  const b = new HangarHarness();
  try {
    const sockA = (await a.json<{ socketPath: string }>(['daemon', 'status']).catch(async () => { await a.ok(['list']); return a.json<{ socketPath: string }>(['daemon', 'status']); })).socketPath;
    const sockB = (await b.json<{ socketPath: string }>(['daemon', 'status']).catch(async () => { await b.ok(['list']); return b.json<{ socketPath: string }>(['daemon', 'status']); })).socketPath;
    for (const [h, name, sock] of [[a, 'peer', sockB], [b, 'peer', sockA]] as const) {
      mkdirSync(join(h.home, 'config'), { recursive: true, mode: 0o700 });
      writeFileSync(join(h.home, 'config', 'connections.json'), JSON.stringify({ version: 1, connections: [{ name, uri: `hangar+unix://${sock}` }] }));
    }
    console.log(`migrate: two local cores, test guest under TCG, ${Math.round(FILL * 100)}% of RAM filled, disk ${DISK_MIB} MiB of data for --copy-storage`);
    for (const mib of MEMORIES) {
      const name = `bench-mig-${mib}`;
      const vm = await a.json<{ id: string; definition: { disks: Array<{ file: string }> } }>(['create', '--name', name, '--memory', String(mib), '--accel', 'tcg',
        '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE, '--new-disk', '256M']);
      execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x5a 0 ${DISK_MIB}M`, vm.definition.disks[0]!.file], { stdio: 'ignore' });
      await a.ok(['start', name]);
      await a.waitForSerial(vm.id, READY_MARKER, 1, 300_000);
      const fill = Math.floor(mib * FILL);
      await a.consoleCommand(name, `mkdir -p /dev/shm; mount -t tmpfs -o size=${mib}m tmpfs /dev/shm; for i in $(seq ${Math.ceil(fill / 2)}); do cat /bin/busybox; done > /dev/shm/fill; echo FILLED`, Math.max(8, fill / 12));
      let here = a;
      let there = b;
      for (const dirty of [false, true]) {
        if (dirty) await here.consoleCommand(name, 'while true; do dd if=/dev/urandom of=/dev/shm/dirty bs=1M count=16 2>/dev/null; done &', 2);
        for (const copy of [false, true]) {
          const t0 = performance.now();
          const out = await here.ok(['migrate', name, '--to', 'peer', '--json', ...(copy ? ['--copy-storage'] : [])], { timeoutMs: 900_000 });
          const wall = performance.now() - t0;
          const r = JSON.parse(out) as Result;
          console.log(`migrate ${mib} MiB guest, ${dirty ? 'dirtying' : 'idle'}, ${copy ? 'copy-storage' : 'shared storage'}: total ${(r.totalTimeMs / 1000).toFixed(2)} s `
            + `(hangar migrate ${(wall / 1000).toFixed(2)} s), downtime ${r.downtimeMs} ms (guest paused ${r.guestPauseMs ?? '?'} ms as the cores saw it), RAM sent ${(r.transferredBytes / 1048576).toFixed(0)} MiB`
            + `${r.storageBytes !== undefined ? `, disk mirrored ${(r.storageBytes / 1048576).toFixed(0)} MiB` : ''}`);
          [here, there] = [there, here];
        }
      }
      await here.ok(['destroy', name]);
      await here.ok(['delete', name, '--delete-disks']);
    }
  } finally {
    await a.cleanup();
    await b.cleanup();
  }
}
