// The New VM wizard in Debian's Chromium against browser mode, with the real core, real
// qemu-img and real QEMU (TCG) booting the test guest made by the wizard: from the ISO with BIOS
// and UEFI, from a qcow2 in place, from a vmdk converted to qcow2, from a kernel + initrd, a UEFI
// VM with a TPM; bad input in every step; a conversion cancelled half-way; keyboard-only use.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import { addAclLines, createBridge, requireRoot, testBridgeName } from '../helpers/bridge-host.ts';
import type { HangarHarness } from '../helpers/hangar.ts';
import type { ServeProcess } from '../helpers/hangar.ts';
import { axeViolations, openUiSession, screenshot, waitConsole as waitConsoleIn } from './browser.ts';
import type { UiSession } from './browser.ts';

const BOOT_MS = 180_000;

let session: UiSession;
let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;
let serve: ServeProcess;
let page: Page;
let pageErrors: string[];
let shots: string[];

before(async () => {
  guest = await ensureTestGuest();
  session = await openUiSession({ width: 1280, height: 900 });
  ({ h, serve, page, pageErrors, shots } = session);
});

after(async () => {
  await session?.close();
});

interface Info { id: string; dir: string; state: string; pid?: number; definition: { firmware: string; cpu: { model: string }; memoryMiB: number; osId?: string; tpm?: { model: string }; disks: Array<{ file: string; format: string; owned: boolean; bus: string }>; cdroms: Array<{ file?: string }>; video: { model: string; display: string; clipboard: boolean }; inputs: Array<{ type: string }> } }

const title = () => page.getByTestId('step-title');

async function openWizard(): Promise<void> {
  await page.goto(serve.url);
  await page.getByRole('link', { name: 'New VM' }).click();
  await title().filter({ hasText: '1. Source' }).waitFor();
}

async function expectStep(n: number, label: string): Promise<void> {
  await title().filter({ hasText: `${n}. ${label}` }).waitFor({ timeout: 10_000 });
}

async function next(): Promise<void> {
  await page.getByTestId('wizard-next').click();
}

/** Types a path and waits for the core's verdict next to it; returns that text. */
async function fillPath(field: string, value: string, verdict: 'ok' | 'error'): Promise<string> {
  await page.getByTestId(`path-${field}`).fill(value);
  const msg = page.getByTestId(`path-${field}-msg`);
  await msg.filter({ hasText: verdict === 'ok' ? '✔' : '✖' }).waitFor({ timeout: 15_000 });
  return (await msg.innerText()).trim();
}

async function setNumber(testid: string, value: number): Promise<void> {
  await page.getByTestId(testid).fill(String(value));
}

async function shot(name: string): Promise<void> {
  shots.push(await screenshot(page, `wizard-${name}`));
}

function waitConsole(pred: (t: string) => boolean, what: string, timeout = BOOT_MS): Promise<void> {
  return waitConsoleIn(page, pred, what, timeout);
}

