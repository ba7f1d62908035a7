// Hotplug with the real test guest under TCG: a virtio-blk disk and a virtio-net NIC plugged into
// a running q35 guest (which sees them and uses them), then unplugged (the guest lets go and
// QEMU releases the image); a change that cannot be made live stays pending, shows as such, and
// is there after the next boot; an unplug the guest does not answer in time completes later;
// a CD-ROM medium is swapped live; the balloon target is set.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureTestGuest, GUEST_CMDLINE, parsePciBlock, PCI_END, READY_MARKER } from '../guest/guest.ts';
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

interface Change { applied: string; id: string; note?: string; info: { pending?: Array<{ kind: string; id: string; change: string }> } }

async function boot(name: string, extra: Record<string, unknown>): Promise<{ id: string; dir: string }> {
  const file = join(h.home, `${name}.json`);
  writeFileSync(file, JSON.stringify({ memoryMiB: 256, accel: 'tcg', boot: { kernel: { kernel: guest.kernel, initrd: guest.initrd, append: GUEST_CMDLINE } }, ...extra }));
  const info = await h.json<{ id: string; dir: string }>(['create', '--name', name, '--file', file]);
  await h.ok(['start', name]);
  await h.waitForSerial(info.id, READY_MARKER, 1, 120_000);
  await h.waitForSerial(info.id, PCI_END);
  return info;
}

/** Runs a guest command until its output passes (hotplug takes the guest a moment under TCG). */
async function untilGuest(name: string, command: string, want: RegExp | ((out: string) => boolean), what: string, timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  const ok = typeof want === 'function' ? want : (o: string): boolean => want.test(o);
  let out = '';
  while (Date.now() < deadline) {
    out = await h.consoleCommand(name, command, 3);
    if (ok(out)) return out;
    await sleep(1000);
  }
  assert.fail(`${what}: not seen for "${command}" within ${timeoutMs} ms; last output:\n${out}`);
}

/** True when some process (QEMU) holds the image's write lock. */
function imageLocked(file: string): boolean {
  const r = spawnSync('qemu-img', ['info', file], { encoding: 'utf8' });
  return r.status !== 0 && /lock/i.test(r.stderr);
}

