// The Devices tab's editing panels in Debian's Chromium against browser mode, with the real core,
// real qemu-img and real QEMU (TCG): on a stopped VM add a new 1 GiB virtio-blk disk (seen in the
// table and on disk), change its cache, remove it with its image; add a NIC with a port forward;
// vhost-net shown disabled with this host's reason (no /dev/vhost-net); bad input shows field
// errors and creates nothing; axe-core on the dialog; a disk image and a shared folder picked with
// the file chooser; on a running VM a disk is hotplugged (the guest sees it), an edit that QEMU
// cannot apply live is badged "applies at next boot", and "Restart now to apply" gives the VM a new
// QEMU that runs it; a balloon VM's guest memory target is set and the guest gets down to it; a
// raw disk on a full tmpfs pauses the guest, the list and Overview say "paused: disk full" with the
// disk, and Resume in the toolbar finishes the guest's write once space is back (faults case 6).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import type { HangarHarness } from '../helpers/hangar.ts';
import type { ServeProcess } from '../helpers/hangar.ts';
import { axeViolations, openUiSession, screenshot } from './browser.ts';
import type { UiSession } from './browser.ts';

const APPEND = 'console=ttyS0 quiet panic=-1';
const VM = 'dev-e2e';

let session: UiSession;
let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;
let serve: ServeProcess;
let page: Page;
let pageErrors: string[];
let shots: string[];

interface Shown {
  id: string; dir: string; state: string; pid?: number;
  definition: { disks: Array<{ id: string; file: string; cache: string; bus: string; owned?: boolean }>; nics: Array<{ id: string; model: string; network: { type: string; portForwards?: Array<{ hostPort: number; guestPort: number }> } }> };
  pending?: Array<{ kind: string; id: string; change: string }>;
}
const show = (name = VM): Promise<Shown> => h.json<Shown>(['show', name]);

/** The JSON objects (-device, -blockdev ...) of the command line a running QEMU really has. */
function qemuObjects(pid: number): Array<Record<string, unknown>> {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a.startsWith('{')).map((a) => JSON.parse(a) as Record<string, unknown>);
}

before(async () => {
  guest = await ensureTestGuest();
  session = await openUiSession({ width: 1280, height: 900 });
  ({ h, serve, page, pageErrors, shots } = session);
  await h.ok(['create', '--name', VM, '--memory', '256', '--accel', 'tcg', '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', APPEND]);
});

after(async () => {
  await session?.close();
});

async function shot(name: string): Promise<void> {
  shots.push(await screenshot(page, `devices-${name}`));
}

async function openDevices(name = VM): Promise<void> {
  await page.goto(`${serve.url}#/vm/${name}/devices`);
  await page.getByTestId('section-disk').waitFor();
}

const dialog = () => page.getByRole('dialog');
const diskRow = (id: string) => page.locator(`[data-testid="device-disk"][data-id="${id}"]`);
const status = () => page.getByTestId('device-status');

