// Definitions between libvirt and Hangar on the real libvirtd: a domain written as plain XML is
// imported (disks in place or copied) and boots under Hangar; a Hangar VM is exported, defined
// with virsh and boots under libvirt (seen through `hangar --connect qemu:///system console`).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { ensureTestGuest, READY_MARKER, GUEST_CMDLINE } from '../guest/guest.ts';
import { HangarHarness, sleep } from '../helpers/hangar.ts';
import { ensureLibvirtd, libvirtGuestFiles, removeDomains, testPrefix, virsh } from '../helpers/libvirtd.ts';

const prefix = testPrefix('io');
let h: HangarHarness;
let files: Awaited<ReturnType<typeof libvirtGuestFiles>>;
let dir = '';
let disk = '';

function domainXml(name: string): string {
  return `<domain type='qemu'>
  <name>${name}</name>
  <title>Imported from plain XML</title>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>${files.kernel}</kernel><initrd>${files.initrd}</initrd><cmdline>${GUEST_CMDLINE}</cmdline></os>
  <features><acpi/></features>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk>
    <interface type='user'><mac address='52:54:00:12:34:56'/><model type='virtio'/></interface>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <graphics type='spice' autoport='yes'/>
    <video><model type='qxl'/></video>
  </devices>
</domain>
`;
}

