// Snapshots with the real core, qemu-img/qemu-io and the real test guest under TCG (issue 14).
// Each disk state k is a signature: region 0 holds pattern k, regions 1..k hold patterns 1..k and
// region k+1 is still empty; qemu-io's `read -P` checks it byte for byte. Chains of snapshots are
// built, the middle and first ones deleted and reverted to, and after every step every remaining
// snapshot is reverted to and must show exactly its state, with `qemu-img check` clean.
// The guest's own view is checked too: a RAM snapshot brings back a shell variable, a running
// process and the disk as the guest saw it; live external snapshots are merged while it writes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import { HangarHarness } from '../helpers/hangar.ts';
import { REGION, hasState, imageCheck, qemuIo, st } from '../helpers/disk-state.ts';
import type { DiskState } from '../helpers/disk-state.ts';

let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;

before(async () => {
  guest = await ensureTestGuest();
  h = new HangarHarness();
});

after(async () => {
  await h?.cleanup();
});

interface Shown { id: string; dir: string; state: string; definition: { disks: Array<{ id: string; file: string; format: string }> } }
interface Listed {
  current: string | null; problems: string[];
  snapshots: Array<{ id: string; name: string; parent: string | null; kind: string; memory: boolean; vmStateBytes?: number; problem?: string; disks: Array<{ file: string }> }>;
}
const show = (name: string): Promise<Shown> => h.json<Shown>(['show', name]);
const list = (name: string): Promise<Listed> => h.json<Listed>(['snapshot', 'list', name]);

/** Writes pattern k into region 0 and region k (from the host, VM stopped). */
function writeState(file: string, format: string, k: number): void {
  const r = qemuIo(file, format, [`write -P ${k} 0 ${REGION}`, `write -P ${k} ${k * REGION} ${REGION}`]);
  assert.ok(r.ok, r.out);
}

async function createVm(name: string, disks: string[], extra: Record<string, unknown> = {}): Promise<Shown> {
  const file = join(h.home, `${name}.json`);
  writeFileSync(file, JSON.stringify({ memoryMiB: 192, accel: 'tcg', shutdownTimeoutSec: 30, boot: { kernel: { kernel: guest.kernel, initrd: guest.initrd, append: GUEST_CMDLINE } }, ...extra }));
  await h.ok(['create', '--name', name, '--file', file, ...disks.flatMap((d) => ['--new-disk', d])]);
  return show(name);
}

/** Reverts to every snapshot in `expect` (name -> state) and checks each disk shows it; qemu-img check on every file. */
async function verifyAll(vm: string, expect: Record<string, DiskState>): Promise<void> {
  for (const [snap, want] of Object.entries(expect)) {
    await h.ok(['snapshot', 'revert', vm, snap]);
    const def = (await show(vm)).definition;
    for (const d of def.disks) {
      const bad = hasState(d.file, d.format, want);
      assert.equal(bad, null, `after revert to ${snap}: ${bad}`);
    }
  }
  const l = await list(vm);
  assert.deepEqual(l.problems, [], 'no problems reported');
  for (const s of l.snapshots) for (const d of s.disks) imageCheck(d.file);
  for (const d of (await show(vm)).definition.disks) imageCheck(d.file);
}

