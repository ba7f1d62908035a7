// Runs the accelerator probe against the real qemu-system-x86_64. Never skips: a host without
// QEMU is a broken test host and this test fails saying how to install it.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { probeAccelerators, runProbeGuest } from '../../core/node/host/accel.ts';
import type { AccelProbe } from '../../core/node/host/accel.ts';
import { findBinary } from '../../core/node/host/binaries.ts';

const TIMEOUT_MS = 20_000;

/** Command lines of live processes mentioning `needle` (our private temp dir). */
async function processesMentioning(needle: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    try {
      const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replace(/\0/g, ' ');
      if (cmdline.includes(needle)) found.push(`${pid}: ${cmdline}`);
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

describe('accelerator probe against a real QEMU', { timeout: 120_000 }, () => {
  let root: string;
  let qemu: string;
  let cacheDir: string;
  let tmp: string;
  let first: AccelProbe;
  let firstMs: number;

  before(async () => {
    const found = findBinary('qemu-system-x86_64');
    if (!found) {
      throw new Error('qemu-system-x86_64 is required for this test and was not found. ' +
        'Install it: apt-get install qemu-system-x86');
    }
    qemu = found;
    root = await mkdtemp(join(tmpdir(), 'hangar-accel-test-'));
    cacheDir = join(root, 'cache');
    tmp = join(root, 'tmp');
    await mkdir(tmp);
  });

  after(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('probes both accelerators within the timeout; TCG works', async () => {
    const t0 = Date.now();
    first = await probeAccelerators({ qemuPath: qemu, cacheDir, tmpDir: tmp, timeoutMs: TIMEOUT_MS, force: true });
    firstMs = Date.now() - t0;
    console.log(`probe took ${firstMs} ms:`, JSON.stringify(first, null, 2));

    assert.ok(firstMs < TIMEOUT_MS + 5_000, `probe finished in ${firstMs} ms (timeout ${TIMEOUT_MS} ms)`);
    assert.equal(first.tcg.works, true, first.tcg.reason);
    assert.match(first.tcg.reason, /\S/);
    assert.equal(typeof first.kvm.works, 'boolean');
    assert.match(first.kvm.reason, /\S/, 'KVM verdict always comes with a reason');
    if (first.kvm.works) assert.equal(first.kvm.available, true);
    if (!first.kvm.works) assert.match(first.kvm.reason, /Hangar will use TCG/);
    assert.equal(first.best, first.kvm.works ? 'kvm' : 'tcg');
    assert.match(first.qemuVersion, /^\d+\.\d+\.\d+$/);
    assert.ok(!Number.isNaN(Date.parse(first.probedAt)));
  });

  it('leaves no QEMU process and no temp files behind', async () => {
    assert.deepEqual(await processesMentioning(tmp), []);
    assert.deepEqual(await readdir(tmp), []);
  });

  it('answers a second call from the cache, fast and identical', async () => {
    const t0 = Date.now();
    const again = await probeAccelerators({ qemuPath: qemu, cacheDir, tmpDir: tmp, timeoutMs: TIMEOUT_MS });
    const ms = Date.now() - t0;
    assert.ok(ms < 1_000, `cached probe took ${ms} ms`);
    assert.deepEqual(again, first);
    const file = JSON.parse(await readFile(join(cacheDir, 'accel-probe.json'), 'utf8')) as { probe: AccelProbe };
    assert.deepEqual(file.probe, first);
  });

  it('force re-probes', async () => {
    const again = await probeAccelerators({ qemuPath: qemu, cacheDir, tmpDir: tmp, timeoutMs: TIMEOUT_MS, force: true });
    assert.notEqual(again.probedAt, first.probedAt);
    assert.equal(again.tcg.works, true);
    assert.equal(again.kvm.works, first.kvm.works);
  });

  it('a guest that runs out of time is killed and cleaned up, and the result is not definitive', async () => {
    const t0 = Date.now();
    const r = await runProbeGuest(qemu, 'tcg', 1, tmp);
    assert.ok(Date.now() - t0 < 5_000);
    assert.equal(r.works, false);
    assert.equal(r.definitive, false);
    assert.match(r.detail, /did not finish within/);
    assert.deepEqual(await processesMentioning(tmp), []);
    assert.deepEqual(await readdir(tmp), []);
  });
});
