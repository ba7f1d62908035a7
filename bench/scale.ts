// Scale: 1000 defined VMs -> `hangar list --json` p50 latency and core daemon RSS.
import { randomUUID } from 'node:crypto';
import { MODEL_VERSION } from '../core/common/model.ts';
import { parseDefinition } from '../core/common/definition.ts';
import { VmStore } from '../core/node/store/vm-store.ts';
import { HangarHarness } from '../tests/helpers/hangar.ts';

const COUNT = Number(process.env.BENCH_VMS ?? 1000);
const ROUNDS = 20;

/** Writes `count` VM definitions (vm-0000 ...) straight into the harness's data dir. */
export async function populate(h: HangarHarness, count: number): Promise<void> {
  const store = new VmStore(h.home);
  await store.init();
  for (let i = 0; i < count; i++) {
    await store.create(parseDefinition({ version: MODEL_VERSION, id: randomUUID(), name: `vm-${String(i).padStart(4, '0')}`, memoryMiB: 256,
      nics: [{ id: 'net0', mac: `52:54:00:00:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`, network: { type: 'user' } }] }));
  }
}

export async function benchScale(): Promise<void> {
  const h = new HangarHarness();
  try {
    await populate(h, COUNT);
    await h.ok(['list', '--json']); // start the daemon
    const times: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const t0 = performance.now();
      const out = await h.ok(['list', '--json']);
      times.push(performance.now() - t0);
      if ((JSON.parse(out) as unknown[]).length !== COUNT) throw new Error('list lost VMs');
    }
    times.sort((a, b) => a - b);
    const status = await h.json<{ rssBytes: number }>(['daemon', 'status']);
    console.log(`scale: ${COUNT} VMs, hangar list --json p50 ${times[Math.floor(ROUNDS / 2)]!.toFixed(0)} ms (target < 100), p90 ${times[Math.floor(ROUNDS * 0.9)]!.toFixed(0)} ms; core daemon RSS ${(status.rssBytes / 1048576).toFixed(0)} MiB (target < 150)`);
  } finally {
    await h.cleanup();
  }
}