async function chain(vm: string, external: boolean): Promise<void> {
  const def = (await show(vm)).definition;
  const parents: Record<string, string | null> = {};
  for (let k = 1; k <= 3; k++) {
    for (const d of (await show(vm)).definition.disks) writeState(d.file, d.format, k);
    const out = await h.ok(['snapshot', 'create', vm, `s${k}`, ...(external ? ['--external'] : [])]);
    assert.match(out, new RegExp(`snapshot "s${k}" of VM "${vm}" taken \\(${external ? 'external' : 'internal'}, disk only\\)`));
  }
  // The current state moves on past s3.
  for (const d of (await show(vm)).definition.disks) writeState(d.file, d.format, 4);
  let l = await list(vm);
  for (const s of l.snapshots) parents[s.name] = s.parent === null ? null : l.snapshots.find((x) => x.id === s.parent)!.name;
  assert.deepEqual(parents, { s1: null, s2: 's1', s3: 's2' });
  assert.equal(l.snapshots.find((s) => s.id === l.current)?.name, 's3');
  if (external) {
    assert.ok((await show(vm)).definition.disks.every((d, i) => d.file !== def.disks[i]!.file && d.format === 'qcow2'), 'the disks write to overlays now');
  }
  await verifyAll(vm, { s1: st(1, 1), s2: st(2, 1, 2), s3: st(3, 1, 2, 3) });

  // Delete the middle one: s3 keeps its data (and now descends from s1).
  const del = await h.ok(['snapshot', 'delete', vm, 's2']);
  assert.match(del, external ? /merged into snapshot "s3"/ : /removed from its 2 disks/);
  l = await list(vm);
  assert.equal(l.snapshots.find((s) => s.name === 's3')!.parent, l.snapshots.find((s) => s.name === 's1')!.id);
  await verifyAll(vm, { s3: st(3, 1, 2, 3), s1: st(1, 1) });

  // Revert to the first (done by verifyAll's last step), write on that branch, delete the first.
  for (const d of (await show(vm)).definition.disks) writeState(d.file, d.format, 5);
  await h.ok(['snapshot', 'delete', vm, 's1']);
  l = await list(vm);
  assert.deepEqual(l.snapshots.map((s) => s.name), ['s3']);
  // The current state (state 5 on s1's branch) kept its data through the merge.
  for (const d of (await show(vm)).definition.disks) assert.equal(hasState(d.file, d.format, st(5, 1, 5)), null, 'the current state survives deleting its snapshot');
  await verifyAll(vm, { s3: st(3, 1, 2, 3) });
  await h.ok(['snapshot', 'delete', vm, 's3']);
  for (const d of (await show(vm)).definition.disks) {
    assert.equal(hasState(d.file, d.format, st(3, 1, 2, 3)), null, 'the state of the last revert stays after its snapshot is deleted');
    imageCheck(d.file);
  }
}

