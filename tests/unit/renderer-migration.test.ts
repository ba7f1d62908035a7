// The Migrate dialog's logic (renderer/src/util/migration.ts), in Node: which saved connections are
// offered, the request it sends, the bandwidth field, and progress and result in words.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MigrationProgress, MigrationResult } from '../../core/common/api.ts';
import type { ConnectionInfo } from '../../core/common/connections.ts';
import {
  destinationKindText, formatDuration, isFinalPhase, migrateRequest, migrationDestinations, parseBandwidth, progressView, resultText,
} from '../../renderer/src/util/migration.ts';

const list: ConnectionInfo[] = [
  { name: 'local', uri: 'local', label: 'Hangar on this computer', kind: 'local' },
  { name: 'second', uri: 'hangar+unix:///tmp/h2/run/hangar.sock', label: 'Hangar at /tmp/h2/run/hangar.sock', kind: 'hangar-unix' },
  { name: 'box', uri: 'ssh://root@box', label: 'Hangar on box', kind: 'hangar-ssh' },
  { name: 'lv', uri: 'qemu:///system', label: 'libvirt system', kind: 'libvirt' },
  { name: 'lv2', uri: 'qemu+ssh://root@other/system', label: 'libvirt on other', kind: 'libvirt' },
];

const progress = (p: Partial<MigrationProgress>): MigrationProgress => ({
  vmId: 'id1', vm: 'web', to: 'second', phase: 'memory', transferredBytes: 0, totalBytes: 0, remainingBytes: 0,
  dirtyRateBytesPerSec: 0, expectedDowntimeMs: 0, ...p,
});

describe('Migrate dialog logic', () => {
  it('offers the other Hangar cores from a Hangar connection, never local nor the current one', () => {
    assert.deepEqual(migrationDestinations(list, 'local', 'hangar').map((d) => d.name), ['second', 'box']);
    assert.deepEqual(migrationDestinations(list, 'second', 'hangar').map((d) => d.name), ['box']);
    // The current connection given as a URI is left out too.
    assert.deepEqual(migrationDestinations(list, 'ssh://root@box', 'hangar').map((d) => d.name), ['second']);
    assert.deepEqual(migrationDestinations(list, 'local', undefined).map((d) => d.name), ['second', 'box']);
  });

  it('offers other libvirt hosts from a libvirt connection', () => {
    assert.deepEqual(migrationDestinations(list, 'lv', 'libvirt').map((d) => d.name), ['lv2']);
    assert.deepEqual(migrationDestinations([list[0]!, list[3]!], 'lv', 'libvirt'), []);
    assert.match(destinationKindText('libvirt'), /libvirt host/);
    assert.match(destinationKindText('hangar'), /hangar\+unix:/);
  });

  it('names the destination by name on this computer, by URI elsewhere; copy storage and bandwidth only when asked', () => {
    const second = migrationDestinations(list, 'local', 'hangar')[0]!;
    assert.deepEqual(migrateRequest(second, 'local', false, undefined), { to: 'second' });
    assert.deepEqual(migrateRequest(second, 'local', true, 3), { to: 'second', copyStorage: true, maxBandwidthMiBs: 3 });
    assert.deepEqual(migrateRequest(second, 'box', false, undefined), { to: 'hangar+unix:///tmp/h2/run/hangar.sock' });
  });

  it('reads the bandwidth field', () => {
    assert.deepEqual(parseBandwidth(''), { ok: true, value: undefined });
    assert.deepEqual(parseBandwidth(' 2.5 '), { ok: true, value: 2.5 });
    for (const bad of ['0', '-1', 'fast', 'Infinity', '9999999']) assert.equal(parseBandwidth(bad).ok, false, bad);
  });

  it('puts a progress report in words, with the RAM percentage for the progressbar', () => {
    const v = progressView(progress({ transferredBytes: 32 * 1024 ** 2, totalBytes: 128 * 1024 ** 2, remainingBytes: 96 * 1024 ** 2, dirtyRateBytesPerSec: 2 * 1024 ** 2, expectedDowntimeMs: 120, message: 'copying memory' }));
    assert.equal(v.phase, 'Copying the memory');
    assert.equal(v.ramPercent, 25);
    assert.equal(v.ramText, '32.0 MiB sent of 128.0 MiB (96.0 MiB to go)');
    assert.equal(v.dirtyRate, '2.0 MiB/s');
    assert.equal(v.expectedDowntime, '120 ms');
    assert.equal(v.storageText, null);
    assert.equal(v.message, 'copying memory');
    const early = progressView(progress({ phase: 'preparing' }));
    assert.equal(early.ramPercent, null);
    assert.equal(early.expectedDowntime, '—');
    const st = progressView(progress({ phase: 'storage', storage: { doneBytes: 8 * 1024 ** 2, totalBytes: 16 * 1024 ** 2, ready: false } }));
    assert.equal(st.storagePercent, 50);
    assert.equal(st.storageText, '8.0 MiB of 16.0 MiB');
    // More sent than the total (dirty pages re-sent): the bar stays at 100.
    assert.equal(progressView(progress({ transferredBytes: 300, totalBytes: 200 })).ramPercent, 100);
    assert.equal(isFinalPhase('done'), true);
    assert.equal(isFinalPhase('cancelled'), true);
    assert.equal(isFinalPhase('memory'), false);
  });

  it('says where the VM runs now and how long it was paused', () => {
    const r = { id: 'id1', name: 'web', to: 'second', totalTimeMs: 12_340, downtimeMs: 45, transferredBytes: 130 * 1024 ** 2, definitionKeptAt: '/x' } as unknown as MigrationResult;
    assert.equal(resultText(r, 'second'), '“web” now runs on second. Total time 12.3 s; the guest was paused for 45 ms (130.0 MiB of memory sent).');
    assert.match(resultText({ ...r, storageBytes: 16 * 1024 ** 2 }, 'second'), /16\.0 MiB of disks/);
    assert.match(resultText({ ...r, guestPauseMs: 180 }, 'second'), /the guest was paused for 180 ms \(QEMU’s downtime 45 ms\)/);
    assert.equal(formatDuration(75_000), '1 min 15 s');
  });
});
