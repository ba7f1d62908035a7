// Clones with the real core, qemu-img and the real test guest under TCG (issue 14): a full clone
// and a linked clone boot side by side with their own UUIDs and MACs; the linked clone's disks are
// overlays on the source's images, which it never writes, and the source cannot start or be
// deleted while it exists; a cancelled clone leaves nothing; disks used in place are copied or
// shared only when asked; a paused VM can be cloned; the UEFI variables come along.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectCore } from '../../core/node/rpc/client.ts';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import { HangarHarness } from '../helpers/hangar.ts';
import { qemuIo } from '../helpers/disk-state.ts';

let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;

before(async () => {
  guest = await ensureTestGuest();
  h = new HangarHarness();
});

after(async () => {
  await h?.cleanup();
});

interface Shown { id: string; dir: string; state: string; pid?: number; definition: { linkedTo?: string; firmware: string; disks: Array<{ id: string; file: string; format: string; owned: boolean }>; nics: Array<{ mac: string }> } }
const show = (name: string): Promise<Shown> => h.json<Shown>(['show', name]);

function backingOf(file: string): string | undefined {
  const j = JSON.parse(spawnSync('qemu-img', ['info', '-U', '--output=json', file], { encoding: 'utf8' }).stdout) as { 'backing-filename'?: string };
  return j['backing-filename'];
}

async function createVm(name: string, extra: Record<string, unknown>, args: string[] = []): Promise<Shown> {
  const file = join(h.home, `${name}.json`);
  writeFileSync(file, JSON.stringify({ memoryMiB: 160, accel: 'tcg', boot: { kernel: { kernel: guest.kernel, initrd: guest.initrd, append: GUEST_CMDLINE } }, ...extra }));
  await h.ok(['create', '--name', name, '--file', file, ...args]);
  return show(name);
}

const cmdline = (pid: number): string => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');

