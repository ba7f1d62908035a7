// Live migration between two libvirt hosts (issue 18): the system libvirtd and a second libvirtd
// with its own host UUID (tests/helpers/second-libvirtd.ts), the test guest on storage both see.
// A counting loop in the guest shows it runs on, without a reboot, across both directions: the
// driver API there (with progress and a cancel), the CLI back.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CoreApi, MigrationProgress } from '../../core/common/api.ts';
import { HangarError } from '../../core/common/errors.ts';
import { LibvirtDriver } from '../../core/node/libvirt/libvirt-driver.ts';
import { ensureTestGuest, READY_MARKER } from '../guest/guest.ts';
import { HangarHarness, until } from '../helpers/hangar.ts';
import { ensureLibvirtd, libvirtGuestFiles, LIBVIRT_URI, removeDomains, testDomainXml, testPrefix, virsh } from '../helpers/libvirtd.ts';
import { startSecondLibvirtd } from '../helpers/second-libvirtd.ts';
import type { SecondLibvirtd } from '../helpers/second-libvirtd.ts';

const prefix = testPrefix('lvmig');
const NAME = `${prefix}a`;
let files: Awaited<ReturnType<typeof libvirtGuestFiles>>;
let second: SecondLibvirtd;
let driver: LibvirtDriver;
let api: CoreApi;
let serialLog: string;
const h = new HangarHarness();

function log(): string {
  return existsSync(serialLog) ? readFileSync(serialLog, 'utf8') : '';
}

/** The highest tick the guest's loop has printed so far (-1 before the first). */
function lastTick(): number {
  const ticks = [...log().matchAll(/tick-(\d+)/g)].map((m) => Number(m[1]));
  return ticks.length ? Math.max(...ticks) : -1;
}

function boots(): number {
  return log().split(READY_MARKER).length - 1;
}

/** until() with the serial log's tail in its failure. */
function untilLogged<T>(what: string, ms: number, probe: () => T | undefined): Promise<T> {
  return until(what, ms, probe, () => `serial log tail: ${log().slice(-400)}`);
}

/** The loop goes on: a tick later than `after` appears (the guest was not restarted: one boot). */
async function ticksOnAfter(after: number): Promise<void> {
  await untilLogged(`a tick after tick-${after}`, 60_000, () => (lastTick() > after + 1 ? true : undefined));
  assert.equal(boots(), 1, 'the guest booted once: it was carried, not restarted');
}

async function namesOn(run: (args: string[]) => Promise<string>): Promise<string[]> {
  return (await run(['list', '--all', '--name'])).split('\n').map((l) => l.trim()).filter((n) => n.startsWith(prefix));
}

before(async () => {
  await ensureLibvirtd();
  files = await libvirtGuestFiles(await ensureTestGuest());
  serialLog = join(files.dir, `${NAME}.serial.log`);
  const xml = join(files.dir, `${NAME}.xml`);
  writeFileSync(xml, testDomainXml({ name: NAME, kernel: files.kernel, initrd: files.initrd, serialLog }));
  await virsh(['define', xml]);
  // Started after the define: it must not pick up the first daemon's definition files.
  second = await startSecondLibvirtd();
  driver = new LibvirtDriver(LIBVIRT_URI, { connectionName: 'sys', events: false });
  api = driver.api();
});

after(async () => {
  driver?.close();
  await removeDomains(prefix).catch(() => {});
  await second?.stop();
  await files?.cleanup();
  await h.cleanup();
});

