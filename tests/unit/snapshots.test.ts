// The snapshot rules the core, the CLI and the Snapshots tab share: names, the tree, the words of
// the confirmations, and what a new snapshot can be for a given definition and state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkSnapshotName, deleteConsequence, revertConsequence, snapshotTreeRows } from '../../core/common/snapshots.ts';
import type { SnapshotInfo, SnapshotList } from '../../core/common/snapshots.ts';
import { parseDefinition } from '../../core/common/definition.ts';
import { MODEL_VERSION } from '../../core/common/model.ts';
import { snapshotAbilities } from '../../core/node/snapshots/snapshot-ops.ts';
import { emptySnapshotFile } from '../../core/node/snapshots/snapshot-store.ts';
import { HangarError } from '../../core/common/errors.ts';

const snap = (name: string, parent: string | null, extra: Partial<SnapshotInfo> = {}): SnapshotInfo => ({
  id: `id-${name}`, name, description: '', createdAt: `2026-12-05T10:0${name.length}:00Z`, parent, kind: 'external', memory: false, vmState: 'stopped', disks: [], ...extra,
});
const can = { internal: { available: true }, memory: { available: true }, external: { available: true } };

test('snapshot names: letters, digits and . _ - +, not only digits, at most 64', () => {
  for (const ok of ['before-upgrade', 'v2.1', 'a', 'A_b+c']) assert.equal(checkSnapshotName(ok), ok);
  for (const [bad, why] of [['', /needs a name/], ['a b', /may only hold/], ['../x', /may only hold/], ['-x', /may only hold/], ['123', /only digits/], ['x'.repeat(65), /longer than 64/]] as const) {
    assert.throws(() => checkSnapshotName(bad), (e: unknown) => e instanceof HangarError && e.code === 'invalid-input' && why.test(e.message) && Boolean(e.hint));
  }
});

test('the tree: parents before children, depth by ancestry, an unknown parent shown as a root', () => {
  const at = (m: number): string => `2026-12-05T10:0${m}:00Z`;
  const list = { snapshots: [snap('c', 'id-bb', { createdAt: at(3) }), snap('a', null, { createdAt: at(1) }), snap('bb', 'id-a', { createdAt: at(2) }), snap('orphan', 'id-gone', { createdAt: at(4) }), snap('a2', 'id-a', { createdAt: at(5) })] };
  assert.deepEqual(snapshotTreeRows(list).map((r) => `${r.depth}:${r.snapshot.name}`), ['0:a', '1:bb', '2:c', '1:a2', '0:orphan']);
});

test('confirmations say what a revert loses and what a delete merges where', () => {
  const a = snap('a', null);
  const b = snap('b', 'id-a');
  const list: SnapshotList = { snapshots: [a, b], current: 'id-b', problems: [], can };
  assert.match(revertConsequence(list, a, 'running'), /^Everything the guest did since "a" .* is lost; the VM is turned off and left stopped/);
  assert.match(revertConsequence(list, { ...b, kind: 'internal', memory: true, vmState: 'paused' }, 'stopped'), /the VM then runs from the moment the snapshot was taken \(paused\)/);
  assert.match(deleteConsequence(list, a), /merged into snapshot "b" \(block-commit\)/);
  assert.match(deleteConsequence(list, b), /merged into the current state/);
  const branched: SnapshotList = { ...list, current: 'id-a' };
  assert.match(deleteConsequence(branched, a), /copied into each of snapshot "b", the current state \(block-stream\)/);
  assert.match(deleteConsequence(list, { ...a, kind: 'internal', disks: [{ diskId: 'disk0', file: '/x', format: 'qcow2' }, { diskId: 'disk1', file: '/y', format: 'qcow2' }] }), /removed from its 2 disks/);
});

test('what a new snapshot can be: raw disks, qemu-storage-daemon disks, passthrough, shared folders and the shared clipboard, mixing kinds', () => {
  const base = { version: MODEL_VERSION, id: '4b20d080-1b54-4048-85b3-a6a62d165c01', name: 'v' };
  const def = (extra: Record<string, unknown>) => parseDefinition({ ...base, ...extra });
  const q = { id: 'disk0', file: '/d/a.qcow2', format: 'qcow2' };
  let c = snapshotAbilities(def({ disks: [q] }), 'stopped', emptySnapshotFile());
  assert.equal(c.internal.available, true);
  assert.equal(c.memory.available, false);
  assert.match(c.memory.reason!, /not running/);
  c = snapshotAbilities(def({ disks: [q, { id: 'disk1', file: '/d/b.raw', format: 'raw' }] }), 'running', emptySnapshotFile());
  assert.match(c.internal.reason!, /disk disk1 \(\/d\/b\.raw\) is raw/);
  assert.equal(c.external.available, true);
  c = snapshotAbilities(def({ disks: [{ ...q, bus: 'vhost-user-blk' }] }), 'stopped', emptySnapshotFile());
  assert.match(c.external.reason!, /qemu-storage-daemon/);
  c = snapshotAbilities(def({ disks: [q], hostPci: [{ id: 'hostpci0', address: '0000:01:00.0' }] }), 'running', emptySnapshotFile());
  assert.match(c.memory.reason!, /passthrough devices \(VFIO\)/);
  assert.equal(c.internal.available, true, 'disk only still works');
  c = snapshotAbilities(def({ disks: [q], shares: [{ id: 'fs0', source: '/srv', tag: 'data' }] }), 'running', emptySnapshotFile());
  assert.match(c.memory.reason!, /shares folders \(fs0\)/);
  // The shared clipboard's qemu-vdagent channel blocks QEMU's migration stream before QEMU 10.1.
  const clip = def({ disks: [q], video: { model: 'vga', display: 'vnc', clipboard: true } });
  c = snapshotAbilities(clip, 'running', emptySnapshotFile(), { major: 7, minor: 2 });
  assert.match(c.memory.reason!, /shared clipboard .* cannot be saved by QEMU 7\.2: turn the clipboard off .*hangar device edit v video video0 clipboard=off/);
  assert.equal(c.internal.available, true, 'disk only still works');
  assert.equal(snapshotAbilities(clip, 'running', emptySnapshotFile(), { major: 10, minor: 1 }).memory.available, true);
  assert.equal(snapshotAbilities(def({ disks: [q], video: { model: 'vga', display: 'vnc', clipboard: false } }), 'running', emptySnapshotFile(), { major: 7, minor: 2 }).memory.available, true);
  const withExternal = { ...emptySnapshotFile(), snapshots: [{ ...snap('e', null), definition: {} }] };
  c = snapshotAbilities(def({ disks: [q] }), 'stopped', withExternal as never);
  assert.match(c.internal.reason!, /has external snapshots/);
  c = snapshotAbilities(def({ disks: [] }), 'stopped', emptySnapshotFile());
  assert.match(c.external.reason!, /no writable disk/);
});