describe('clones', { timeout: 900_000 }, () => {
  test('full and linked clones boot side by side with new UUIDs and MACs; the linked one never writes the source, which is protected', async () => {
    const src = await createVm('clone-src', { nics: [{ id: 'net0', network: { type: 'user' } }] }, ['--new-disk', '32M', '--new-disk', '16M,format=raw']);
    for (const d of src.definition.disks) assert.ok(qemuIo(d.file, d.format, ['write -P 0x61 1M 1M']).ok);
    const full = await h.ok(['clone', 'clone-src', 'clone-full']);
    assert.match(full, /Cloned VM "clone-src" as "clone-full"/);
    const linkedOut = await h.ok(['clone', 'clone-src', 'clone-linked', '--linked']);
    assert.match(linkedOut, /linked: "clone-src" is protected/);
    const f = await show('clone-full');
    const l = await show('clone-linked');
    assert.notEqual(f.id, src.id);
    assert.notEqual(l.id, src.id);
    assert.notEqual(f.definition.nics[0]!.mac, src.definition.nics[0]!.mac);
    assert.notEqual(l.definition.nics[0]!.mac, f.definition.nics[0]!.mac);
    for (const [i, d] of f.definition.disks.entries()) {
      assert.ok(d.file.startsWith(f.dir + '/') && d.owned, `full clone owns its copy ${d.file}`);
      assert.equal(d.format, src.definition.disks[i]!.format);
      assert.ok(qemuIo(d.file, d.format, ['read -P 0x61 1M 1M']).ok, 'the copy holds the data');
      assert.equal(backingOf(d.file), undefined, 'a full copy stands alone');
    }
    assert.equal(l.definition.linkedTo, src.id);
    for (const [i, d] of l.definition.disks.entries()) {
      assert.equal(d.format, 'qcow2');
      assert.equal(backingOf(d.file), src.definition.disks[i]!.file, 'an overlay on the source image');
    }

    // Side by side.
    await h.ok(['start', 'clone-full']);
    await h.ok(['start', 'clone-linked']);
    await h.waitForSerial(f.id, READY_MARKER, 1, 180_000);
    await h.waitForSerial(l.id, READY_MARKER, 1, 180_000);
    const fr = await show('clone-full');
    const lr = await show('clone-linked');
    assert.match(cmdline(fr.pid!), new RegExp(`-uuid ${f.id}`));
    assert.match(cmdline(lr.pid!), new RegExp(`-uuid ${l.id}`));
    assert.match(cmdline(lr.pid!), new RegExp(l.definition.nics[0]!.mac));
    // The linked clone writes its overlay only.
    const out = await h.consoleCommand('clone-linked', 'head -c 1048576 /dev/zero | tr "\\000" "z" | dd of=/dev/vda bs=1048576 seek=1 conv=fsync 2>/dev/null; echo LINKED-$((3*3))', 5);
    assert.match(out, /LINKED-9/);
    await h.ok(['destroy', 'clone-linked']);
    assert.ok(qemuIo(l.definition.disks[0]!.file, 'qcow2', ['read -P 0x7a 1M 1M']).ok, 'the clone sees its write');
    assert.ok(qemuIo(src.definition.disks[0]!.file, 'qcow2', ['read -P 0x61 1M 1M']).ok, 'the source image is untouched');

    // The source is protected while the linked clone exists.
    for (const args of [['start', 'clone-src'], ['delete', 'clone-src', '--delete-disks'], ['snapshot', 'create', 'clone-src', 's1'], ['device', 'resize', 'clone-src', 'disk0', '64M']]) {
      const r = await h.run(args);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /linked clone "clone-linked" reads through its disk images[\s\S]*fix: delete the linked clone first/);
    }
    assert.ok(existsSync(src.definition.disks[0]!.file));
    // Once the linked clone is gone, the source is free again.
    await h.ok(['delete', 'clone-linked', '--delete-disks']);
    assert.equal(existsSync(l.dir), false, 'the linked clone left nothing');
    await h.ok(['start', 'clone-src']);
    await h.ok(['destroy', 'clone-src']);

    // A paused VM can be cloned (its disks are quiescent; read shared).
    await h.ok(['pause', 'clone-full']);
    await h.ok(['clone', 'clone-full', 'clone-of-paused']);
    assert.equal(await h.state('clone-full'), 'paused', 'still paused');
    const p = await show('clone-of-paused');
    assert.ok(qemuIo(p.definition.disks[0]!.file, 'qcow2', ['read -P 0x61 1M 1M']).ok);
    const notStopped = await h.run(['clone', 'clone-full', 'x-linked', '--linked']);
    assert.equal(notStopped.code, 1);
    assert.match(notStopped.stderr, /a linked clone needs VM "clone-full" stopped \(it is paused\)/);
    await h.ok(['destroy', 'clone-full']);
  });

  test('a cancelled clone leaves nothing; in-place disks are copied or shared only when asked; UEFI variables come along; bad names refused', async () => {
    const big = await createVm('clone-big', {}, ['--new-disk', '1G']);
    // Enough data that the copy takes a while.
    assert.ok(qemuIo(big.definition.disks[0]!.file, 'qcow2', ['write -P 0x5a 0 768M']).ok);
    const before = readdirSync(join(h.home, 'vms')).sort();
    process.env.HANGAR_HOME = h.home;
    const progress: number[] = [];
    let cancelled = false;
    const conn = await connectCore({
      autostart: false,
      events: {
        createProgress: (e) => {
          if (e.requestId !== 'cancel-me') return;
          progress.push(e.fraction);
          if (!cancelled && e.fraction > 0) { cancelled = true; void conn.api.cancelCreate('cancel-me'); }
        },
      },
    });
    try {
      await assert.rejects(conn.api.clone('clone-big', { name: 'clone-cancelled', requestId: 'cancel-me' }), (e: Error & { code?: string }) => e.code === 'cancelled');
    } finally {
      conn.close();
    }
    assert.ok(progress.length > 0, 'progress was reported');
    assert.deepEqual(readdirSync(join(h.home, 'vms')).sort(), before, 'no folder, no staging left');
    assert.equal((await h.run(['show', 'clone-cancelled'])).code, 1);

    // A disk used in place (not the VM's own).
    const inPlace = join(h.home, 'shared.qcow2');
    spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', inPlace, '16M']);
    await createVm('clone-inplace', { firmware: 'uefi' }, ['--disk', inPlace]);
    let r = await h.run(['clone', 'clone-inplace', 'c1']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /is not VM "clone-inplace"'s own[\s\S]*fix: say which: --copy-unowned .* --share-unowned/);
    r = await h.run(['clone', 'clone-inplace', 'c1', '--share-unowned']);
    assert.equal(r.code, 2, 'two VMs writing one image are refused by the one validation');
    assert.match(r.stderr, /already used read-write by VM "clone-inplace"/);
    await h.ok(['clone', 'clone-inplace', 'c1', '--copy-unowned']);
    const c1 = await show('c1');
    assert.ok(c1.definition.disks[0]!.file.startsWith(c1.dir) && c1.definition.disks[0]!.owned);
    assert.equal(c1.definition.firmware, 'uefi');
    assert.ok(existsSync(join((await show('clone-inplace')).dir, 'uefi-vars.fd')), 'the source has its own UEFI variables');
    assert.deepEqual(readFileSync(join(c1.dir, 'uefi-vars.fd')), readFileSync(join((await show('clone-inplace')).dir, 'uefi-vars.fd')), 'copied to the clone');
    for (const bad of ['c1', 'a/b', '']) {
      r = await h.run(['clone', 'clone-inplace', bad, '--copy-unowned']);
      assert.equal(r.code, 2, `${JSON.stringify(bad)}: ${r.stderr}`);
    }
  });
});