before(async () => {
  await ensureLibvirtd();
  files = await libvirtGuestFiles(await ensureTestGuest());
  dir = await mkdtemp('/var/tmp/hangar-io-');
  chmodSync(dir, 0o755);
  disk = join(dir, 'data.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '64M']);
  chmodSync(disk, 0o666);
  await writeFile(join(dir, 'dom.xml'), domainXml(`${prefix}web`));
  await virsh(['define', join(dir, 'dom.xml')]);
  h = new HangarHarness();
});

after(async () => {
  await removeDomains(prefix).catch(() => {});
  await h?.cleanup();
  await files?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Imported { vm: { id: string; name: string; dir: string; definition: { disks: Array<{ file: string; owned: boolean }>; nics: Array<{ mac: string }> } }; notCarried: string[]; notes: string[] }

describe('libvirt import and export', () => {
  test('a shut-off domain imports with its disk in place, lists what it left, and boots', async () => {
    const r = await h.json<Imported>(['import', '--from-libvirt', 'qemu:///system', `${prefix}web`]);
    assert.equal(r.vm.name, `${prefix}web`);
    assert.deepEqual(r.vm.definition.disks.map((d) => [d.file, d.owned]), [[disk, false]]);
    assert.deepEqual(r.vm.definition.nics.map((n) => n.mac), ['52:54:00:12:34:56']);
    assert.ok(r.notCarried.some((n) => /SPICE/i.test(n)), `SPICE is named: ${r.notCarried.join(' | ')}`);
    assert.ok(r.notes.some((n) => /never both at once/.test(n)));
    await h.ok(['edit', r.vm.name, '--accel', 'tcg']);
    await h.ok(['start', r.vm.name]);
    await h.waitForSerial(r.vm.id, READY_MARKER);
    const out = await h.consoleCommand(r.vm.name, 'cat /sys/block/vda/size');
    assert.match(out, /^131072\r?$/m, '64 MiB = 131072 sectors: the domain\'s disk');
    await h.ok(['destroy', r.vm.name]);
    // The same domain again: the id (the domain's UUID) is taken.
    const again = await h.run(['import', '--from-libvirt', 'qemu:///system', `${prefix}web`]);
    assert.equal(again.code, 2, again.stderr);
    assert.match(again.stderr, /already exists/);
  });

  test('--copy-disks copies into the VM folder; a running domain is refused', async () => {
    await h.ok(['delete', `${prefix}web`]);
    const r = await h.json<Imported>(['import', '--from-libvirt', 'qemu:///system', `${prefix}web`, '--copy-disks', '--name', 'copied']);
    assert.equal(r.vm.definition.disks.length, 1);
    assert.ok(r.vm.definition.disks[0]!.file.startsWith(r.vm.dir), r.vm.definition.disks[0]!.file);
    assert.equal(r.vm.definition.disks[0]!.owned, true);
    await virsh(['start', `${prefix}web`]);
    try {
      const busy = await h.run(['import', '--from-libvirt', 'qemu:///system', `${prefix}web`, '--name', 'second']);
      assert.equal(busy.code, 1);
      assert.match(busy.stderr, /is running: importing it now would give its disks two writers/);
      assert.match(busy.stderr, /virsh -c qemu:\/\/\/system shutdown/);
    } finally {
      await virsh(['destroy', `${prefix}web`]);
    }
    const remote = await h.run(['import', '--from-libvirt', 'qemu+ssh://root@elsewhere/system', 'x']);
    assert.match(remote.stderr, /another host \(elsewhere\) is not supported/);
  });

  test('an exported Hangar VM defines on libvirtd and boots there', async () => {
    const name = `${prefix}out`;
    await h.ok(['create', '--name', name, '--memory', '256', '--accel', 'tcg', '--kernel', files.kernel, '--initrd', files.initrd, '--append', GUEST_CMDLINE]);
    const xml = await h.ok(['export', name, '--libvirt-xml']);
    assert.match(xml, /^<domain type=["']qemu["']/);
    await writeFile(join(dir, 'out.xml'), xml);
    await virsh(['define', join(dir, 'out.xml')]);
    await h.ok(['--connect', 'qemu:///system', 'start', name]);
    // The guest's shell answers through virsh console: it booted under libvirt.
    let answer = '';
    for (let i = 0; i < 20 && !/^libvirt-out-9\r?$/m.test(answer); i++) {
      await sleep(2000);
      answer = (await h.run(['--connect', 'qemu:///system', 'console', name, '--grace', '2'], { input: 'echo libvirt-out-$((3*3))\n', inputDelayMs: 800 })).stdout;
    }
    assert.match(answer, /^libvirt-out-9\r?$/m);
    await h.ok(['--connect', 'qemu:///system', 'destroy', name]);
  });

  test('create on the libvirt connection from Hangar\'s model: a new disk in libvirt\'s image folder, boots, deletes', async () => {
    const name = `${prefix}made`;
    const created = await h.json<{ name: string; state: string; startNotes?: string[] }>(['--connect', 'qemu:///system', 'create', '--name', name, '--memory', '256', '--accel', 'tcg',
      '--kernel', files.kernel, '--initrd', files.initrd, '--append', GUEST_CMDLINE, '--new-disk', '32M']);
    assert.deepEqual([created.name, created.state], [name, 'stopped']);
    const xml = await virsh(['dumpxml', name]);
    const image = `/var/lib/libvirt/images/${name}-disk0.qcow2`;
    assert.match(xml, new RegExp(`<source file=['"]${image}['"]`));
    // Same name again: refused before anything is written (the image is not overwritten).
    const again = await h.run(['--connect', 'qemu:///system', 'create', '--name', name, '--memory', '256', '--accel', 'tcg', '--kernel', files.kernel, '--new-disk', '32M']);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /already exists/);
    await h.ok(['--connect', 'qemu:///system', 'start', name]);
    let answer = '';
    for (let i = 0; i < 20 && !/^65536\r?$/m.test(answer); i++) {
      await sleep(2000);
      answer = (await h.run(['--connect', 'qemu:///system', 'console', name, '--grace', '2'], { input: 'cat /sys/block/vda/size\n', inputDelayMs: 800 })).stdout;
    }
    assert.match(answer, /^65536\r?$/m, '32 MiB = 65536 sectors: the new disk');
    await h.ok(['--connect', 'qemu:///system', 'destroy', name]);
    await h.ok(['--connect', 'qemu:///system', 'delete', name, '--delete-disks']);
    assert.equal(await stat(image).then(() => true, () => false), false, 'the new disk is removed with --delete-disks');
  });
});
