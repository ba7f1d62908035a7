// Device kinds as the real test guest sees them under TCG: each device's PCI vendor:device ID in
// the guest's own PCI listing, the driver bound where the guest kernel has one, and what the
// guest can do with it (the RNG it reads, the USB HID devices it enumerates, a watchdog that
// powers the VM off when the guest stops petting it).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureTestGuest, GUEST_CMDLINE, parsePciBlock, PCI_END, READY_MARKER } from '../guest/guest.ts';
import type { PciDevice } from '../guest/guest.ts';
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

/** Creates a VM from a definition file (kernel boot of the test guest), starts it, returns its PCI list. */
async function boot(name: string, extra: Record<string, unknown>): Promise<{ id: string; dir: string; pci: PciDevice[] }> {
  const file = join(h.home, `${name}.json`);
  writeFileSync(file, JSON.stringify({ memoryMiB: 256, accel: 'tcg', boot: { kernel: { kernel: guest.kernel, initrd: guest.initrd, append: GUEST_CMDLINE } }, ...extra }));
  const info = await h.json<{ id: string; dir: string }>(['create', '--name', name, '--file', file]);
  await h.ok(['start', name]);
  await h.waitForSerial(info.id, READY_MARKER, 1, 120_000);
  await h.waitForSerial(info.id, PCI_END);
  return { ...info, pci: parsePciBlock(h.serialLog(info.id)) };
}

function find(pci: PciDevice[], id: string): PciDevice {
  const [vendor, device] = id.split(':');
  const d = pci.find((p) => p.vendor === vendor && p.device === device);
  assert.ok(d, `${id} not in the guest's PCI list:\n${pci.map((p) => `${p.addr} ${p.vendor}:${p.device} ${p.driver ?? '-'}`).join('\n')}`);
  return d;
}

/** Raw images of distinct sizes, so the guest can tell its disks apart by size alone. */
function rawDisk(name: string, mib: number): string {
  const file = join(h.home, `${name}.raw`);
  writeFileSync(file, Buffer.alloc(mib * 1024 * 1024));
  return file;
}

/** In the guest: find the disk of `sectors` 512-byte sectors, write `marker` at sector 1, read it back. */
function writeReadScript(sectors: number, marker: string): string {
  return `d=; for b in /sys/block/*; do [ "$(cat $b/size)" = ${sectors} ] && d=\${b##*/}; done; echo "dev=$d"; `
    + `echo ${marker} | dd of=/dev/$d bs=512 seek=1 conv=notrunc 2>/dev/null; sync; echo 3 > /proc/sys/vm/drop_caches; `
    + `dd if=/dev/$d bs=512 skip=1 count=1 2>/dev/null | head -c ${marker.length}; echo`;
}

/** qemu-storage-daemon processes whose command line names the image. */
function qsdPids(image: string): number[] {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map(Number).filter((pid) => {
    try {
      const a = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      return /(^|\/)qemu-storage-daemon$/.test(a[0] ?? '') && a.some((x) => x.includes(image));
    } catch { return false; }
  });
}

async function waitFor(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(100);
  }
}

function markerInImage(file: string, marker: string): boolean {
  return readFileSync(file).subarray(512, 512 + marker.length).toString() === marker;
}

