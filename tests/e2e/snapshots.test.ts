// The Snapshots tab, Save / Discard saved state, the Clone dialog and the autostart switch in
// Debian's Chromium against browser mode with the real core, qemu-img and QEMU (issue 14): a
// snapshot taken from the form appears in the tree with the current position; a bad name is
// refused beside the field; the revert and delete confirmations say what is lost or merged; a
// snapshot of the running guest keeps its screen (thumbnail, full size); a running guest is saved
// and its saved state discarded; a linked clone is made from the dialog;
// axe-core finds nothing serious on the tab and the dialogs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import type { HangarHarness, ServeProcess } from '../helpers/hangar.ts';
import { axeViolations, openUiSession, screenshot } from './browser.ts';
import type { UiSession } from './browser.ts';

const VM = 'snap-ui';
let session: UiSession;
let h: HangarHarness;
let serve: ServeProcess;
let page: Page;
let pageErrors: string[];
let shots: string[];
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;

before(async () => {
  guest = await ensureTestGuest();
  session = await openUiSession({ width: 1280, height: 900 });
  ({ h, serve, page, pageErrors, shots } = session);
  // A display so that a snapshot of the running guest keeps its screen.
  await h.ok(['create', '--name', VM, '--memory', '160', '--accel', 'tcg', '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE, '--new-disk', '32M', '--display', 'vnc']);
  // Without the shared clipboard, whose channel QEMU 7.2 cannot save (the Save below needs that).
  await h.ok(['device', 'edit', VM, 'video', 'video0', 'clipboard=off']);
});

after(async () => {
  await session?.close();
});

async function serious(): Promise<string[]> {
  return (await axeViolations(page)).filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.help}`);
}
const row = (name: string) => page.locator(`[data-testid="snapshot-row"][data-name="${name}"]`);
const status = () => page.getByTestId('snapshot-status');
const detailsState = (state: string, timeout = 30_000) => page.locator('main').getByTestId('vm-state').filter({ hasText: new RegExp(`^\\s*${state}\\s*$`, 'i') }).first().waitFor({ timeout });

describe('the Snapshots tab', { timeout: 600_000 }, () => {
  test('take, revert and delete snapshots of a stopped VM; the confirmations say what is lost or merged', async () => {
    await page.goto(`${serve.url}#/vm/${VM}/snapshots`);
    await page.getByRole('tab', { name: 'Snapshots' }).waitFor();
    await page.getByText('No snapshots yet.').waitFor();
    // With memory needs a running VM: disabled with the core's reason.
    assert.equal(await page.getByTestId('snapshot-mode-memory').isDisabled(), true);
    await page.getByText('Not available: the VM is not running: there is no RAM state to save').waitFor();
    // A bad name: refused beside the field, nothing taken.
    await page.getByTestId('snapshot-name').fill('a b');
    await page.getByTestId('snapshot-create').click();
    await page.getByText('Letters, digits and . _ - + only').waitFor();
    assert.equal(await page.getByTestId('snapshot-name').getAttribute('aria-invalid'), 'true');
    assert.deepEqual((await h.json<{ snapshots: unknown[] }>(['snapshot', 'list', VM])).snapshots, []);

    await page.getByTestId('snapshot-name').fill('first');
    await page.getByTestId('snapshot-description').fill('before the change');
    await page.getByTestId('snapshot-create').click();
    await status().filter({ hasText: 'Snapshot “first” taken.' }).waitFor();
    await row('first').getByTestId('snapshot-current').waitFor();
    assert.match(await row('first').innerText(), /before the change/);
    await page.getByTestId('snapshot-name').fill('second');
    await page.getByTestId('snapshot-create').click();
    await status().filter({ hasText: 'Snapshot “second” taken.' }).waitFor();
    await row('second').getByTestId('snapshot-current').waitFor();
    assert.equal(await row('first').getAttribute('data-current'), 'false');
    shots.push(await screenshot(page, 'snapshots-1-tree'));
    assert.deepEqual(await serious(), []);

    await page.getByRole('button', { name: 'Revert to first' }).click();
    const consequence = page.getByTestId('snapshot-consequence');
    assert.match(await consequence.innerText(), /Every change to the disks since "first" .* is lost; the VM is left stopped with the disks as they were/);
    shots.push(await screenshot(page, 'snapshots-2-revert-confirm'));
    assert.deepEqual(await serious(), []);
    await page.getByTestId('snapshot-confirm').click();
    await status().filter({ hasText: 'Reverted to “first”.' }).waitFor();
    await row('first').getByTestId('snapshot-current').waitFor();

    await page.getByRole('button', { name: 'Delete snapshot second' }).click();
    assert.match(await consequence.innerText(), /The snapshot "second" is removed from the disk; the current state and every other snapshot keep their data/);
    await page.getByTestId('snapshot-confirm').click();
    await status().filter({ hasText: 'Snapshot “second” deleted.' }).waitFor();
    await row('second').waitFor({ state: 'detached' });
    const l = await h.json<{ snapshots: Array<{ name: string; description: string }>; current: string | null }>(['snapshot', 'list', VM]);
    assert.deepEqual(l.snapshots.map((s) => s.name), ['first']);
  });

  test('Save a running guest from the toolbar; the saved VM offers Discard saved state, which boots afresh', async () => {
    const { id } = await h.json<{ id: string }>(['show', VM]);
    await h.ok(['start', VM]);
    await h.waitForSerial(id, READY_MARKER, 1, 180_000);

    // A snapshot of the running guest keeps its screen: a thumbnail in the tree, full size on click,
    // the same picture `hangar snapshot screenshot` writes.
    await h.ok(['snapshot', 'create', VM, 'on-screen', '--disk-only']);
    const out = await h.ok(['snapshot', 'screenshot', VM, 'on-screen', join(h.home, 'on-screen.png')]);
    const size = /: (\d+)x(\d+) PNG of VM "snap-ui" at snapshot "on-screen"/.exec(out);
    assert.ok(size, out);
    await page.goto(`${serve.url}#/vm/${VM}/snapshots`);
    await row('on-screen').getByTestId('snapshot-picture').click();
    const full = page.getByTestId('snapshot-picture-full');
    await full.waitFor();
    const natural = await full.evaluate((img: HTMLImageElement) => img.decode().then(() => [img.naturalWidth, img.naturalHeight]));
    assert.deepEqual(natural, [Number(size[1]), Number(size[2])]);
    assert.match(await full.getAttribute('alt') ?? '', /screen when snapshot on-screen was taken/);
    assert.deepEqual(await serious(), []);
    shots.push(await screenshot(page, 'snapshots-5-picture'));
    await page.keyboard.press('Escape');
    await h.ok(['snapshot', 'delete', VM, 'on-screen']);

    await page.goto(`${serve.url}#/vm/${VM}/overview`);
    await detailsState('running');
    await page.getByTestId('lifecycle-toolbar').getByRole('button', { name: 'Save', exact: true }).click();
    await detailsState('saved', 60_000);
    assert.equal(await h.state(VM), 'saved');
    shots.push(await screenshot(page, 'snapshots-3-saved'));
    await page.getByTestId('discard-saved').click();
    assert.match(await page.getByRole('dialog').innerText(), /What the guest had in memory when it was saved is lost/);
    assert.deepEqual(await serious(), []);
    await page.getByTestId('discard-saved-confirm').click();
    await detailsState('running', 60_000);
    await h.waitForSerial(id, READY_MARKER, 2, 180_000);
    await h.ok(['destroy', VM]);
  });

  test('the Clone dialog makes a linked clone and opens it; the autostart switch sets the VM to start with the core', async () => {
    await page.goto(`${serve.url}#/vm/${VM}/overview`);
    await detailsState('stopped');
    await page.getByTestId('clone-open').click();
    await page.getByTestId('clone-name').fill('snap-ui-linked');
    await page.getByTestId('clone-linked').check();
    assert.deepEqual(await serious(), []);
    shots.push(await screenshot(page, 'snapshots-4-clone-dialog'));
    await page.getByTestId('clone-submit').click();
    await page.waitForURL(/#\/vm\/snap-ui-linked/, { timeout: 60_000 });
    const c = await h.json<{ definition: { linkedTo?: string } }>(['show', 'snap-ui-linked']);
    const src = await h.json<{ id: string }>(['show', VM]);
    assert.equal(c.definition.linkedTo, src.id);
    // The source now refuses to start, with the reason in the page.
    await page.goto(`${serve.url}#/vm/${VM}/overview`);
    await detailsState('stopped');
    await page.getByTestId('lifecycle-toolbar').getByRole('button', { name: 'Start', exact: true }).click();
    await page.getByTestId('error').filter({ hasText: 'linked clone "snap-ui-linked" reads through its disk images' }).waitFor();

    await page.getByTestId('autostart-switch').check();
    await page.waitForFunction(() => true);
    const deadline = Date.now() + 10_000;
    let on = false;
    while (!on && Date.now() < deadline) {
      on = (await h.json<{ definition: { autostart: boolean } }>(['show', VM])).definition.autostart;
      if (!on) await page.waitForTimeout(200);
    }
    assert.equal(on, true, 'the switch saved autostart');
    assert.equal(await page.getByTestId('autostart-switch').isChecked(), true);
  });

  test('no script errors in the page', () => {
    assert.deepEqual(pageErrors, []);
  });
});
