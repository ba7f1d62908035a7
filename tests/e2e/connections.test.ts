// Connections in the UI (issue 18) in Debian's Chromium against browser mode, with a real libvirtd
// (qemu:///system, started here where no service manager runs it) and a domain defined in this
// test from hand-written XML that boots the test guest under TCG. Through the switcher: a refused
// URI is shown at the field with the core's words, `qemu:///system` is added and opened; the
// domain is listed with its state, starts from the toolbar, and its Console tab shows the guest's
// ready marker arriving through `virsh console`; what libvirt cannot do through Hangar (Snapshots,
// New VM, Clone, device changes) is disabled with the reason; a link with ?connection= opens on
// it; switching back to local shows the local list (nothing of libvirt mixed in). axe-core finds
// nothing serious with the Connections dialog open and on the libvirt VM's view. Last, the Migrate
// dialog moves the running domain to a second libvirtd (its own host UUID, in its own mount
// namespace: tests/helpers/second-libvirtd.ts) with virsh migrate --live, progress shown.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import type { HangarHarness, ServeProcess } from '../helpers/hangar.ts';
import { ensureLibvirtd, libvirtGuestFiles, removeDomains, testPrefix, virsh } from '../helpers/libvirtd.ts';
import { startSecondLibvirtd } from '../helpers/second-libvirtd.ts';
import type { SecondLibvirtd } from '../helpers/second-libvirtd.ts';
import { axeViolations, openUiSession, screenshot, waitConsole } from './browser.ts';
import type { UiSession } from './browser.ts';

const PREFIX = testPrefix('ui-conn');
const DOMAIN = `${PREFIX}web`;
const LOCAL_VM = 'here';
let session: UiSession;
let h: HangarHarness;
let serve: ServeProcess;
let page: Page;
let pageErrors: string[];
let shots: string[];
let files: Awaited<ReturnType<typeof libvirtGuestFiles>> | null = null;
let secondLibvirt: SecondLibvirtd | null = null;

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;');
}