describe('hotplug into running guests', { timeout: 900_000 }, () => {
  test('a virtio-blk disk and a virtio-net NIC are plugged in, used by the guest, and unplugged', async () => {
    const vm = await boot('hot', { nics: [] });
    // 64 MiB = 131072 sectors: the guest tells the new disk apart by its size.
    const disk = await h.json<Change>(['device', 'add', 'hot', 'disk', 'size=64M,bus=virtio-blk']);
    assert.equal(disk.applied, 'now', `disk add: ${disk.note}`);
    assert.deepEqual(disk.info.pending, [], 'nothing pending after a hotplug');
    const image = join(vm.dir, `${disk.id}.qcow2`);
    assert.ok(imageLocked(image), 'QEMU holds the hotplugged image');
    const find = 'for b in /sys/block/vd*; do echo "$b $(cat $b/size)"; done';
    const seen = await untilGuest('hot', find, /\/sys\/block\/(vd[a-z]) 131072/, 'the hotplugged disk');
    const dev = /\/sys\/block\/(vd[a-z]) 131072/.exec(seen)![1]!;
    const data = await h.consoleCommand('hot', `echo HANGAR-HOTPLUG-DATA | dd of=/dev/${dev} bs=512 seek=8 conv=notrunc 2>/dev/null; sync; echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/${dev} bs=512 skip=8 count=1 2>/dev/null | head -c 19; echo`, 4);
    assert.match(data, /^HANGAR-HOTPLUG-DATA\s*$/m, 'the guest reads back what it wrote to the hotplugged disk');
    // A live external snapshot puts the disk on an overlay: the unplug below must let go of both files.
    await h.ok(['snapshot', 'create', 'hot', 'before-unplug', '--external']);
    const overlay = (await h.json<{ definition: { disks: Array<{ id: string; file: string }> } }>(['show', 'hot'])).definition.disks.find((d) => d.id === disk.id)!.file;
    assert.notEqual(overlay, image, 'the disk writes to an overlay');
    assert.ok(imageLocked(overlay), 'QEMU holds the overlay');

    const nic = await h.json<Change>(['device', 'add', 'hot', 'nic', 'user,model=virtio-net']);
    assert.equal(nic.applied, 'now', `nic add: ${nic.note}`);
    const shown = await h.json<{ definition: { nics: Array<{ id: string; mac: string }> } }>(['show', 'hot']);
    const mac = shown.definition.nics.find((n) => n.id === nic.id)!.mac;
    await untilGuest('hot', 'cat /sys/class/net/eth*/address', new RegExp(mac), 'the hotplugged NIC');
    const pci = parsePciBlock(await h.consoleCommand('hot', 'hangar-lspci', 4));
    // In a PCIe root port virtio devices are modern-only: virtio-net is 1af4:1041.
    assert.ok(pci.some((p) => p.vendor === '1af4' && p.device === '1041' && p.driver === 'virtio-pci'), 'virtio-net 1af4:1041 in the guest PCI list, driver bound');

    const rmNic = await h.json<Change>(['device', 'remove', 'hot', 'nic', nic.id]);
    assert.equal(rmNic.applied, 'now', `nic remove: ${rmNic.note}`);
    await untilGuest('hot', 'cat /sys/class/net/*/address', (o) => !o.includes(mac), 'the NIC gone from the guest');
    // A restarted core still knows the disk sits in a hotplug slot (hardware.json in the runtime dir).
    await h.ok(['daemon', 'stop']);
    const rmDisk = await h.json<Change>(['device', 'remove', 'hot', 'disk', disk.id]);
    assert.equal(rmDisk.applied, 'now', `disk remove: ${rmDisk.note}`);
    await untilGuest('hot', 'ls /sys/block', (o) => !new RegExp(`\\b${dev}\\b`).test(o), 'the disk gone from the guest');
    assert.ok(!imageLocked(image), 'QEMU let go of the image after the unplug');
    assert.ok(!imageLocked(overlay), 'QEMU let go of the snapshot overlay after the unplug');
    const after = await h.json<{ definition: { disks: unknown[]; nics: unknown[] }; pending: unknown[] }>(['show', 'hot']);
    assert.equal(after.definition.disks.length, 0, 'the definition has no disk left');
    assert.equal(after.definition.nics.length, 0);
    assert.deepEqual(after.pending, []);
    // The slots are free again: a second hotplug works.
    const again = await h.json<Change>(['device', 'add', 'hot', 'disk', 'size=32M,bus=virtio-blk']);
    assert.equal(again.applied, 'now');
    await h.ok(['destroy', 'hot']);
  });

  test('changes that cannot be made live are pending, shown, and there after the next boot', async () => {
    const bootImage = join(h.home, 'pend-boot.raw');
    writeFileSync(bootImage, Buffer.alloc(8 * 1024 * 1024));
    const vm = await boot('pend', { disks: [{ id: 'disk0', file: bootImage, format: 'raw' }] });
    const sound = await h.json<Change>(['device', 'add', 'pend', 'sound', 'hda']);
    assert.equal(sound.applied, 'next-boot');
    assert.match(sound.note ?? '', /applies at next boot/);
    // The boot disk sits on q35's root bus: it cannot leave a running guest.
    const shown0 = await h.json<{ definition: { disks: Array<{ id: string }> } }>(['show', 'pend']);
    const bootDisk = shown0.definition.disks[0]!.id;
    const rm = await h.json<Change>(['device', 'remove', 'pend', 'disk', bootDisk]);
    assert.equal(rm.applied, 'next-boot');
    assert.match(rm.note ?? '', /pcie\.0/);
    const cache = await h.json<Change>(['device', 'add', 'pend', 'rng']);
    assert.equal(cache.applied, 'next-boot');
    const pending = (await h.json<{ pending: Array<{ kind: string; id: string; change: string }> }>(['show', 'pend'])).pending;
    assert.deepEqual(pending.map((p) => `${p.change} ${p.kind} ${p.id}`).sort(), [`add rng rng0`, `add sound sound0`, `remove disk ${bootDisk}`].sort());
    const list = await h.ok(['device', 'list', 'pend']);
    assert.match(list, /PENDING/);
    assert.match(list, new RegExp(`disk\\s+${bootDisk}\\s+.*remove`));
    assert.match(list, /PENDING changes apply at the next start/);
    // The running guest still has what it started with.
    const before = parsePciBlock(await h.consoleCommand('pend', 'hangar-lspci', 4));
    assert.ok(!before.some((p) => p.vendor === '8086' && p.device === '293e'), 'no HDA controller before the restart');
    // A reboot from Hangar with changes pending restarts QEMU (shutdown + start) to apply them.
    await h.ok(['reboot', 'pend'], { timeoutMs: 180_000 });
    await h.waitForSerial(vm.id, READY_MARKER, 2, 120_000);
    await h.waitForSerial(vm.id, PCI_END, 2);
    const pci = parsePciBlock(h.serialLog(vm.id));
    assert.ok(pci.some((p) => p.vendor === '8086' && p.device === '293e'), 'the ICH9 HDA controller is there after the next boot');
    assert.ok(pci.some((p) => p.vendor === '1af4' && (p.device === '1005' || p.device === '1044')), 'virtio-rng is there after the next boot');
    assert.ok(!pci.some((p) => p.vendor === '1af4' && (p.device === '1001' || p.device === '1042')), 'the removed virtio-blk disk is gone');
    assert.deepEqual((await h.json<{ pending: unknown[] }>(['show', 'pend'])).pending, []);
    await h.ok(['destroy', 'pend']);
  });

  test('an unplug the guest does not answer in time completes when it does', async () => {
    await boot('late', { nics: [] });
    const disk = await h.json<Change>(['device', 'add', 'late', 'disk', 'size=16M']);
    assert.equal(disk.applied, 'now');
    await untilGuest('late', 'cat /sys/block/vd*/size', /^32768\s*$/m, 'the hotplugged disk');
    // With its CPUs stopped the guest cannot take the eject request.
    await h.ok(['pause', 'late']);
    const rm = await h.json<Change>(['device', 'remove', 'late', 'disk', disk.id, '--timeout', '2']);
    assert.equal(rm.applied, 'next-boot');
    assert.match(rm.note ?? '', /did not release it within 2 s/);
    assert.deepEqual(rm.info.pending?.map((p) => `${p.change} ${p.id}`), [`remove ${disk.id}`]);
    await h.ok(['resume', 'late']);
    const deadline = Date.now() + 60_000;
    let pending: unknown[] = ['?'];
    while (Date.now() < deadline && pending.length) {
      pending = (await h.json<{ pending: unknown[] }>(['show', 'late'])).pending;
      await sleep(500);
    }
    assert.deepEqual(pending, [], 'once resumed, the guest released the disk and nothing is pending');
    await untilGuest('late', 'cat /sys/block/vd*/size', (o) => !/^32768\s*$/m.test(o), 'the disk gone from the guest');
    await h.ok(['destroy', 'late']);
  });

  test('the pc machine: a disk present at boot is unplugged (ACPI on pci.0) and a NIC plugged in', async () => {
    const image = join(h.home, 'pc-boot.raw');
    writeFileSync(image, Buffer.alloc(12 * 1024 * 1024));
    await boot('pchot', { machine: 'pc', nics: [], disks: [{ id: 'disk0', file: image, format: 'raw' }] });
    await untilGuest('pchot', 'cat /sys/block/vd*/size', /^24576\s*$/m, 'the boot-time disk');
    const rm = await h.json<Change>(['device', 'remove', 'pchot', 'disk', 'disk0']);
    assert.equal(rm.applied, 'now', `remove: ${rm.note}`);
    await untilGuest('pchot', 'cat /sys/block/vd*/size', (o) => !/^24576\s*$/m.test(o), 'the disk gone from the guest');
    assert.ok(!imageLocked(image), 'QEMU let go of the image');
    const nic = await h.json<Change>(['device', 'add', 'pchot', 'nic', 'isolated,network=hotlab,model=e1000']);
    assert.equal(nic.applied, 'now', `nic add: ${nic.note}`);
    const pci = await untilGuest('pchot', 'hangar-lspci', (o) => parsePciBlock(o).some((p) => p.vendor === '8086' && p.device === '100e'), 'the e1000 in the guest PCI list');
    assert.ok(parsePciBlock(pci).some((p) => p.vendor === '8086' && p.device === '100e' && p.driver === 'e1000'), 'the e1000 driver bound');
    await h.ok(['destroy', 'pchot']);
  });

  test('a CD-ROM medium is swapped in a running guest; the balloon target is set', async () => {
    await boot('media', { cdroms: [{ id: 'cd0', bus: 'sata' }], balloon: {} });
    // The ISO9660 primary volume descriptor (sector 16) starts with "\x01CD001": the medium is readable.
    const pvd = 'echo "pvd=[$(dd if=/dev/sr0 bs=2048 skip=16 count=1 2>/dev/null | head -c 6 | tail -c 5)]"';
    assert.match(await h.consoleCommand('media', pvd, 3), /^pvd=\[\]\s*$/m, 'the drive starts empty');
    const ins = await h.json<Change>(['device', 'edit', 'media', 'cdrom', 'cd0', guest.iso]);
    assert.equal(ins.applied, 'now', `medium change: ${ins.note}`);
    await untilGuest('media', pvd, /^pvd=\[CD001\]\s*$/m, 'the inserted medium');
    const ej = await h.json<Change>(['device', 'edit', 'media', 'cdrom', 'cd0', 'file=']);
    assert.equal(ej.applied, 'now', `eject: ${ej.note}`);
    await untilGuest('media', pvd, /^pvd=\[\]\s*$/m, 'the drive empty again');
    const b = await h.json<{ targetMiB: number; actualMiB: number }>(['device', 'balloon', 'media', '200M']);
    assert.equal(b.targetMiB, 200);
    const deadline = Date.now() + 30_000;
    let actual = b.actualMiB;
    // The guest gives memory back over seconds; `show` follows it (BALLOON_CHANGE events).
    while (Date.now() < deadline && actual > 200) {
      await sleep(1000);
      actual = (await h.json<{ balloon: { actualMiB: number; targetMiB: number } }>(['show', 'media'])).balloon.actualMiB;
    }
    assert.equal(actual, 200, 'the guest gave memory back down to the target');
    assert.equal((await h.json<{ balloon: { targetMiB: number } }>(['show', 'media'])).balloon.targetMiB, 200);
    // The host's view of committed memory names the balloon too.
    const mem = await h.json<{ committed: { vms: Array<{ name: string; memoryMiB: number; balloon?: { targetMiB: number; actualMiB: number; freePageReporting: boolean } }> } }>(['host', 'memory']);
    assert.deepEqual(mem.committed.vms.find((v) => v.name === 'media'), { name: 'media', memoryMiB: 256, merge: true, balloon: { targetMiB: 200, actualMiB: 200, freePageReporting: false } });
    assert.match(await h.ok(['host', 'memory']), /media 256 MiB, balloon 200 of 200 MiB target/);
    const tooBig = await h.run(['device', 'balloon', 'media', '1G']);
    assert.notEqual(tooBig.code, 0);
    assert.match(tooBig.stderr, /more than the VM's 256 MiB/);
    await h.ok(['destroy', 'media']);
  });
});
