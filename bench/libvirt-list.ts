// `hangar --connect qemu:///system list` against `virsh list --all` with 100 defined domains
// (issue 18's target: ratio <= 1.2), on the real libvirtd. Both are whole processes as a user
// runs them; the hangar CLI runs its prebuilt bundle (npm run setup builds it).
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensureLibvirtd, removeDomains, testPrefix, virsh } from '../tests/helpers/libvirtd.ts';
import { HangarHarness } from '../tests/helpers/hangar.ts';
import { LibvirtDriver } from '../core/node/libvirt/libvirt-driver.ts';

const run = promisify(execFile);
const COUNT = Number(process.env.BENCH_DOMAINS ?? 100);
const ROUNDS = 9;

async function median(fn: () => Promise<void>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(ROUNDS / 2)]!;
}

export async function benchLibvirtList(): Promise<void> {
  await ensureLibvirtd();
  const prefix = testPrefix('bench');
  const dir = await mkdtemp(join(tmpdir(), 'hangar-bench-lv-'));
  const h = new HangarHarness();
  try {
    for (let i = 0; i < COUNT; i++) {
      const file = join(dir, `d${i}.xml`);
      await writeFile(file, `<domain type='qemu'><name>${prefix}${i}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os></domain>`);
      await virsh(['define', file]);
    }
    const total = (await virsh(['list', '--all', '--name'])).split('\n').filter((l) => l.trim()).length;
    const virshMs = await median(async () => { await run('virsh', ['-c', 'qemu:///system', 'list', '--all']); });
    let listed = 0;
    const hangarMs = await median(async () => { listed = (await h.ok(['--connect', 'qemu:///system', 'list'])).split('\n').length - 1; });
    if (listed < COUNT) throw new Error(`hangar listed ${listed} domains, expected at least ${COUNT}`);
    // What the app pays per refresh: the driver lives in the UI host, so no process starts.
    const driver = new LibvirtDriver('qemu:///system', { events: false });
    let inProcess = 0;
    try {
      inProcess = await median(async () => { await driver.api().list(); });
    } finally {
      driver.close();
    }
    const bare = await median(async () => { await run(process.execPath, ['-e', '0']); });
    console.log(`libvirt list: ${total} domains defined; virsh list --all median ${virshMs.toFixed(0)} ms, hangar --connect qemu:///system list median ${hangarMs.toFixed(0)} ms, ratio ${(hangarMs / virshMs).toFixed(2)} (target <= 1.2); of which a bare node start ${bare.toFixed(0)} ms; the driver's list() inside a running process (the app) ${inProcess.toFixed(0)} ms, ratio ${(inProcess / virshMs).toFixed(2)}`);
  } finally {
    await removeDomains(prefix).catch(() => {});
    await h.cleanup();
    await rm(dir, { recursive: true, force: true });
  }
}