describe('snapshots of a stopped VM', { timeout: 600_000 }, () => {
  test('internal, across two qcow2 disks: delete the middle, revert to the first, delete the first; every remaining snapshot reverts to exactly its data', async () => {
    await createVm('snap-int', ['64M', '32M']);
    await chain('snap-int', false);
  });

  test('external overlays over a raw and a qcow2 disk: the same chain, merged by commit and stream; no file left behind', async () => {
    const vm = await createVm('snap-ext', ['64M,format=raw', '32M']);
    await chain('snap-ext', true);
    // Only the files the definition names are left in the VM folder.
    const named = new Set((await show('snap-ext')).definition.disks.map((d) => d.file));
    const images = readdirSync(vm.dir).filter((f) => /\.(qcow2|raw|img)$/.test(f)).map((f) => join(vm.dir, f));
    assert.deepEqual(images.filter((f) => !named.has(f)), [], 'no overlay left behind');
  });

  test('refusals name the problem and the fix before anything is done; records survive a core restart; a mismatch with the disks is reported, never fixed', async () => {
    const vm = await createVm('snap-bad', ['16M,format=raw']);
    let r = await h.run(['snapshot', 'create', 'snap-bad', 'x']);
    // Default kind for a raw disk: external. Asking for internal (memory) names the raw disk.
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /external, disk only/);
    r = await h.run(['snapshot', 'create', 'snap-bad', 'x']);
    assert.equal(r.code, 2, 'a taken name is refused as invalid input');
    assert.match(r.stderr, /already has a snapshot "x"/);
    for (const bad of ['a b', '../x', '123', '']) {
      r = await h.run(['snapshot', 'create', 'snap-bad', bad]);
      assert.equal(r.code, 2, `${JSON.stringify(bad)}: ${r.stderr}`);
      assert.match(r.stderr, /snapshot (name|needs)/);
    }
    r = await h.run(['snapshot', 'revert', 'snap-bad', 'nope']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /has no snapshot "nope"[\s\S]*its snapshots: x/);
    await h.ok(['snapshot', 'delete', 'snap-bad', 'x']);
    assert.deepEqual((await show('snap-bad')).definition.disks.map((d) => d.format), ['raw'], 'back on the raw disk');

    // Internal snapshots need qcow2: refused with the disk named.
    await createVm('snap-mix', ['16M', '16M,format=raw']);
    const refused = await h.json<{ can: { internal: { available: boolean; reason?: string } } }>(['snapshot', 'list', 'snap-mix']);
    assert.equal(refused.can.internal.available, false);
    assert.match(refused.can.internal.reason ?? '', /disk1 .* is raw: internal snapshots live inside qcow2 files/);

    // Records survive a core restart; a snapshot removed behind Hangar's back is reported, and revert refused.
    const int = await createVm('snap-rec', ['16M', '16M']);
    await h.ok(['snapshot', 'create', 'snap-rec', 'keep', '--description', 'kept across restarts']);
    await h.ok(['snapshot', 'create', 'snap-rec', 'gone']);
    // A stopped VM shows no screen: the snapshot keeps none, and asking for it says why.
    r = await h.run(['snapshot', 'screenshot', 'snap-rec', 'keep', join(h.home, 'keep.png')]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /snapshot "keep" of VM "snap-rec" has no screenshot[\s\S]*taken while the VM runs with a display/);
    await h.ok(['daemon', 'stop']);
    let l = await list('snap-rec');
    assert.deepEqual(l.snapshots.map((s) => s.name), ['keep', 'gone']);
    const disk1 = int.definition.disks[1]!.file;
    assert.equal(spawnSync('qemu-img', ['snapshot', '-d', 'gone', disk1]).status, 0);
    spawnSync('qemu-img', ['snapshot', '-c', 'stranger', disk1]);
    l = await list('snap-rec');
    assert.match(l.snapshots.find((s) => s.name === 'gone')!.problem ?? '', new RegExp(`disk disk1 \\(${disk1.replace(/[.]/g, '\\.')}\\) does not hold it`));
    assert.ok(l.problems.some((p) => /holds an internal snapshot "stranger" that Hangar has no record of/.test(p)), l.problems.join('\n'));
    r = await h.run(['snapshot', 'revert', 'snap-rec', 'gone']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot be reverted to: disk disk1/);
    // Still recorded, still reported: nothing was silently fixed.
    assert.equal(spawnSync('qemu-img', ['snapshot', '-l', disk1], { encoding: 'utf8' }).stdout.includes('stranger'), true);
    // Deleting the damaged one removes what is left of it (disk0's half).
    await h.ok(['snapshot', 'delete', 'snap-rec', 'gone']);
    assert.equal(spawnSync('qemu-img', ['snapshot', '-l', int.definition.disks[0]!.file], { encoding: 'utf8' }).stdout.includes('gone'), false);
    void vm;
  });
});