describe('live migration between two libvirt hosts', { timeout: 600_000 }, () => {
  test('the second libvirtd is another host to libvirt; the guest boots and starts counting', async () => {
    const here = await virsh(['capabilities']);
    assert.ok(!here.includes(`<uuid>${second.hostUuid}</uuid>`), 'two host UUIDs, or libvirt would refuse as the same host');
    assert.deepEqual(await namesOn(second.virsh), [], 'the second libvirtd has its own definitions, not the first\'s');
    await api.start(NAME);
    await untilLogged('the ready marker', 150_000, () => (boots() >= 1 ? true : undefined));
    const r = await h.run(['--connect', LIBVIRT_URI, 'console', NAME, '--grace', '2'], {
      input: '(i=0; while :; do echo tick-$i; i=$((i+1)); sleep 1; done) &\n', inputDelayMs: 1000,
    });
    assert.equal(r.code, 0, r.stderr);
    await untilLogged('the first ticks', 30_000, () => (lastTick() >= 2 ? true : undefined));
  });

  test('cancel mid-way: the domain runs on here, nothing is left there', async () => {
    const seen: MigrationProgress[] = [];
    const onProgress = (p: MigrationProgress): void => { seen.push(p); };
    driver.on('migrationProgress', onProgress);
    try {
      // 1 MiB/s: far longer than the test waits, so the cancel lands mid-copy.
      const migrating = api.migrate(NAME, { to: second.uri, maxBandwidthMiBs: 1 });
      migrating.catch(() => {});
      await untilLogged('progress with RAM sent', 60_000, () => (seen.some((p) => p.phase === 'memory' && p.transferredBytes > 0) ? true : undefined));
      assert.equal(await api.cancelMigration(NAME), true);
      await assert.rejects(migrating, (e: unknown) => e instanceof HangarError && e.code === 'cancelled' && /keeps running here/.test(e.message));
      assert.equal(seen.at(-1)?.phase, 'cancelled');
    } finally {
      driver.off('migrationProgress', onProgress);
    }
    assert.match(await virsh(['domstate', NAME]), /running/);
    assert.deepEqual(await namesOn(second.virsh), [], 'no domain is left on the destination');
    const t = lastTick();
    await ticksOnAfter(t);
  });

  test('live: progress, then running and defined there, gone here; the loop goes on', async () => {
    const seen: MigrationProgress[] = [];
    const onProgress = (p: MigrationProgress): void => { seen.push(p); };
    driver.on('migrationProgress', onProgress);
    const before = lastTick();
    let r;
    try {
      r = await api.migrate(NAME, { to: second.uri });
    } finally {
      driver.off('migrationProgress', onProgress);
    }
    assert.equal(r.name, NAME);
    assert.equal(r.to, second.uri);
    assert.equal(r.destination.state, 'running');
    assert.ok(r.transferredBytes > 0, `RAM was sent (${r.transferredBytes} bytes)`);
    assert.deepEqual(seen.map((p) => p.phase).filter((p, i, a) => a.indexOf(p) === i).filter((p) => p !== 'memory'), ['preparing', 'done']);
    assert.equal(seen.at(-1)?.downtimeMs, r.downtimeMs);
    assert.match(await second.virsh(['domstate', NAME]), /running/);
    assert.match(await second.virsh(['dominfo', NAME]), /Persistent:\s+yes/, 'defined there (--persistent)');
    assert.deepEqual(await namesOn(virsh), [], 'undefined here (--undefinesource)');
    assert.equal((await api.list()).some((s) => s.name === NAME), false);
    await ticksOnAfter(before);
  });

  test('and back with the CLI: hangar --connect THERE migrate NAME --to qemu:///system', async () => {
    const before = lastTick();
    const r = await h.run(['--connect', second.uri, 'migrate', NAME, '--to', LIBVIRT_URI], { timeoutMs: 180_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`VM "${NAME}" migrated to qemu:///system in [\\d.]+ s \\(downtime \\d+ ms`));
    assert.match(await virsh(['domstate', NAME]), /running/);
    assert.deepEqual(await namesOn(second.virsh), []);
    const listed = await h.run(['--connect', LIBVIRT_URI, 'list', '--json']);
    assert.equal((JSON.parse(listed.stdout) as Array<{ name: string; state: string }>).find((v) => v.name === NAME)?.state, 'running');
    await ticksOnAfter(before);
  });
});
