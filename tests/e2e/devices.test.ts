// The Devices tab's editing panels in Debian's Chromium against browser mode, with the real core,
// real qemu-img and real QEMU (TCG): on a stopped VM add a new 1 GiB virtio-blk disk (seen in the
// table and on disk), change its cache, remove it with its image; add a NIC with a port forward;
// vhost-net shown disabled with this host's reason (no /dev/vhost-net); bad input shows field
// errors and creates nothing; axe-core on the dialog; on a running VM a disk is hotplugged (the
// guest sees it) and an edit that QEMU cannot apply live is badged "applies at next boot".
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { ensureTestGuest, READY_MARKER } from '../guest/guest.ts';
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
  id: string; dir: string; state: string;
  definition: { disks: Array<{ id: string; file: string; cache: string; bus: string; owned: boolean }>; nics: Array<{ id: string; model: string; network: { type: string; portForwards?: Array<{ hostPort: number; guestPort: number }> } }> };
  pending?: Array<{ kind: string; id: string; change: string }>;
}
const show = (): Promise<Shown> => h.json<Shown>(['show', VM]);

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

async function openDevices(): Promise<void> {
  await page.goto(`${serve.url}#/vm/${VM}/devices`);
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
    await h.run(['destroy', VM]);
  });

  test('no script errors in the page', () => {
    assert.deepEqual(pageErrors, []);
  });
});