describe('snapshots of a running guest', { timeout: 900_000 }, () => {
  test('internal with RAM: a revert brings back a shell variable, a running process and the disk as the guest saw it', async () => {
    const vm = await createVm('snap-mem', ['32M']);
    await h.ok(['start', 'snap-mem']);
    await h.waitForSerial(vm.id, READY_MARKER, 1, 180_000);
    let out = await h.consoleCommand('snap-mem', 'X=kept-$((6*7)); sleep 100000 & echo "PID=$!"; printf AAAA | dd of=/dev/vda bs=512 seek=8 conv=fsync 2>/dev/null; echo WROTE-A', 4);
    const pid = /PID=(\d+)/.exec(out)?.[1];
    assert.ok(pid, out);
    assert.match(out, /WROTE-A/);
    const made = await h.ok(['snapshot', 'create', 'snap-mem', 'with-ram', '--description', 'before the change']);
    assert.match(made, /taken \(internal, with RAM\)/);
    const s = (await list('snap-mem')).snapshots[0]!;
    assert.equal(s.memory, true);
    assert.ok((s.vmStateBytes ?? 0) > 1024 * 1024, `RAM state saved (${s.vmStateBytes} bytes)`);
    assert.equal((await show('snap-mem')).state, 'running', 'the guest runs on after the save');
    out = await h.consoleCommand('snap-mem', `X=changed; kill ${pid}; printf BBBB | dd of=/dev/vda bs=512 seek=8 conv=fsync 2>/dev/null; echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda bs=512 skip=8 count=1 2>/dev/null | head -c 4; echo`, 4);
    assert.match(out, /^BBBB$/m);
    const rev = await h.ok(['snapshot', 'revert', 'snap-mem', 'with-ram']);
    assert.match(rev, /is lost; the VM then runs from the moment the snapshot was taken/);
    assert.match(rev, /reverted to snapshot "with-ram"; it is running/);
    out = await h.consoleCommand('snap-mem', `echo "X=$X"; kill -0 ${pid} && echo ALIVE; echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda bs=512 skip=8 count=1 2>/dev/null | head -c 4; echo`, 4);
    assert.match(out, /X=kept-42/);
    assert.match(out, /ALIVE/);
    assert.match(out, /^AAAA$/m, 'the disk is back as the guest saw it');

    // A disk-only internal snapshot of the running guest: reverting turns the VM off, disks as they were.
    await h.ok(['snapshot', 'create', 'snap-mem', 'disk-only', '--disk-only']);
    await h.consoleCommand('snap-mem', 'printf CCCC | dd of=/dev/vda bs=512 seek=8 conv=fsync 2>/dev/null; echo ok', 3);
    const r2 = await h.ok(['snapshot', 'revert', 'snap-mem', 'disk-only']);
    assert.match(r2, /turned off and left stopped/);
    const after2 = await show('snap-mem');
    assert.equal(after2.state, 'stopped');
    const sector = spawnSync('qemu-io', ['-f', 'qcow2', '-c', 'read -v 4096 4', after2.definition.disks[0]!.file], { encoding: 'utf8' }).stdout;
    assert.match(sector, /41 41 41 41/, `the disk holds AAAA again:\n${sector}`);
    // Back to the RAM snapshot from a stopped VM: it starts from the saved moment.
    await h.ok(['snapshot', 'revert', 'snap-mem', 'with-ram']);
    assert.equal((await show('snap-mem')).state, 'running');
    out = await h.consoleCommand('snap-mem', `echo "X=$X"; kill -0 ${pid} && echo ALIVE`, 4);
    assert.match(out, /X=kept-42/);
    assert.match(out, /ALIVE/);
    await h.ok(['destroy', 'snap-mem']);
  });

  test('external overlays taken live while the guest writes; the middle and the last merged live (block-commit), the guest writes on; every state intact', async () => {
    const vm = await createVm('snap-live', ['32M']);
    await h.ok(['start', 'snap-live']);
    await h.waitForSerial(vm.id, READY_MARKER, 1, 180_000);
    // State k from inside the guest: region 0 and region k filled with byte k.
    const guestState = async (k: number): Promise<void> => {
      const fill = `head -c ${REGION} /dev/zero | tr '\\000' '\\00${k}'`;
      const out = await h.consoleCommand('snap-live', `${fill} | dd of=/dev/vda bs=${REGION} seek=0 conv=fsync 2>/dev/null; ${fill} | dd of=/dev/vda bs=${REGION} seek=${k} conv=fsync 2>/dev/null; echo STATE-$((${k}*11))`, 4);
      assert.match(out, new RegExp(`STATE-${k * 11}`));
    };
    for (let k = 1; k <= 3; k++) {
      await guestState(k);
      await h.ok(['snapshot', 'create', 'snap-live', `l${k}`, '--external']);
    }
    await guestState(4);
    // l2's file is in the middle of QEMU's chain (block-commit of l3's into it); l3's has the active overlay on it (active commit + pivot).
    await h.ok(['snapshot', 'delete', 'snap-live', 'l2']);
    await h.ok(['snapshot', 'delete', 'snap-live', 'l3']);
    assert.equal((await show('snap-live')).state, 'running');
    await guestState(5);
    await h.ok(['destroy', 'snap-live']);
    const top = (await show('snap-live')).definition.disks[0]!;
    assert.equal(hasState(top.file, top.format, st(5, 1, 2, 3, 4, 5)), null);
    imageCheck(top.file);
    await verifyAll('snap-live', { l1: st(1, 1) });
    // Deleting the VM with its disks takes the snapshot files and records too: nothing is left.
    await h.ok(['delete', 'snap-live', '--delete-disks']);
    assert.equal(existsSync(vm.dir), false, `${vm.dir} is gone`);
  });
});