/** Goes from the current step to the summary with the defaults, names the VM and creates it. */
async function finish(name: string, startNow: boolean): Promise<void> {
  await page.getByTestId('step-summary').click();
  await expectStep(8, 'Summary');
  await page.getByTestId('vm-name').fill(name);
  await page.getByTestId('vm-name').press('Tab');
  await page.getByTestId('preview-cmdline').waitFor({ timeout: 20_000 });
  await page.getByTestId(startNow ? 'create-start' : 'create-customize').click();
  // VMs that boot firmware get a display: "Create and start now" opens it (kernel boot: the console).
  await page.waitForURL(startNow ? /#\/vm\/[^/]+\/(display|console)$/ : /#\/vm\/[^/]+$/, { timeout: 120_000 });
}

/** On the Display tab (the guest's screen is live), then on to the Console tab for the ready marker. */
async function bootsToReady(name: string): Promise<void> {
  if (page.url().endsWith('/display')) {
    await page.getByTestId('display-screen').locator('canvas').waitFor({ timeout: 60_000 });
    await page.getByRole('tab', { name: 'Console' }).click();
    await page.waitForURL(/\/console$/);
  }
  await waitConsole((t) => t.includes(READY_MARKER), `${READY_MARKER} of ${name}`);
}

async function destroy(name: string): Promise<void> {
  await h.run(['destroy', name]);
}

function vmFolders(): string[] {
  const dir = join(h.home, 'vms');
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

/** Processes of a program whose command line names the VM folder. */
function pidsOf(program: string, vmDir: string): number[] {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map(Number).filter((pid) => {
    try {
      const a = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      return new RegExp(`(^|/)${program}$`).test(a[0] ?? '') && a.some((x) => x.includes(vmDir));
    } catch { return false; }
  });
}
const swtpmPids = (vmDir: string): number[] => pidsOf('swtpm', vmDir);
const passtPids = (vmDir: string): number[] => pidsOf('passt', vmDir);

/** Types into the xterm console and waits for text. */
async function typeInConsole(command: string, pred: (t: string) => boolean, what: string): Promise<void> {
  await page.locator('[data-testid="console"] .xterm').click();
  await page.keyboard.type(`${command}\n`);
  await waitConsole(pred, what, 30_000);
}

describe('New VM wizard', () => {
  test('from the test ISO with BIOS: detected as unknown/generic, every step shown, boots to the ready marker', { timeout: 300_000 }, async () => {
    await openWizard();
    await shot('1-source');
    await page.getByTestId('source-iso').check();
    const found = await fillPath('isoPath', guest.iso, 'ok');
    assert.match(found, /Unknown \/ generic OS/);
    assert.match(found, /HANGAR_GUEST/);
    await shot('1-source-iso');
    await next();
    await expectStep(2, 'Operating system');
    await page.getByTestId('os-detected').filter({ hasText: 'unknown / generic' }).waitFor();
    await page.getByTestId('os-preset').waitFor();
    await shot('2-os');
    await next();
    await expectStep(3, 'Firmware');
    assert.ok(await page.getByTestId('firmware-bios').isChecked(), 'unknown OS -> BIOS');
    await shot('3-firmware');
    await next();
    await expectStep(4, 'Memory and CPUs');
    await setNumber('memory', 384);
    // VMs run under TCG here: the OS's pick is max, marked as recommended; host is there but disabled.
    const model = page.getByTestId('cpu-model');
    await model.locator('option', { hasText: '(recommended)' }).waitFor({ state: 'attached' });
    assert.equal(await model.inputValue(), 'max');
    assert.equal(await model.locator('option[value="host"]').isDisabled(), true);
    assert.match(await page.locator('#cpu-model-msg').innerText(), /Every CPU feature TCG can give/);
    await shot('4-resources');
    await next();
    await expectStep(5, 'Storage');
    await setNumber('disk-size', 2);
    await shot('5-storage');
    await next();
    await expectStep(6, 'Network');
    await page.getByTestId('port-forwards').fill('tcp::22222-:22');
    await shot('6-network');
    await next();
    await expectStep(7, 'Unattended set-up');
    await shot('7-setup');
    await next();
    await expectStep(8, 'Summary');
    await page.getByTestId('vm-name').fill('wiz-bios');
    await page.getByTestId('preview-cmdline').filter({ hasText: 'wiz-bios' }).waitFor({ timeout: 20_000 });
    const cmd = await page.getByTestId('create-command').innerText();
    assert.match(cmd, /hangar create --name wiz-bios --os other --memory 384 .*--firmware bios --cpu max .*--cdrom \S+guest\.iso.*--new-disk 2G,bus=sata .*hostfwd=tcp::22222-:22/s);
    const argv = await page.getByTestId('preview-cmdline').innerText();
    assert.match(argv, /^ {2}-nodefaults \\$/m);
    assert.match(argv, /"driver":"ide-cd"/);
    assert.match(argv, /hostfwd/);
    await shot('8-summary');
    const violations = (await axeViolations(page)).filter((v) => v.impact === 'serious' || v.impact === 'critical');
    assert.deepEqual(violations, [], JSON.stringify(violations, null, 2));

    await page.getByTestId('create-start').click();
    await page.waitForURL(/#\/vm\/wiz-bios\/display$/, { timeout: 60_000 });
    await bootsToReady('wiz-bios');
    const info = await h.json<Info>(['show', 'wiz-bios']);
    assert.equal(info.definition.firmware, 'bios');
    assert.equal(info.definition.memoryMiB, 384);
    assert.equal(info.definition.osId, 'other');
    assert.equal(info.definition.cpu.model, 'max');
    assert.deepEqual(info.definition.video, { model: 'vga', display: 'vnc', clipboard: true }, 'an ISO VM gets a display');
    assert.ok(info.definition.inputs.some((i) => i.type === 'tablet'), 'and a USB tablet');
    assert.equal(info.definition.cdroms[0]!.file, guest.iso);
    assert.equal(info.definition.disks[0]!.bus, 'sata');
    assert.equal(JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', info.definition.disks[0]!.file], { encoding: 'utf8' })).format, 'qcow2');
    await destroy('wiz-bios');
  });

  test('from the test ISO with UEFI: its own NVRAM, boots to the ready marker', { timeout: 300_000 }, async () => {
    await openWizard();
    await fillPath('isoPath', guest.iso, 'ok');
    await next();
    await expectStep(2, 'Operating system');
    await next();
    await page.getByTestId('firmware-uefi').check();
    await next();
    await setNumber('memory', 384);
    await next();
    await page.getByTestId('storage-none').check();
    await finish('wiz-uefi', true);
    await bootsToReady('wiz-uefi');
    const info = await h.json<Info>(['show', 'wiz-uefi']);
    assert.equal(info.definition.firmware, 'uefi');
    assert.ok(existsSync(join(info.dir, 'uefi-vars.fd')), 'per-VM NVRAM');
    assert.equal(info.definition.disks.length, 0);
    await destroy('wiz-uefi');
  });

  test('a qcow2 used in place: the VM writes the file where it is and boots from it', { timeout: 300_000 }, async () => {
    const img = join(h.home, 'mine.qcow2');
    copyFileSync(guest.disk, img);
    writeFileSync(join(h.home, 'readme.txt'), 'not a disk\n');
    await openWizard();
    await page.getByTestId('source-import').check();
    // Chosen with the file chooser (served by the core): the folder, then the file.
    await page.getByTestId('path-importPath').fill(`${h.home}/`);
    await page.getByTestId('browse-importPath').click();
    const chooser = page.getByTestId('file-chooser');
    await chooser.getByRole('button', { name: /mine\.qcow2/ }).waitFor();
    assert.equal(await chooser.getByTestId('chooser-path').innerText(), h.home);
    assert.equal(await chooser.getByRole('button', { name: /notes\.txt/ }).count(), 0, 'only disk images are offered');
    await shot('file-chooser');
    await chooser.getByRole('button', { name: /mine\.qcow2/ }).click();
    await page.getByTestId('path-importPath-msg').filter({ hasText: '✔' }).waitFor();
    assert.equal(await page.getByTestId('path-importPath').inputValue(), img);
    const found = (await page.getByTestId('path-importPath-msg').innerText()).trim();
    assert.match(found, /qcow2 image/);
    assert.ok(await page.getByTestId('import-in-place').isChecked());
    await next();
    await page.getByTestId('os-generic-linux').check();
    await page.getByTestId('step-resources').click();
    await setNumber('memory', 384);
    await next();
    await page.getByTestId('storage-imported').waitFor();
    await page.getByTestId('disk-bus').selectOption('virtio-blk');
    await finish('wiz-inplace', true);
    await bootsToReady('wiz-inplace');
    const info = await h.json<Info>(['show', 'wiz-inplace']);
    assert.deepEqual([info.definition.disks[0]!.file, info.definition.disks[0]!.owned, info.definition.disks[0]!.format], [img, false, 'qcow2']);
    await destroy('wiz-inplace');
  });

  test('a vmdk converted to qcow2 (the default for vmdk), then booted', { timeout: 300_000 }, async () => {
    const vmdk = join(h.home, 'appliance.vmdk');
    execFileSync('qemu-img', ['convert', '-O', 'vmdk', guest.disk, vmdk]);
    await openWizard();
    await page.getByTestId('source-import').check();
    const found = await fillPath('importPath', vmdk, 'ok');
    assert.match(found, /vmdk image/);
    assert.ok(await page.getByTestId('import-convert').isChecked(), 'a vmdk is converted by default');
    await page.getByTestId('step-resources').click();
    await setNumber('memory', 384);
    await next();
    await finish('wiz-vmdk', true);
    await bootsToReady('wiz-vmdk');
    const info = await h.json<Info>(['show', 'wiz-vmdk']);
    const disk = info.definition.disks[0]!;
    assert.equal(disk.file, join(info.dir, 'disk0.qcow2'));
    assert.equal(disk.owned, true);
    assert.equal(JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', disk.file], { encoding: 'utf8' })).format, 'qcow2');
    await destroy('wiz-vmdk');
  });

  test('kernel + initrd, keyboard only: boots, the shell answers', { timeout: 300_000 }, async () => {
    await openWizard();
    // Into the source radio group (the checked radio takes the focus), then down to "kernel".
    await page.getByTestId('source-iso').focus();
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowDown');
    assert.ok(await page.getByTestId('source-kernel').isChecked());
    await page.keyboard.press('Tab');
    await page.keyboard.type(guest.kernel);
    await page.getByTestId('path-kernelPath-msg').filter({ hasText: '✔' }).waitFor();
    await page.keyboard.press('Tab'); // Browse…
    await page.keyboard.press('Tab');
    await page.keyboard.type(guest.initrd);
    await page.getByTestId('path-initrdPath-msg').filter({ hasText: '✔' }).waitFor();
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Control+A');
    await page.keyboard.type(GUEST_CMDLINE);
    await page.keyboard.press('Enter'); // submits the step: Next
    await expectStep(2, 'Operating system');
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('data-testid')), 'step-title', 'focus moves to the new step');
    for (const [n, label] of [[3, 'Firmware'], [4, 'Memory and CPUs']] as const) {
      await page.keyboard.press('Tab');
      await page.keyboard.press('Enter');
      await expectStep(n, label);
    }
    await page.keyboard.press('Tab'); // memory
    await page.keyboard.press('Control+A');
    await page.keyboard.type('256');
    await page.keyboard.press('Enter');
    await expectStep(5, 'Storage');
    // No disk: Tab to the checked "New disk" radio, ArrowDown twice to "No disk".
    await page.keyboard.press('Tab');
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowDown');
    assert.ok(await page.getByTestId('storage-none').isChecked());
    await page.keyboard.press('Enter');
    await expectStep(6, 'Network');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await expectStep(7, 'Unattended set-up');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await expectStep(8, 'Summary');
    await page.keyboard.press('Tab');
    await page.keyboard.type('wiz-kernel');
    await page.getByTestId('preview-cmdline').filter({ hasText: '-kernel' }).waitFor({ timeout: 20_000 });
    // Tab on to "Create and start now" and press it.
    for (let i = 0; i < 30; i++) {
      await page.keyboard.press('Tab');
      if (await page.evaluate(() => document.activeElement?.getAttribute('data-testid')) === 'create-start') break;
    }
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('data-testid')), 'create-start');
    await page.keyboard.press('Enter');
    await page.waitForURL(/#\/vm\/wiz-kernel\/console$/, { timeout: 60_000 });
    await bootsToReady('wiz-kernel');
    await typeInConsole('echo $((6*7))', (t) => /^42\s*$/m.test(t), 'the answer 42');
    await destroy('wiz-kernel');
  });

  test('UEFI with a TPM on passt networking: swtpm and passt run while the VM runs, the guest sees tpm0, both stop after', { timeout: 300_000 }, async () => {
    await openWizard();
    await page.getByTestId('source-kernel').check();
    await fillPath('kernelPath', guest.kernel, 'ok');
    await fillPath('initrdPath', guest.initrd, 'ok');
    await page.getByTestId('cmdline').fill(GUEST_CMDLINE);
    await page.getByTestId('step-firmware').click();
    await page.getByTestId('firmware-uefi').check();
    await page.getByTestId('tpm').check();
    await shot('3-firmware-uefi-tpm');
    await next();
    await setNumber('memory', 320);
    await next();
    await page.getByTestId('storage-none').check();
    await next();
    await page.getByTestId('network-passt').check();
    await finish('wiz-tpm', true);
    await bootsToReady('wiz-tpm');
    const info = await h.json<Info>(['show', 'wiz-tpm']);
    assert.deepEqual(info.definition.tpm, { model: 'tpm-crb' });
    assert.equal(swtpmPids(info.dir).length, 1, 'swtpm runs with the VM');
    assert.equal(passtPids(info.dir).length, 1, 'passt runs with the VM');
    await typeInConsole('ls /sys/class/tpm', (t) => /^tpm0\s*$/m.test(t), 'tpm0 in the guest');
    await h.ok(['destroy', 'wiz-tpm']);
    const deadline = Date.now() + 10_000;
    while (swtpmPids(info.dir).length && Date.now() < deadline) await page.waitForTimeout(100);
    assert.deepEqual(swtpmPids(info.dir), [], 'swtpm stopped with the VM');
    while (passtPids(info.dir).length && Date.now() < deadline) await page.waitForTimeout(100);
    assert.deepEqual(passtPids(info.dir), [], 'passt stopped with the VM');
  });

  test('bad input: missing file, not an ISO, not a disk image, taken name, memory above the host, disk above free space', { timeout: 120_000 }, async () => {
    await openWizard();
    assert.match(await fillPath('isoPath', join(h.home, 'nope.iso'), 'error'), /does not exist/);
    const text = join(h.home, 'notes.txt');
    writeFileSync(text, 'hello\n'.repeat(10_000));
    assert.match(await fillPath('isoPath', text, 'error'), /not an ISO/);
    await next();
    await page.getByTestId('step-blocked').filter({ hasText: 'choose a readable ISO image' }).waitFor();
    await expectStep(1, 'Source');
    await page.getByTestId('step-summary').click(); // jumping ahead stops at the first step that blocks
    await expectStep(1, 'Source');
    await shot('bad-iso');
    await page.getByTestId('source-import').check();
    assert.match(await fillPath('importPath', text, 'error'), /does not look like a disk image|not a disk image/);
    assert.match(await fillPath('importPath', h.home, 'error'), /directory|folder/);
    await page.getByTestId('source-empty').check();
    await next();
    await page.getByTestId('step-resources').click();
    await expectStep(4, 'Memory and CPUs');
    await setNumber('memory', 64 * 1024 * 1024);
    await page.getByText(/more than this host has/).waitFor();
    await next();
    await page.getByTestId('step-blocked').filter({ hasText: 'more than this host has' }).waitFor();
    await shot('bad-memory');
    await setNumber('memory', 256);
    await next();
    await expectStep(5, 'Storage');
    const free = (await page.locator('#disk-size-msg').innerText()).match(/([\d.]+) GiB free/);
    assert.ok(free, 'free space shown');
    await setNumber('disk-size', Math.ceil(Number(free[1]) * 2) + 10);
    await page.getByText(/more than the .* free/).waitFor();
    await next();
    await page.getByTestId('step-blocked').filter({ hasText: 'confirm the disk size' }).waitFor();
    await page.getByTestId('confirm-big-disk').check();
    await setNumber('disk-size', 1);
    await next();
    await expectStep(6, 'Network');
    await page.getByTestId('port-forwards').fill('tcp::2222:22');
    await page.getByText(/not of the form tcp::HOSTPORT-:GUESTPORT/).waitFor();
    await page.getByTestId('port-forwards').fill('');
    await next();
    await page.getByTestId('cloud-init').check();
    await page.getByTestId('ci-user').fill('Bad User');
    await page.getByText(/lower-case letters/).first().waitFor();
    await page.getByTestId('cloud-init').uncheck();
    await next();
    await expectStep(8, 'Summary');
    await h.ok(['create', '--name', 'Taken', '--memory', '256']);
    await page.waitForTimeout(300); // the list store hears about it
    await page.getByTestId('vm-name').fill('taken');
    await page.locator('#vm-name-msg').filter({ hasText: 'already exists' }).waitFor();
    await shot('bad-name');
    const before = vmFolders();
    await page.getByTestId('create-customize').click();
    await page.waitForTimeout(500);
    assert.deepEqual(vmFolders(), before, 'nothing created');
    assert.match(page.url(), /#\/new$/);
    await page.getByTestId('vm-name').fill('wiz-ok');
    await finish('wiz-ok', false);
    await page.getByRole('tab', { name: 'Overview' }).waitFor();
  });

  test('cancelling a conversion half-way leaves nothing behind', { timeout: 180_000 }, async () => {
    const big = join(h.home, 'big.raw');
    const fd = openSync(big, 'w');
    try {
      ftruncateSync(fd, 3 * 1024 ** 3);
      const blk = randomBytes(1024 * 1024);
      for (let mib = 0; mib < 3 * 1024; mib += 2) writeSync(fd, blk, 0, blk.length, mib * 1024 * 1024);
    } finally {
      closeSync(fd);
    }
    const before = vmFolders();
    await openWizard();
    await page.getByTestId('source-import').check();
    await fillPath('importPath', big, 'ok');
    await page.getByTestId('import-convert').check();
    await page.getByTestId('step-summary').click();
    await page.getByTestId('vm-name').fill('wiz-cancel');
    await page.getByTestId('preview-cmdline').filter({ hasText: 'wiz-cancel' }).waitFor({ timeout: 20_000 });
    await page.getByTestId('create-customize').click();
    const bar = page.getByTestId('create-progress').locator('progress');
    await bar.waitFor({ timeout: 30_000 });
    const deadline = Date.now() + 30_000;
    while (Number(await bar.getAttribute('value').catch(() => '0')) < 3 && Date.now() < deadline) await page.waitForTimeout(50);
    await shot('convert-progress');
    await page.getByTestId('cancel-create').click();
    await page.getByTestId('create-cancelled').waitFor({ timeout: 30_000 });
    assert.deepEqual(vmFolders(), before, 'no VM folder left');
    assert.ok(!(await h.json<Array<{ name: string }>>(['list'])).some((v) => v.name === 'wiz-cancel'), 'no VM listed');
    assert.match(page.url(), /#\/new$/);
  });

  test('a bridge this user may use is offered; the VM tap joins it and the guest reaches the host over it', { timeout: 300_000 }, async () => {
    requireRoot('the wizard\'s bridged-NIC test');
    const br = createBridge(testBridgeName('hgwz'), '10.232.0.1/24');
    const restoreAcl = addAclLines([`allow ${br.name}`]);
    try {
      await openWizard();
      await page.getByTestId('source-kernel').check();
      await fillPath('kernelPath', guest.kernel, 'ok');
      await fillPath('initrdPath', guest.initrd, 'ok');
      await page.getByTestId('cmdline').fill(GUEST_CMDLINE);
      await page.getByTestId('step-resources').click();
      await setNumber('memory', 256);
      await page.getByTestId('step-storage').click();
      await page.getByTestId('storage-none').check();
      await page.getByTestId('step-network').click();
      await page.getByTestId('network-bridge').check();
      await page.getByTestId('bridge').selectOption(br.name);
      await shot('6-network-bridge');
      await page.getByTestId('step-summary').click();
      await page.getByTestId('create-command').filter({ hasText: `--nic bridge,br=${br.name},model=virtio-net` }).waitFor();
      await finish('wiz-bridge', true);
      await bootsToReady('wiz-bridge');
      assert.equal(br.ports().length, 1, `one tap on ${br.name}: ${br.ports().join(' ')}`);
      await typeInConsole('ip addr add 10.232.0.2/24 dev eth0; ip link set eth0 up; ping -c 2 -w 20 10.232.0.1',
        (t) => /[1-9]\d* packets received/.test(t), 'ping replies from the host over the bridge');
      await destroy('wiz-bridge');
      const deadline = Date.now() + 10_000;
      while (br.ports().length && Date.now() < deadline) await page.waitForTimeout(100);
      assert.deepEqual(br.ports(), [], 'the tap left the bridge with the VM');
    } finally {
      restoreAcl();
      br.remove();
    }
  });

  test('media of real distributions: Debian 11 and Windows 11 are detected; Windows 11 brings UEFI + Secure Boot + TPM', { timeout: 120_000 }, async () => {
    const isoOf = (name: string, args: string[]): string => {
      const dir = join(h.home, `${name}-root`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'README.TXT'), name);
      const iso = join(h.home, `${name}.iso`);
      execFileSync('xorriso', ['-as', 'genisoimage', '-o', iso, ...args, dir], { stdio: 'ignore' });
      return iso;
    };
    const debianIso = isoOf('debian', ['-V', 'Debian 11.7.0 amd64 n']);
    const winIso = isoOf('win11', ['-V', 'CCCOMA_X64FRE_EN-US_DV9', '-sysid', 'CD-ROM', '-publisher', 'MICROSOFT CORPORATION', '-A', 'CDIMAGE 2.56 (01/01/2005 TM)']);

    await openWizard();
    assert.match(await fillPath('isoPath', debianIso, 'ok'), /Detected: Debian 11/);
    await next();
    await page.getByTestId('os-detected').filter({ hasText: 'Debian 11' }).waitFor();
    assert.ok(await page.getByTestId('os-debian11').isChecked(), 'the detected OS is selected');
    await page.getByTestId('step-summary').click();
    assert.equal(await page.getByTestId('vm-name').inputValue(), 'debian11', 'the name is suggested from the OS');
    await page.getByTestId('create-command').filter({ hasText: '--os debian11' }).waitFor();
    assert.match(await page.getByTestId('create-command').innerText(), /--new-disk \d+G,bus=virtio-blk --nic user,model=virtio-net/);

    await openWizard();
    assert.match(await fillPath('isoPath', winIso, 'ok'), /Detected: Microsoft Windows 11/);
    await next();
    await page.getByTestId('os-preset').filter({ hasText: 'Secure Boot and a TPM 2.0' }).waitFor();
    await next();
    assert.ok(await page.getByTestId('firmware-uefi-secure').isChecked(), 'Windows 11: UEFI with Secure Boot');
    assert.ok(await page.getByTestId('tpm').isChecked(), 'Windows 11: TPM 2.0');
    await page.getByTestId('step-storage').click();
    await setNumber('disk-size', 1);
    await page.getByTestId('step-summary').click();
    await page.getByTestId('vm-name').fill('win11-test');
    await page.getByTestId('preview-cmdline').filter({ hasText: 'guest=win11-test' }).waitFor({ timeout: 20_000 });
    const argv = await page.getByTestId('preview-cmdline').innerText();
    assert.match(argv, /tpm-crb/);
    assert.match(argv, /property=secure,value=on/);
    assert.match(argv, /smm=on/);
    await page.getByTestId('create-customize').click();
    await page.waitForURL(/#\/vm\/win11-test$/, { timeout: 60_000 });
    const info = await h.json<Info>(['show', 'win11-test']);
    assert.deepEqual([info.definition.firmware, info.definition.tpm?.model, info.definition.osId, info.definition.disks[0]!.bus], ['uefi-secure', 'tpm-crb', 'win11', 'sata']);
  });

  test('dark theme: the wizard keeps contrast; every step has accessible names', { timeout: 60_000 }, async () => {
    await page.emulateMedia({ colorScheme: 'dark' });
    try {
      await openWizard();
      await fillPath('isoPath', guest.iso, 'ok');
      for (const s of ['source', 'os', 'firmware', 'resources', 'storage', 'network', 'setup', 'summary']) {
        await page.getByTestId(`step-${s}`).click();
        if (s === 'setup') {
          await page.getByTestId('cloud-init').check();
          await page.getByTestId('ci-user').fill('alice');
        }
        if (s === 'summary') await page.getByTestId('vm-name').fill('dark');
        const bad = (await axeViolations(page)).filter((v) => v.impact === 'serious' || v.impact === 'critical');
        assert.deepEqual(bad, [], `step ${s}: ${JSON.stringify(bad, null, 2)}`);
      }
      await shot('dark-summary');
    } finally {
      await page.emulateMedia({ colorScheme: 'light' });
    }
  });

  test('the wizard raised no script errors', () => {
    assert.deepEqual(pageErrors.filter((e) => !/status of 401/.test(e)), []);
  });
});