before(async () => {
  await ensureLibvirtd();
  const guest = await ensureTestGuest();
  await removeDomains(PREFIX);
  // libvirt's QEMU runs as libvirt-qemu: the kernel and initrd go to a world-readable dir under /var/tmp.
  files = await libvirtGuestFiles(guest);
  const xml = `<domain type='qemu'>
  <name>${xmlEscape(DOMAIN)}</name>
  <memory unit='MiB'>192</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${xmlEscape(files.kernel)}</kernel>
    <initrd>${xmlEscape(files.initrd)}</initrd>
    <cmdline>${xmlEscape(GUEST_CMDLINE)}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'/>
  </devices>
</domain>
`;
  const file = join(files.dir, 'domain.xml');
  await writeFile(file, xml);
  await virsh(['define', file]);
  session = await openUiSession({ width: 1280, height: 860 });
  ({ h, serve, page, pageErrors, shots } = session);
  await h.json(['create', '--name', LOCAL_VM, '--memory', '128', '--accel', 'tcg', '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE]);
});

after(async () => {
  await removeDomains(PREFIX).catch((e: unknown) => console.error(e));
  await secondLibvirt?.stop().catch((e: unknown) => console.error(e));
  await files?.cleanup();
  await session?.close();
});

async function serious(): Promise<string[]> {
  return (await axeViolations(page)).filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.help} ${JSON.stringify(v.nodes)}`);
}

const row = (name: string) => page.locator(`[data-testid="vm-row"][data-vm="${name}"]`);
const toolbar = () => page.getByTestId('lifecycle-toolbar');
const select = () => page.getByTestId('connection-select');

async function rowState(name: string, state: string, timeout = 15_000): Promise<void> {
  await page.locator(`[data-testid="vm-row"][data-vm="${name}"][data-state="${state}"]`).waitFor({ timeout });
}

async function detailsState(state: string, timeout = 15_000): Promise<void> {
  await page.locator('main').getByTestId('vm-state').filter({ hasText: new RegExp(`^\\s*${state.replace('-', '[ -]')}\\s*$`, 'i') }).first().waitFor({ timeout });
}

describe('connections in the UI', { timeout: 600_000 }, () => {
  test('the switcher: a refused URI shown at the field, qemu:///system added and opened, its domain listed; axe clean with the dialog open', async () => {
    const t0 = Date.now();
    await page.goto(serve.url);
    await row(LOCAL_VM).waitFor();
    assert.equal(await select().inputValue(), 'local');
    assert.match(await page.getByLabel('Connection', { exact: true }).locator('option:checked').innerText(), /Hangar on this computer/);

    await page.getByTestId('connections-manage').click();
    const dialog = page.getByRole('dialog', { name: 'Connections' });
    await dialog.waitFor();
    assert.match(await dialog.getByTestId('connection-list').innerText(), /local/);
    assert.equal(await dialog.getByTestId('connection-remove-local').count(), 0, 'local cannot be removed');
    await dialog.getByLabel('Name').fill('lv');
    await dialog.getByLabel('URI').fill('qemu://elsewhere/system');
    await dialog.getByTestId('connection-add-submit').click();
    const err = dialog.getByTestId('connection-add-error');
    await err.waitFor();
    assert.match(await err.innerText(), /needs a transport/);
    assert.equal(await dialog.getByLabel('URI').getAttribute('aria-invalid'), 'true');
    assert.deepEqual(await serious(), [], 'axe with the Connections dialog open');
    shots.push(await screenshot(page, 'connections-dialog'));

    await dialog.getByLabel('URI').fill('qemu:///system');
    await dialog.getByTestId('connection-add-submit').click();
    await dialog.waitFor({ state: 'detached' });
    assert.equal(await select().inputValue(), 'lv');
    await page.getByTestId('list-connection').filter({ hasText: /libvirt system/ }).waitFor();
    await rowState(DOMAIN, 'stopped', 30_000);
    assert.equal(await row(LOCAL_VM).count(), 0, 'no local VM in the libvirt list');

    // What libvirt cannot do through Hangar: the New VM wizard (it needs the create preview and the
    // host's facts, which the libvirt driver does not give) is disabled, and says why.
    const newVm = page.getByTestId('new-vm');
    assert.equal(await newVm.isDisabled(), true);
    assert.match(await newVm.getAttribute('title') ?? '', /^Not available on libvirt system \(this computer\): \S/);
    await page.goto(`${serve.url}#/new`);
    await page.locator('[data-testid="unsupported-notice"]').filter({ hasText: /Creating a VM: not available on libvirt system/ }).waitFor();
    assert.equal(await page.getByTestId('wizard').count(), 0);
    await page.goto(serve.url);
    await rowState(DOMAIN, 'stopped');
    // The saved list now has it, and it can be removed (not local).
    await page.getByTestId('connections-manage').click();
    assert.equal(await page.getByTestId('connection-remove-lv').count(), 1);
    await page.getByRole('dialog', { name: 'Connections' }).getByRole('button', { name: 'Close' }).click();
    shots.push(await screenshot(page, 'connections-libvirt-list'));
    console.log(`switcher + libvirt list: ${Date.now() - t0} ms`);
  });

  test('the libvirt domain: Start from the toolbar, the ready marker through virsh console, Snapshots and Clone disabled with the reason; axe clean', async () => {
    const t0 = Date.now();
    await row(DOMAIN).getByText(DOMAIN, { exact: true }).click();
    await page.getByRole('tab', { name: 'Overview' }).waitFor();
    await detailsState('stopped');
    // Open the console first: virsh console has no scrollback, so it must be there when the guest boots.
    await page.getByRole('tab', { name: 'Console' }).click();
    await page.getByText('VM is not running').waitFor();
    const clone = toolbar().getByTestId('clone-open');
    assert.equal(await clone.isDisabled(), true);
    assert.match(await clone.getAttribute('title') ?? '', /Not available on libvirt/);
    assert.match(await page.getByTestId('toolbar-unavailable').innerText(), /Clone \(.*libvirt driver does not do this yet\)/);
    const tStart = Date.now();
    await toolbar().getByRole('button', { name: 'Start', exact: true }).click();
    await detailsState('running', 60_000);
    await waitConsole(page, (t) => t.includes(READY_MARKER), 'the guest\'s ready marker through virsh console', 180_000);
    console.log(`libvirt start to ready marker in the Console tab: ${Date.now() - tStart} ms`);
    assert.ok(/running/.test(await virsh(['domstate', DOMAIN])), 'libvirt says running');
    shots.push(await screenshot(page, 'connections-libvirt-console'));
    assert.deepEqual(await serious(), [], 'axe on the libvirt VM\'s console');

    await page.getByRole('tab', { name: 'Snapshots' }).click();
    const notice = page.getByTestId('unsupported-notice');
    await notice.waitFor();
    assert.match(await notice.innerText(), /Snapshots: not available on libvirt system \(this computer\)/);
    assert.match(await notice.innerText(), /libvirt driver does not do this yet/);
    await page.getByRole('tab', { name: 'Devices' }).click();
    await page.getByTestId('devices-unavailable').waitFor();
    const addDisk = page.getByTestId('add-disk');
    assert.equal(await addDisk.isDisabled(), true);
    assert.match(await addDisk.getAttribute('title') ?? '', /Not available on libvirt/);
    await page.getByRole('tab', { name: 'Overview' }).click();
    await page.locator('[data-testid="unsupported-notice"][data-method="commandLine"]').waitFor();
    // Autostart is libvirt's own here (libvirtd starts the domain), not the Hangar core's.
    await page.locator('label.checkbox').filter({ hasText: 'Start with libvirtd' }).waitFor();
    assert.deepEqual(await serious(), [], 'axe on the libvirt VM\'s overview');
    shots.push(await screenshot(page, 'connections-libvirt-overview'));

    // Force Off from the toolbar, confirmed.
    await toolbar().getByRole('button', { name: 'Force Off', exact: true }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Force Off', exact: true }).click();
    await detailsState('stopped', 30_000);
    assert.match(await virsh(['domstate', DOMAIN]), /shut off/);
    console.log(`libvirt VM view: ${Date.now() - t0} ms`);
  });

  test('a ?connection= link opens on that connection; switching back to local shows the local list only', async () => {
    await page.goto(`${serve.url}&connection=lv`);
    await rowState(DOMAIN, 'stopped');
    assert.equal(await select().inputValue(), 'lv');

    await select().selectOption('local');
    await row(LOCAL_VM).waitFor();
    assert.equal(await row(DOMAIN).count(), 0, 'no libvirt domain in the local list');
    await page.getByTestId('list-connection').filter({ hasText: /Hangar on this computer/ }).waitFor();
    const newVm = page.getByTestId('new-vm');
    assert.equal(await newVm.isEnabled(), true);
    assert.equal(await newVm.getAttribute('href') !== null, true, 'New VM is a link again');
    // Remembered: a reload (the link's ?connection= now says local) stays on local.
    assert.match(page.url(), /connection=local/);
    await page.reload();
    await row(LOCAL_VM).waitFor();
    assert.equal(await select().inputValue(), 'local');
    assert.deepEqual(pageErrors, []);
  });

  test('the Migrate dialog moves the running domain to a second libvirt host: progress, done, Open on it; axe clean', async () => {
    const t0 = Date.now();
    secondLibvirt = await startSecondLibvirtd();
    await h.ok(['connect', 'add', 'lv2', secondLibvirt.uri]);
    await virsh(['start', DOMAIN]);
    await page.goto(`${serve.url}&connection=lv#/vm/${DOMAIN}/overview`);
    await detailsState('running', 30_000);
    const dialog = page.getByRole('dialog', { name: `Migrate “${DOMAIN}”` });
    await page.getByTestId('migrate-open').click();
    await dialog.waitFor();
    // Only libvirt hosts are offered to a libvirt domain: not local, not this connection.
    const options = await dialog.getByTestId('migrate-destination').locator('option').allInnerTexts();
    assert.deepEqual(options.map((o) => o.split(' — ')[0]), ['lv2'], options.join(' | '));
    await dialog.getByTestId('migrate-destination').selectOption('lv2');
    // 12 MiB/s: slow enough for the progress to be seen (libvirt sends all ~200 MiB of RAM under TCG).
    await dialog.getByLabel('Bandwidth limit (MiB/s, optional)').fill('12');
    await dialog.getByTestId('migrate-submit').click();
    await dialog.locator('[data-testid="migrate-progress"][data-phase="memory"]').waitFor({ timeout: 60_000 });
    await dialog.getByTestId('migrate-ram-text').filter({ hasText: /sent of/ }).waitFor({ timeout: 15_000 });
    assert.deepEqual(await serious(), [], 'axe in the progress state of a libvirt migration');
    shots.push(await screenshot(page, 'connections-libvirt-migrating'));
    await dialog.locator('[data-testid="migrate-result"][data-outcome="done"]').waitFor({ timeout: 180_000 });
    assert.match(await dialog.getByTestId('migrate-result').innerText(), new RegExp(`“${DOMAIN}” now runs on lv2\\. Total time \\d.*; the guest was paused for \\d`));
    assert.match(await secondLibvirt.virsh(['domstate', DOMAIN]), /running/);
    assert.ok(!(await virsh(['list', '--all', '--name'])).includes(DOMAIN), 'undefined on the source');

    await dialog.getByTestId('migrate-open-destination').click();
    await dialog.waitFor({ state: 'detached' });
    assert.equal(await select().inputValue(), 'lv2');
    await detailsState('running');
    shots.push(await screenshot(page, 'connections-libvirt-migrated'));
    assert.deepEqual(pageErrors, []);
    console.log(`libvirt migration in the UI: ${Date.now() - t0} ms`);
  });
});
