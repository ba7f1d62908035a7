// Network boot end to end: a diskless VM whose virtio-net NIC carries QEMU's iPXE ROM (efi-virtio.rom, PXE + EFI) gets
// boot.ipxe from QEMU's user-mode DHCP/TFTP, and the script fetches the test guest's kernel and
// initrd over TFTP from 10.0.2.2 and boots them.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import { HangarHarness } from '../helpers/hangar.ts';

let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;

before(async () => {
  guest = await ensureTestGuest();
  h = new HangarHarness();
});

after(async () => {
  await h?.cleanup();
});

test('--pxe with --nic user,tftp=DIR,bootfile=boot.ipxe: iPXE loads the kernel and initrd over TFTP', { timeout: 300_000 }, async () => {
  const tftp = join(h.home, 'tftp');
  mkdirSync(tftp);
  copyFileSync(guest.kernel, join(tftp, 'vmlinuz'));
  copyFileSync(guest.initrd, join(tftp, 'initrd.img'));
  writeFileSync(join(tftp, 'boot.ipxe'), `#!ipxe\nkernel tftp://10.0.2.2/vmlinuz ${GUEST_CMDLINE}\ninitrd tftp://10.0.2.2/initrd.img\nboot\n`);
  const info = await h.json<{ id: string }>(['create', '--name', 'netboot', '--memory', '256', '--accel', 'tcg', '--pxe',
    '--nic', `user,model=virtio-net,tftp=${tftp},bootfile=boot.ipxe`]);
  const shown = await h.json<{ definition: { boot: { order: string[] }; nics: Array<{ network: { tftp?: string; bootfile?: string } }> } }>(['show', 'netboot']);
  assert.equal(shown.definition.boot.order[0], 'network');
  assert.deepEqual([shown.definition.nics[0]!.network.tftp, shown.definition.nics[0]!.network.bootfile], [tftp, 'boot.ipxe']);
  const cmdline = await h.ok(['cmdline', 'netboot']);
  // QEMU's default ROM: an explicit pxe-virtio.rom never ran under SeaBIOS (its PCI id is not patched).
  assert.doesNotMatch(cmdline, /romfile/);
  assert.match(cmdline, /"tftp":"[^"]*tftp","bootfile":"boot\.ipxe"/);

  const t0 = Date.now();
  await h.ok(['start', 'netboot']);
  await h.waitForSerial(info.id, READY_MARKER, 1, 240_000);
  const seconds = ((Date.now() - t0) / 1000).toFixed(1);
  process.stdout.write(`# network boot to ${READY_MARKER}: ${seconds} s\n`);
  const out = await h.consoleCommand('netboot', 'cat /proc/cmdline');
  assert.match(out, /console=ttyS0/);
  await h.ok(['destroy', 'netboot']);
});

test('--pxe refuses --kernel, and bad --nic tftp options name the fix', async () => {
  const r = await h.run(['create', '--name', 'x', '--pxe', '--kernel', guest.kernel]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /--pxe and --kernel/);
  const r2 = await h.run(['create', '--name', 'x', '--nic', 'user,tftpdir=/tmp']);
  assert.notEqual(r2.code, 0);
  assert.match(r2.stderr, /unknown option "tftpdir"[\s\S]*tftp/);
});