describe('device kinds in the guest', () => {
  test('data through AHCI, virtio-blk (native AIO, I/O thread, discard) and virtio-scsi (io_uring) lands in the images', { timeout: 240_000 }, async () => {
    const disks = { sata: rawDisk('d-sata', 1), virtio: rawDisk('d-virtio', 2), scsi: rawDisk('d-scsi', 3) };
    await boot('blkq35', {
      machine: 'q35',
      disks: [
        { id: 'dsata', file: disks.sata, format: 'raw', bus: 'sata' },
        { id: 'dvirtio', file: disks.virtio, format: 'raw', bus: 'virtio-blk', cache: 'none', aio: 'native', iothread: true, discard: true },
        { id: 'dscsi', file: disks.scsi, format: 'raw', bus: 'scsi', aio: 'io_uring' },
      ],
    });
    for (const [bus, mib] of [['sata', 1], ['virtio', 2], ['scsi', 3]] as const) {
      const marker = `HANGAR-DATA-${bus}`;
      const out = await h.consoleCommand('blkq35', writeReadScript(mib * 2048, marker), 4);
      assert.match(out, bus === 'virtio' ? /dev=vd[a-z]/ : /dev=sd[a-z]/, `${bus}: the guest found the disk:\n${out}`);
      assert.match(out, new RegExp(`^${marker}\\s*$`, 'm'), `${bus}: read back in the guest:\n${out}`);
    }
    await h.ok(['destroy', 'blkq35']);
    for (const [bus, file] of Object.entries(disks)) assert.ok(markerInImage(file, `HANGAR-DATA-${bus}`), `${bus}: the data is in ${file}`);
  });

  test('vhost-user-blk: a supervised qemu-storage-daemon serves the disk, data lands in the image; the daemon is gone after a stop and after SIGKILL of QEMU', { timeout: 300_000 }, async () => {
    const img = rawDisk('d-vu', 4);
    const vm = await boot('vublk', { machine: 'q35', disks: [{ id: 'dvu', file: img, format: 'raw', bus: 'vhost-user-blk' }] });
    const daemons = qsdPids(img);
    assert.equal(daemons.length, 1, 'one qemu-storage-daemon serves the disk');
    const cmd = (await h.ok(['cmdline', 'vublk'])).replace(/\\\n\s*/g, ' ');
    assert.match(cmd, /memory-backend-memfd.*"share":true/, 'guest memory is shared with the daemon');
    find(vm.pci, '1af4:1001'); // virtio-blk as the guest sees it: the daemon is invisible
    const out = await h.consoleCommand('vublk', writeReadScript(4 * 2048, 'HANGAR-DATA-vhost-user'), 4);
    assert.match(out, /dev=vd[a-z]/, out);
    assert.match(out, /^HANGAR-DATA-vhost-user\s*$/m, out);
    await h.ok(['destroy', 'vublk']);
    assert.ok(markerInImage(img, 'HANGAR-DATA-vhost-user'), 'the data is in the image');
    await waitFor(() => qsdPids(img).length === 0, 'the daemon stopped with the VM');

    await h.ok(['start', 'vublk']);
    await h.waitForSerial(vm.id, READY_MARKER, 2, 120_000);
    assert.equal(qsdPids(img).length, 1);
    const pid = (await h.json<{ pid: number }>(['show', 'vublk'])).pid;
    process.kill(pid, 'SIGKILL');
    await h.waitForState('vublk', 'crashed', 30_000);
    await waitFor(() => qsdPids(img).length === 0, 'the daemon stopped after QEMU was killed');
  });

  test('disk resize: offline with qemu-img, online with block_resize (the guest sees it at once); never shrinks; device list shows the modes', { timeout: 240_000 }, async () => {
    const info = await h.json<{ id: string; definition: { disks: Array<{ file: string }> } }>(['create', '--name', 'grow', '--memory', '256', '--accel', 'tcg',
      '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE, '--new-disk', '64M', '--nic', 'user,model=e1000']);
    const file = info.definition.disks[0]!.file;
    const size = (): number => (JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', file], { encoding: 'utf8' })) as { 'virtual-size': number })['virtual-size'];
    assert.match(await h.ok(['device', 'resize', 'grow', 'disk0', '128M']), /64\.0 MiB -> 128\.0 MiB$/m);
    assert.equal(size(), 128 * 1024 * 1024);
    const shrink = await h.run(['device', 'resize', 'grow', 'disk0', '100M']);
    assert.notEqual(shrink.code, 0);
    assert.match(shrink.stderr, /shrink it and cut off the end of its data/);
    const none = await h.run(['device', 'resize', 'grow', 'disk9', '1G']);
    assert.match(none.stderr, /has no disk "disk9"[\s\S]*disk0/);
    const list = await h.ok(['device', 'list', 'grow']);
    assert.match(list, /^disk +disk0 +virtio-blk +Paravirtual /m);
    assert.match(list, /^nic +net0 +e1000 +Emulated /m);

    await h.ok(['start', 'grow']);
    await h.waitForSerial(info.id, READY_MARKER, 1, 120_000);
    assert.match(await h.consoleCommand('grow', 'cat /sys/block/vda/size', 3), /^262144\s*$/m);
    assert.match(await h.ok(['device', 'resize', 'grow', 'disk0', '256M']), /online: the guest sees the new size now/);
    assert.match(await h.consoleCommand('grow', 'cat /sys/block/vda/size', 3), /^524288\s*$/m, 'the running guest sees 256 MiB');
    assert.equal(size(), 256 * 1024 * 1024);
    await h.ok(['destroy', 'grow']);
  });

  test('data through IDE (pc, PIIX) lands in the image', { timeout: 240_000 }, async () => {
    const ide = rawDisk('d-ide', 1);
    await boot('blkpc', { machine: 'pc', disks: [{ id: 'dide', file: ide, format: 'raw', bus: 'ide' }] });
    const out = await h.consoleCommand('blkpc', writeReadScript(2048, 'HANGAR-DATA-ide'), 4);
    assert.match(out, /^HANGAR-DATA-ide\s*$/m, out);
    await h.ok(['destroy', 'blkpc']);
    assert.ok(markerInImage(ide, 'HANGAR-DATA-ide'));
  });


  test('q35: virtio RNG, balloon, input and GPU, USB 3 with HID devices, ICH9 HD audio, i6300esb', { timeout: 240_000 }, async () => {
    const vm = await boot('devq35', {
      machine: 'q35',
      rng: {}, balloon: { freePageReporting: true },
      inputs: [{ id: 'tablet0', type: 'tablet', bus: 'usb' }, { id: 'kbd0', type: 'keyboard', bus: 'usb' }, { id: 'mouse0', type: 'mouse', bus: 'virtio' }],
      video: { model: 'virtio-gpu' }, sound: { model: 'hda' }, watchdog: { action: 'reset' },
    });
    // virtio devices on q35's root complex are transitional (legacy IDs 1af4:10xx) where one exists.
    for (const id of ['1af4:1005', '1af4:1002', '1af4:1052', '1af4:1050']) assert.equal(find(vm.pci, id).driver, 'virtio-pci', `${id} bound to virtio-pci`);
    assert.equal(find(vm.pci, '1b36:000d').driver, 'xhci_hcd', 'qemu-xhci driven by xhci_hcd');
    find(vm.pci, '8086:293e'); // ICH9 HD audio (the test guest carries no sound driver)
    assert.match(find(vm.pci, '8086:25ab').driver ?? '', /i6300/i, 'i6300esb driver bound');
    const rng = await h.consoleCommand('devq35', 'cat /sys/class/misc/hw_random/rng_available; head -c 16 /dev/hwrng | wc -c', 5);
    assert.match(rng, /virtio_rng/, rng);
    assert.match(rng, /^\s*16\s*$/m, 'the guest reads from the virtio RNG');
    const usb = await h.consoleCommand('devq35', 'cat /sys/bus/usb/devices/*/product', 5);
    assert.match(usb, /QEMU USB Tablet/);
    assert.match(usb, /QEMU USB Keyboard/);
    await h.ok(['destroy', 'devq35']);
  });

  test('pc: USB 2 (ICH9 EHCI + UHCI), QXL, AC97, virtio keyboard', { timeout: 240_000 }, async () => {
    const vm = await boot('devpc', {
      machine: 'pc', usb: { model: 'ich9-ehci' },
      inputs: [{ id: 'tablet0', type: 'tablet', bus: 'usb' }, { id: 'kbd0', type: 'keyboard', bus: 'virtio' }],
      video: { model: 'qxl' }, sound: { model: 'ac97' },
    });
    assert.equal(find(vm.pci, '8086:293a').driver, 'ehci-pci');
    assert.equal(find(vm.pci, '8086:2934').driver, 'uhci_hcd');
    find(vm.pci, '1b36:0100'); // QXL
    find(vm.pci, '8086:2415'); // AC97
    assert.equal(find(vm.pci, '1af4:1052').driver, 'virtio-pci');
    const usb = await h.consoleCommand('devpc', 'cat /sys/bus/usb/devices/*/product', 5);
    assert.match(usb, /QEMU USB Tablet/);
    await h.ok(['destroy', 'devpc']);
  });

  test('std VGA and bochs-display show up with their IDs', { timeout: 240_000 }, async () => {
    const vga = await boot('devvga', { machine: 'q35', video: { model: 'vga' } });
    assert.equal(find(vga.pci, '1234:1111').cls.slice(0, 4), '0300', 'a VGA-compatible display controller');
    await h.ok(['destroy', 'devvga']);
    const bochs = await boot('devbochs', { machine: 'q35', video: { model: 'bochs' } });
    assert.equal(find(bochs.pci, '1234:1111').cls.slice(0, 4), '0380', 'a display controller without VGA');
    await h.ok(['destroy', 'devbochs']);
  });

  test('virtio-9p shares a host folder both ways; a read-only share refuses writes; a missing folder is refused before start', { timeout: 240_000 }, async () => {
    const shared = join(h.home, 'shared, folder');
    const ro = join(h.home, 'readonly');
    mkdirSync(shared);
    mkdirSync(ro);
    writeFileSync(join(shared, 'from-host.txt'), 'hello from the host\n');
    writeFileSync(join(ro, 'ro.txt'), 'read me\n');
    await boot('share', {
      machine: 'q35',
      shares: [{ id: 'share0', source: shared, tag: 'hostshare' }, { id: 'share1', source: ro, tag: 'ro', readOnly: true }],
    });
    const out = await h.consoleCommand('share', 'mkdir -p /mnt/s /mnt/r; mount -t 9p -o trans=virtio,version=9p2000.L hostshare /mnt/s && '
      + 'mount -t 9p -o trans=virtio,version=9p2000.L ro /mnt/r && cat /mnt/s/from-host.txt /mnt/r/ro.txt; '
      + 'echo written by the guest > /mnt/s/from-guest.txt; sync; echo x > /mnt/r/nope.txt || echo RO-REFUSED', 5);
    assert.match(out, /hello from the host/, out);
    assert.match(out, /read me/, out);
    assert.match(out, /RO-REFUSED/, 'the read-only share refuses writes');
    assert.equal(readFileSync(join(shared, 'from-guest.txt'), 'utf8'), 'written by the guest\n', 'the guest wrote into the host folder');
    assert.ok(!existsSync(join(ro, 'nope.txt')));
    await h.ok(['destroy', 'share']);

    rmSync(ro, { recursive: true });
    const r = await h.run(['start', 'share']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /shared folder "share1" \(.*readonly\) does not exist/);
  });

  test('a watchdog the guest stops petting powers the VM off; the VM log says why', { timeout: 240_000 }, async () => {
    const vm = await boot('devwd', { machine: 'q35', watchdog: { action: 'poweroff' } });
    // Opening /dev/watchdog arms it; closing without the magic "V" leaves it running (30 s heartbeat).
    await h.consoleCommand('devwd', 'echo 1 > /dev/watchdog', 2);
    await h.waitForState('devwd', 'stopped', 120_000);
    assert.match(readFileSync(join(vm.dir, 'logs', 'hangar.log'), 'utf8'), /watchdog expired; action: poweroff/);
  });
});
