// Managed save with the real core, QEMU's migration stream and the real test guest (issue 14):
// `hangar save` writes the RAM and device state to the VM's folder and ends QEMU; the VM is
// `saved` across a core restart; `hangar start` restores it (a shell variable and a background
// process come back) and only then deletes the file; a paused guest comes back paused; a damaged
// state file keeps the VM saved with the reason and the explicit "discard and boot" choice;
// what a saved VM must not do (change its hardware or disks) is refused; devices whose state
// cannot be saved are named before anything is done.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import { HangarHarness, sleep } from '../helpers/hangar.ts';

let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;

before(async () => {
  guest = await ensureTestGuest();
  h = new HangarHarness();
});

after(async () => {
  await h?.cleanup();
});

async function boot(name: string, extra: Record<string, unknown> = {}): Promise<{ id: string; dir: string }> {
  const file = join(h.home, `${name}.json`);
  writeFileSync(file, JSON.stringify({ memoryMiB: 160, accel: 'tcg', boot: { kernel: { kernel: guest.kernel, initrd: guest.initrd, append: GUEST_CMDLINE } }, ...extra }));
  const vm = await h.json<{ id: string; dir: string }>(['create', '--name', name, '--file', file, '--new-disk', '16M']);
  await h.ok(['start', name]);
  await h.waitForSerial(vm.id, READY_MARKER, 1, 180_000);
  return vm;
}

describe('managed save', { timeout: 900_000 }, () => {
  test('save + core restart + start: the guest\'s shell variable and background process come back; the state file goes only after the restore', async () => {
    const vm = await boot('sv-a');
    let out = await h.consoleCommand('sv-a', 'Y=kept-$((6*7)); sleep 100000 & echo "BG=$!"', 4);
    const bg = /BG=(\d+)/.exec(out)?.[1];
    assert.ok(bg, out);
    const saved = await h.ok(['save', 'sv-a']);
    assert.match(saved, /VM "sv-a" saved: its RAM and device state are in .*`hangar start sv-a` restores it/);
    const file = join(vm.dir, 'saved-state.bin');
    assert.ok(statSync(file).size > 8 * 1024 * 1024, 'the state holds the guest RAM');
    const info = await h.json<{ state: string; reason?: string; pid?: number }>(['show', 'sv-a']);
    assert.equal(info.state, 'saved');
    assert.equal(info.pid, undefined, 'no QEMU runs');
    // A core restart changes nothing.
    await h.ok(['daemon', 'stop']);
    await sleep(300);
    assert.equal(await h.state('sv-a'), 'saved');
    // What would make the state unusable is refused while it is saved.
    for (const args of [['edit', 'sv-a', '--memory', '256'], ['device', 'add', 'sv-a', 'disk', 'size=8M'], ['snapshot', 'create', 'sv-a', 's1']]) {
      const r = await h.run(args);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, /it is saved/, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /--discard-saved/);
    }
    await h.ok(['start', 'sv-a']);
    assert.equal(await h.state('sv-a'), 'running');
    assert.equal(existsSync(file), false, 'deleted once restored');
    out = await h.consoleCommand('sv-a', `echo "Y=$Y"; kill -0 ${bg} && echo BG-ALIVE`, 4);
    assert.match(out, /Y=kept-42/);
    assert.match(out, /BG-ALIVE/);
    // Saved while paused: restored paused.
    await h.ok(['pause', 'sv-a']);
    await h.ok(['save', 'sv-a']);
    await h.ok(['start', 'sv-a']);
    assert.equal(await h.state('sv-a'), 'paused');
    await h.ok(['resume', 'sv-a']);
    out = await h.consoleCommand('sv-a', 'echo "Y=$Y"', 3);
    assert.match(out, /Y=kept-42/);
    // Deleting a saved VM takes its state file along.
    await h.ok(['save', 'sv-a']);
    await h.ok(['delete', 'sv-a', '--delete-disks']);
    assert.equal(existsSync(vm.dir), false);
  });

  test('a damaged state file keeps the VM saved with the reason; --discard-saved boots afresh; unsaveable devices are named first', async () => {
    const vm = await boot('sv-b');
    await h.consoleCommand('sv-b', 'Z=from-before', 2);
    await h.ok(['save', 'sv-b']);
    const file = join(vm.dir, 'saved-state.bin');
    truncateSync(file, Math.floor(statSync(file).size / 2));
    const r = await h.run(['start', 'sv-b']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /could not be restored from its saved state/);
    assert.match(r.stderr, /fix: `hangar start sv-b --discard-saved` discards the saved state and boots afresh/);
    const info = await h.json<{ state: string; reason?: string }>(['show', 'sv-b']);
    assert.equal(info.state, 'saved');
    assert.match(info.reason ?? '', /restoring the saved state failed/);
    assert.ok(existsSync(file), 'the file is kept for another try');
    await h.ok(['start', 'sv-b', '--discard-saved']);
    await h.waitForSerial(vm.id, READY_MARKER, 2, 180_000);
    const out = await h.consoleCommand('sv-b', 'echo "Z=[$Z]"', 3);
    assert.match(out, /Z=\[\]/, 'a fresh boot');
    assert.equal(existsSync(file), false);
    await h.ok(['destroy', 'sv-b']);

    // A host USB device cannot be saved: refused before anything is done, the VM runs on.
    await boot('sv-usb', { hostUsb: [{ id: 'usbhost0', vendorId: '1d6b', productId: 'ffff' }] });
    const s = await h.run(['save', 'sv-usb']);
    assert.equal(s.code, 1);
    assert.match(s.stderr, /cannot save VM "sv-usb": it has host USB devices, whose state cannot be saved/);
    assert.equal(await h.state('sv-usb'), 'running');
    await h.ok(['destroy', 'sv-usb']);

    // The shared clipboard (qemu-vdagent) blocks QEMU's migration stream before QEMU 10.1: save and
    // snapshots with memory say so first, with the fix; later QEMUs save it.
    await boot('sv-clip', { video: { model: 'vga', display: 'vnc', clipboard: true } });
    const v = /version (\d+)\.(\d+)/.exec(spawnSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).stdout)!;
    const blocks = Number(v[1]) < 10 || (Number(v[1]) === 10 && Number(v[2]) < 1);
    const c = await h.run(['save', 'sv-clip']);
    if (blocks) {
      assert.equal(c.code, 1, c.stderr);
      assert.match(c.stderr, /cannot save VM "sv-clip": its shared clipboard \(QEMU's qemu-vdagent channel\) cannot be saved by QEMU \d+\.\d+: turn the clipboard off .*hangar device edit sv-clip video video0 clipboard=off/);
      assert.equal(await h.state('sv-clip'), 'running');
      const l = await h.json<{ can: { memory: { available: boolean; reason?: string }; internal: { available: boolean } } }>(['snapshot', 'list', 'sv-clip']);
      assert.equal(l.can.memory.available, false);
      assert.match(l.can.memory.reason ?? '', /shared clipboard/);
      assert.equal(l.can.internal.available, true, 'a disk-only snapshot is still possible');
      const m = await h.run(['snapshot', 'create', 'sv-clip', 'with-ram']);
      assert.equal(m.code, 1);
      assert.match(m.stderr, /cannot take a snapshot with memory of VM "sv-clip": the VM's shared clipboard/);
      await h.ok(['destroy', 'sv-clip']);
    } else {
      assert.equal(c.code, 0, c.stderr);
      assert.equal(await h.state('sv-clip'), 'saved');
      await h.ok(['start', 'sv-clip', '--discard-saved']);
      await h.ok(['destroy', 'sv-clip']);
    }
  });
});
