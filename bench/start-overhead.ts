// Start overhead: `hangar start` -> guest ready marker, vs the same argv run by plain QEMU.
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ensureTestGuest, READY_MARKER } from '../tests/guest/guest.ts';
import { HangarHarness, sleep } from '../tests/helpers/hangar.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function plainQemu(argv: string[]): Promise<number> {
  // Same argv, but serial on stdio and no -S (nobody sends `cont`).
  const args = argv.slice(1).filter((a) => a !== '-S').map((a) => (a.startsWith('socket,id=ch_serial0') ? 'stdio,id=ch_serial0' : a));
  // The runtime dir exists only while Hangar runs the VM; plain QEMU needs it for its sockets.
  mkdirSync(dirname(args[args.indexOf('-pidfile') + 1]!), { recursive: true, mode: 0o700 });
  const t0 = performance.now();
  const child = spawn(argv[0]!, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const t = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(READY_MARKER)) resolve(performance.now() - t0);
    });
    child.on('exit', () => reject(new Error('qemu exited before the marker')));
  });
  child.kill('SIGKILL');
  await sleep(200);
  return t;
}

export async function benchStartOverhead(): Promise<void> {
  const guest = await ensureTestGuest();
  const h = new HangarHarness();
  try {
    const vm = await h.json<{ id: string }>(['create', '--name', 'bench', '--memory', '256', '--accel', 'tcg',
      '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', 'console=ttyS0 quiet panic=-1']);
    await h.ok(['list']); // daemon up before timing
    const argv = await h.json<string[]>(['cmdline', 'bench']);
    const log = join(h.home, 'vms', vm.id, 'logs', 'serial.log');
    const hangar: number[] = [];
    const plain: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      plain.push(await plainQemu(argv));
      const seen = (() => { try { return readFileSync(log, 'utf8').split(READY_MARKER).length - 1; } catch { return 0; } })();
      const t0 = performance.now();
      await h.ok(['start', 'bench']);
      for (;;) {
        let n = 0;
        try { n = readFileSync(log, 'utf8').split(READY_MARKER).length - 1; } catch { /* not yet */ }
        if (n > seen) break;
        await sleep(5);
      }
      hangar.push(performance.now() - t0);
      await h.ok(['destroy', 'bench']);
    }
    const ratio = median(hangar) / median(plain);
    console.log(`start overhead: plain qemu median ${median(plain).toFixed(0)} ms, hangar start median ${median(hangar).toFixed(0)} ms, ratio ${ratio.toFixed(3)} (target <= 1.10), runs ${RUNS}`);
    console.log(`  plain: ${plain.map((x) => x.toFixed(0)).join(' ')} ms; hangar: ${hangar.map((x) => x.toFixed(0)).join(' ')} ms`);
  } finally {
    await h.cleanup();
    try { execFileSync('pkill', ['-f', 'guest=bench']); } catch { /* none left */ }
  }
}