async function seriousViolations(): Promise<string[]> {
  return (await axeViolations(page)).filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.help} ${JSON.stringify(v.nodes)}`);
}

describe('Devices tab: editing a stopped VM', () => {
  test('add a new 1 GiB virtio-blk disk: the dialog passes axe, the row appears, the image exists', async () => {
    await openDevices();
    await shot('1-tab');
    await page.getByRole('button', { name: 'Add disk…' }).click();
    await dialog().getByTestId('editor-disk').waitFor();
    // Every bus with its mode badge and advice.
    const busText = await dialog().getByRole('group', { name: 'Bus' }).innerText();
    for (const m of ['Emulated', 'Paravirtual', 'vhost-user']) assert.match(busText, new RegExp(m));
    assert.ok(await dialog().getByTestId('disk-bus-virtio-blk').isChecked(), 'virtio-blk is the default');
    const violations = await seriousViolations();
    assert.deepEqual(violations, [], 'axe-core: no serious or critical violations in the disk dialog');
    await page.getByTestId('disk-size').fill('1');
    await shot('2-add-disk');
    await page.getByTestId('editor-save').click();
    await dialog().waitFor({ state: 'detached' });
    await status().filter({ hasText: /^\s*Saved\s*$/ }).waitFor();
    await diskRow('disk0').waitFor();
    assert.match(await diskRow('disk0').innerText(), /virtio-blk\s+Paravirtual/);
    const vm = await show();
    const disk = vm.definition.disks.find((d) => d.id === 'disk0')!;
    assert.ok(disk.owned && disk.file.startsWith(vm.dir), 'a new image in the VM folder, owned');
    assert.ok(existsSync(disk.file), `${disk.file} exists`);
    await shot('3-disk-added');
  });

  test('edit the disk\'s cache mode: the table and the definition change', async () => {
    await diskRow('disk0').getByRole('button', { name: 'Edit disk disk0' }).click();
    await dialog().getByTestId('editor-disk').waitFor();
    await page.getByTestId('disk-cache').selectOption('none');
    await page.getByTestId('editor-save').click();
    await dialog().waitFor({ state: 'detached' });
    await diskRow('disk0').getByTestId('disk-cache-cell').filter({ hasText: 'none' }).waitFor();
    assert.equal((await show()).definition.disks[0]!.cache, 'none');
  });

  test('grow the disk from its editor while the VM is off (qemu-img); a smaller size is refused beside the field', async () => {
    await diskRow('disk0').getByRole('button', { name: 'Edit disk disk0' }).click();
    await page.getByTestId('disk-grow').filter({ hasText: 'Now 1.0 GiB' }).waitFor();
    await page.getByTestId('disk-grow-size').fill('0.5');
    await page.getByTestId('disk-grow-button').click();
    await page.getByTestId('disk-grow-size-msg').filter({ hasText: /a disk only grows/ }).waitFor();
    await page.getByTestId('disk-grow-size').fill('2');
    await page.getByTestId('disk-grow-button').click();
    await page.getByTestId('disk-grow-status').filter({ hasText: 'Grown from 1.0 GiB to 2.0 GiB' }).waitFor();
    assert.deepEqual(await seriousViolations(), [], 'axe-core: no serious or critical violations with the grow section');
    await page.keyboard.press('Escape');
    await dialog().waitFor({ state: 'detached' });
    const file = (await show()).definition.disks[0]!.file;
    const info = JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', file], { encoding: 'utf8' })) as { 'virtual-size': number };
    assert.equal(info['virtual-size'], 2 * 1024 ** 3, 'the image is 2 GiB now');
  });

  test('bad input: a field error beside the field, the dialog keeps the input, nothing is created', async () => {
    const before = (await show()).definition.disks.length;
    await page.getByRole('button', { name: 'Add disk…' }).click();
    await page.getByTestId('disk-size').fill('0');
    await page.getByTestId('editor-save').click();
    await page.getByTestId('disk-size-msg').filter({ hasText: /whole number of GiB/ }).waitFor();
    assert.equal(await page.getByTestId('disk-size').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.getByTestId('disk-size').inputValue(), '0', 'the input is kept');
    // A path the core refuses: its reason shows beside the field.
    await page.getByTestId('disk-source-existing').check();
    await page.getByTestId('disk-file').fill('/nonexistent/disk.qcow2');
    await page.getByTestId('editor-save').click();
    await page.getByTestId('disk-file-msg').filter({ hasText: /does not exist|not found|no such/i }).waitFor({ timeout: 15_000 });
    await shot('4-bad-input');
    assert.ok(await dialog().isVisible(), 'the dialog stays open');
    // Escape cancels (keyboard).
    await page.keyboard.press('Escape');
    await dialog().waitFor({ state: 'detached' });
    assert.equal((await show()).definition.disks.length, before, 'no disk was added');
  });

  test('remove the disk, also deleting its image (offered: the VM is stopped and owns it)', async () => {
    const file = (await show()).definition.disks[0]!.file;
    await diskRow('disk0').getByRole('button', { name: 'Remove disk disk0' }).click();
    await dialog().getByTestId('remove-delete-file').check();
    await shot('5-remove-disk');
    await page.getByTestId('remove-confirm').click();
    await dialog().waitFor({ state: 'detached' });
    await diskRow('disk0').waitFor({ state: 'detached' });
    assert.equal((await show()).definition.disks.length, 0);
    assert.ok(!existsSync(file), `${file} was deleted`);
  });

  test('a NIC: vhost-net is disabled with this host\'s reason and fix; a NAT NIC with a port forward is added', async () => {
    await page.getByRole('button', { name: 'Add network interface…' }).click();
    await dialog().getByTestId('editor-nic').waitFor();
    await page.getByTestId('nic-backend-tap').check();
    const vhost = page.getByTestId('nic-datapath-vhost');
    assert.ok(await vhost.isDisabled(), 'vhost-net cannot be chosen here');
    const reason = await page.getByTestId('nic-datapath-vhost-reason').innerText();
    assert.match(reason, /vhost-net/);
    assert.match(reason, /does not exist|missing/);
    assert.match(reason, /modprobe vhost_net/);
    assert.match(await dialog().getByRole('group', { name: 'Data path' }).innerText(), /vhost \(host kernel\)/);
    await shot('6-nic-vhost-disabled');
    assert.deepEqual(await seriousViolations(), [], 'axe-core: no serious or critical violations in the NIC dialog');
    // A bad forward first: refused beside the field.
    await page.getByTestId('nic-backend-user').check();
    await page.getByTestId('nic-forwards').fill('tcp::99999-:22');
    await page.getByTestId('editor-save').click();
    await dialog().getByText(/ports are 1-65535/).waitFor();
    await page.getByTestId('nic-forwards').fill('tcp::2222-:22');
    await page.getByTestId('editor-save').click();
    await dialog().waitFor({ state: 'detached' });
    const row = page.locator('[data-testid="device-nic"]').first();
    await row.waitFor();
    assert.match(await row.innerText(), /virtio-net\s+Paravirtual/);
    assert.match(await row.innerText(), /2222/);
    const nic = (await show()).definition.nics[0]!;
    assert.equal(nic.network.type, 'user');
    assert.deepEqual(nic.network.portForwards?.map((f) => [f.hostPort, f.guestPort]), [[2222, 22]]);
    await shot('7-nic-added');
  });

  test('file chooser: an existing image picked with Browse… fills the path, passes the core\'s check and is added in place', async () => {
    const img = join(h.home, 'picked.qcow2');
    const made = spawnSync('qemu-img', ['create', '-f', 'qcow2', img, '64M'], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    writeFileSync(join(h.home, 'notes.txt'), 'not a disk\n');
    await page.getByRole('button', { name: 'Add disk…' }).click();
    await page.getByTestId('disk-source-existing').check();
    // The chooser opens in the folder of what is typed.
    await page.getByTestId('disk-file').fill(`${h.home}/`);
    await page.getByRole('button', { name: 'Browse for the disk image' }).click();
    const chooser = page.getByTestId('file-chooser');
    await chooser.getByRole('button', { name: /picked\.qcow2/ }).waitFor();
    assert.equal(await chooser.getByTestId('chooser-path').innerText(), h.home);
    assert.equal(await chooser.getByRole('button', { name: /notes\.txt/ }).count(), 0, 'only disk images are offered');
    assert.deepEqual(await seriousViolations(), [], 'axe-core: no serious or critical violations with the chooser over the editor');
    await shot('7a-chooser');
    await chooser.getByRole('button', { name: /picked\.qcow2/ }).click();
    await chooser.waitFor({ state: 'detached' });
    assert.equal(await page.getByTestId('disk-file').inputValue(), img, 'the field shows the chosen path');
    // Focus is back in the editor (its focus trap did not fight the chooser's).
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('data-testid')), 'disk-file-browse');
    await page.getByTestId('editor-save').click();
    await dialog().waitFor({ state: 'detached', timeout: 15_000 });
    const disk = (await show()).definition.disks.find((d) => d.file === img);
    assert.ok(disk && !disk.owned, `the picked image is used in place: ${JSON.stringify((await show()).definition.disks)}`);
    await diskRow(disk.id).waitFor();
    // Out again (keeping the file) so the running-VM tests start from one disk-less VM.
    await diskRow(disk.id).getByRole('button', { name: `Remove disk ${disk.id}` }).click();
    await page.getByTestId('remove-confirm').click();
    await diskRow(disk.id).waitFor({ state: 'detached' });
    assert.ok(existsSync(img), 'an image Hangar did not create stays');
  });

  test('file chooser: a shared folder is picked with "Choose this folder"', async () => {
    const folder = join(h.home, 'shared');
    mkdirSync(folder, { recursive: true });
    await page.getByRole('button', { name: 'Add shared folder…' }).click();
    await page.getByTestId('share-source').fill(folder);
    await page.getByRole('button', { name: 'Browse for the host folder' }).click();
    const chooser = page.getByTestId('file-chooser');
    await chooser.getByTestId('chooser-path').filter({ hasText: folder }).waitFor();
    await chooser.getByRole('button', { name: 'Up one folder' }).click();
    await chooser.getByRole('button', { name: /shared\// }).click();
    await chooser.getByTestId('chooser-path').filter({ hasText: folder }).waitFor();
    // In the dialog's actions, beside the listing.
    await page.getByTestId('chooser-this-folder').click();
    await chooser.waitFor({ state: 'detached' });
    assert.equal(await page.getByTestId('share-source').inputValue(), folder);
    await page.getByTestId('editor-cancel').click();
    await dialog().waitFor({ state: 'detached' });
  });
});

describe('Devices tab: a running VM', () => {
  test('a virtio-blk disk is hotplugged: "the guest sees it now", and the guest has a new block device', { timeout: 240_000 }, async () => {
    const { id } = await show();
    await h.ok(['start', VM]);
    await h.waitForSerial(id, READY_MARKER, 1, 180_000);
    await openDevices();
    await page.getByRole('button', { name: 'Add disk…' }).click();
    await page.getByTestId('disk-size').fill('1');
    await page.getByTestId('editor-save').click();
    await dialog().waitFor({ state: 'detached', timeout: 60_000 });
    await status().filter({ hasText: 'Added, the guest sees it now' }).waitFor();
    const disk = (await show()).definition.disks.at(-1)!;
    await diskRow(disk.id).waitFor();
    assert.equal(await diskRow(disk.id).getByTestId('pending-badge').count(), 0, 'a hotplugged disk is not pending');
    const out = await h.consoleCommand(VM, 'cat /proc/partitions', 4);
    assert.match(out, /\bvd[a-z]\b/, `the guest sees a virtio disk:\n${out}`);
    await shot('8-hotplugged');
  });

  test('grow the hotplugged disk online (block_resize): the running guest sees the new size at once', async () => {
    const disk = (await show()).definition.disks.at(-1)!;
    await diskRow(disk.id).getByRole('button', { name: `Edit disk ${disk.id}` }).click();
    await page.getByTestId('disk-grow').filter({ hasText: 'Now 1.0 GiB' }).waitFor();
    await page.getByTestId('disk-grow-size').fill('1.5');
    await page.getByTestId('disk-grow-button').click();
    await page.getByTestId('disk-grow-status').filter({ hasText: 'Grown from 1.0 GiB to 1.5 GiB: the guest sees the new size now' }).waitFor();
    await page.keyboard.press('Escape');
    await dialog().waitFor({ state: 'detached' });
    // 1.5 GiB = 3145728 sectors of 512 bytes.
    const out = await h.consoleCommand(VM, 'cat /sys/block/vd*/size', 4);
    assert.match(out, /^3145728\s*$/m, `the guest sees 1.5 GiB:\n${out}`);
  });

  test('the host file system under a disk fills up: the list and the Overview say "paused: disk full" with the disk; Resume works once space is back (case 6)', { timeout: 240_000 }, async () => {
    // A raw disk, larger than its 16 MiB tmpfs, hotplugged into the running guest.
    const mnt = mkdtempSync(join(tmpdir(), 'hgt-e2e-df-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', mnt]);
    try {
      const file = join(mnt, 'full.raw');
      execFileSync('truncate', ['-s', '64M', file]);
      const before = new Set((await show()).definition.disks.map((d) => d.id));
      await h.ok(['device', 'add', VM, 'disk', `${file},format=raw,bus=virtio-blk`, '--allow-overcommit']);
      const added = (await show()).definition.disks.find((d) => !before.has(d.id))!;
      const parts = await h.consoleCommand(VM, 'for d in /sys/block/vd*; do echo "$d $(cat $d/size)"; done', 4);
      const dev = /\/sys\/block\/(vd[a-z]) 131072\b/.exec(parts)?.[1];
      assert.ok(dev, `the guest sees the 64 MiB disk:\n${parts}`);
      // 32 MiB into 16 MiB of host space: QEMU stops the guest on ENOSPC (werror=enospc).
      await h.consoleCommand(VM, `(dd if=/dev/zero of=/dev/${dev} bs=1M count=32 oflag=direct 2>/dev/null; echo FILLED-$((6*7))) &`, 1);
      await page.goto(serve.url);
      const row = page.locator(`[data-testid="vm-row"][data-vm="${VM}"]`);
      await page.locator(`[data-testid="vm-row"][data-vm="${VM}"][data-state="paused"]`).waitFor({ timeout: 120_000 });
      await row.locator('.reason').filter({ hasText: /paused: disk full: disk \S+/ }).waitFor({ timeout: 10_000 });
      assert.ok((await row.locator('.reason').innerText()).includes(file), 'the list names the disk file');
      await page.goto(`${serve.url}#/vm/${VM}/overview`);
      const reason = page.locator('main .reason-text');
      await reason.filter({ hasText: 'paused: disk full' }).waitFor();
      const text = await reason.innerText();
      assert.ok(text.includes(added.id) && text.includes(file), `the Overview names the disk: ${text}`);
      assert.match(text, /free space/, 'and says what to do');
      await shot('13-disk-full');
      // Space comes back: Resume in the toolbar, the guest's write finishes.
      execFileSync('mount', ['-o', 'remount,size=96m', mnt]);
      await page.getByTestId('lifecycle-toolbar').getByRole('button', { name: 'Resume', exact: true }).click();
      await page.locator('main').getByTestId('vm-state').filter({ hasText: /^\s*running\s*$/i }).first().waitFor({ timeout: 20_000 });
      await h.waitForSerial((await show()).id, 'FILLED-42', 1, 120_000);
      assert.equal((await show()).state, 'running');
      await reason.filter({ hasText: 'disk full' }).waitFor({ state: 'detached', timeout: 10_000 });
      await h.ok(['device', 'remove', VM, 'disk', added.id]);
      await openDevices(); // where the next tests start
    } finally {
      try { execFileSync('umount', ['-l', mnt]); } catch { /* gone */ }
      rmSync(mnt, { recursive: true, force: true });
    }
  });

  test('an edit QEMU cannot apply live: "applies at next boot", the row is badged, the banner lists it', async () => {
    const disk = (await show()).definition.disks.at(-1)!;
    await diskRow(disk.id).getByRole('button', { name: `Edit disk ${disk.id}` }).click();
    await page.getByTestId('disk-cache').selectOption('writethrough');
    await page.getByTestId('editor-save').click();
    await dialog().waitFor({ state: 'detached' });
    await status().filter({ hasText: 'Saved; applies at next boot' }).waitFor();
    await diskRow(disk.id).getByTestId('pending-badge').filter({ hasText: 'applies at next boot' }).waitFor();
    assert.match(await page.getByTestId('pending-banner').innerText(), new RegExp(disk.id));
    const pending = (await show()).pending ?? [];
    assert.ok(pending.some((p) => p.kind === 'disk' && p.id === disk.id && p.change === 'edit'), JSON.stringify(pending));
    await shot('9-pending');
    assert.deepEqual(await seriousViolations(), [], 'axe-core: no serious or critical violations with the banner and badges');
  });

  test('"Restart now to apply": a clean shutdown and a start; the banner goes, nothing is pending, the new QEMU has the new cache', { timeout: 300_000 }, async () => {
    const before = await show();
    const disk = before.definition.disks.at(-1)!;
    assert.equal(disk.cache, 'writethrough');
    const restart = page.getByRole('button', { name: 'Restart now to apply' });
    await restart.click();
    const busy = page.getByTestId('pending-restart').filter({ hasText: 'Restarting…' });
    await busy.waitFor();
    assert.ok(await busy.isDisabled(), 'disabled while restarting');
    await shot('10-restarting');
    // Resolves when the VM runs again: shutdown under TCG plus a start.
    await page.getByTestId('pending-banner').waitFor({ state: 'detached', timeout: 240_000 });
    const after = await show();
    assert.equal(after.state, 'running');
    assert.deepEqual(after.pending ?? [], []);
    assert.ok(after.pid && after.pid !== before.pid, `a new QEMU (pid ${before.pid} -> ${after.pid})`);
    assert.equal(await diskRow(disk.id).getByTestId('pending-badge').count(), 0);
    // What the running QEMU was started with: writethrough = host page cache on, guest write cache off.
    const objects = qemuObjects(after.pid);
    const front = objects.find((o) => o.id === disk.id);
    assert.equal(front?.['write-cache'], 'off', JSON.stringify(front));
    const fileNode = objects.find((o) => o['node-name'] === `${disk.id}-file`);
    assert.deepEqual(fileNode?.cache, { direct: false, 'no-flush': false }, JSON.stringify(fileNode));
    assert.ok((await h.ok(['cmdline', VM])).includes('"write-cache":"off"'));
    await shot('11-restarted');
    await h.run(['destroy', VM]);
  });

  test('balloon: the guest memory target is explained on a stopped VM, then set to 200 MiB and reached by the guest', { timeout: 300_000 }, async () => {
    const BAL = 'dev-balloon';
    const file = join(h.home, `${BAL}.json`);
    writeFileSync(file, JSON.stringify({ memoryMiB: 256, accel: 'tcg', boot: { kernel: { kernel: guest.kernel, initrd: guest.initrd, append: GUEST_CMDLINE } }, balloon: {} }));
    const { id } = await h.json<{ id: string }>(['create', '--name', BAL, '--file', file]);
    await openDevices(BAL);
    await page.getByTestId('balloon-target-hint').filter({ hasText: 'needs a running VM' }).waitFor();
    await h.ok(['start', BAL]);
    await h.waitForSerial(id, READY_MARKER, 1, 180_000);
    // The state change arrives as a core event: the form replaces the hint.
    const input = page.getByTestId('balloon-target-mib');
    await input.waitFor();
    assert.equal(await input.inputValue(), '256', 'starts at the VM\'s memory');
    // Checked before it is sent.
    await input.fill('300');
    await page.getByRole('button', { name: 'Set target' }).click();
    await page.getByTestId('balloon-target-mib-msg').filter({ hasText: /at most the VM's 256 MiB/ }).waitFor();
    assert.equal(await input.getAttribute('aria-invalid'), 'true');
    await input.fill('200');
    await page.getByRole('button', { name: 'Set target' }).click();
    const statusLine = page.getByTestId('balloon-target-status');
    await statusLine.filter({ hasText: /target 200 MiB, the guest has \d+ MiB now/ }).waitFor({ timeout: 15_000 });
    // The guest gives memory back over seconds (virtio_balloon): the UI follows it down.
    await statusLine.filter({ hasText: 'target 200 MiB, the guest has 200 MiB now' }).waitFor({ timeout: 30_000 });
    assert.equal(await page.getByTestId('balloon-target').getByTestId('error').count(), 0);
    assert.deepEqual(await seriousViolations(), [], 'axe-core: no serious or critical violations with the balloon form');
    await shot('12-balloon');
    await h.run(['destroy', BAL]);
  });

  test('no script errors in the page', () => {
    assert.deepEqual(pageErrors, []);
  });
});
