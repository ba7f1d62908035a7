// The Migrate dialog (issue 18) in Debian's Chromium against browser mode, with two real Hangar
// cores on this machine (two HANGAR_HOMEs; the second saved in the first's connections as
// `second` = hangar+unix://<its socket>) and the test guest running under TCG. Proves:
//   - cancel mid-way (bandwidth capped at 1 MiB/s): the dialog shows the memory phase with a RAM
//     progressbar (aria values), dirty rate and expected downtime; Cancel migration leaves the VM
//     running here and nothing on the second core;
//   - a migration to `second` (4 MiB/s): the progressbar moves at least once, the result says
//     where the VM runs and how long it paused; the VM is gone from this core's list, and
//     "Open on second" switches the window to `second`, where the VM runs;
//   - axe-core finds nothing serious on the open dialog nor in the progress state.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import { HangarHarness, sleep } from '../helpers/hangar.ts';
import type { ServeProcess } from '../helpers/hangar.ts';
import { axeViolations, openUiSession, screenshot } from './browser.ts';
import type { UiSession } from './browser.ts';

const VM = 'mig-ui';
const STAY = 'stays-here';
let session: UiSession;
let h: HangarHarness;
let second: HangarHarness;
let serve: ServeProcess;
let page: Page;
let pageErrors: string[];
let shots: string[];

before(async () => {
  const guest = await ensureTestGuest();
  session = await openUiSession({ width: 1280, height: 860 });
  ({ h, serve, page, pageErrors, shots } = session);
  // The second core: started by its first CLI call, reached by its socket.
  second = new HangarHarness();
  await second.ok(['list']);
  const sock = (await second.json<{ socketPath: string }>(['daemon', 'status'])).socketPath;
  await h.ok(['connect', 'add', 'second', `hangar+unix://${sock}`]);
  await h.json(['create', '--name', STAY, '--memory', '128', '--accel', 'tcg', '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE]);
  const vm = await h.json<{ id: string }>(['create', '--name', VM, '--memory', '128', '--accel', 'tcg', '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE]);
  await h.ok(['start', VM]);
  await h.waitForSerial(vm.id, READY_MARKER, 1, 120_000);
});

after(async () => {
  await session?.close();
  await second?.cleanup();
});

async function serious(): Promise<string[]> {
  return (await axeViolations(page)).filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.help} ${JSON.stringify(v.nodes)}`);
}

const dialog = () => page.getByRole('dialog', { name: `Migrate “${VM}”` });
const detailsState = (state: string, timeout = 30_000) => page.locator('main').getByTestId('vm-state').filter({ hasText: new RegExp(`^\\s*${state}\\s*$`, 'i') }).first().waitFor({ timeout });

/** Opens the dialog on the VM's page, picks `second` and a bandwidth, starts. */
async function startMigration(bandwidth: string): Promise<void> {
  await page.getByTestId('migrate-open').click();
  await dialog().waitFor();
  await dialog().getByTestId('migrate-destination').waitFor({ timeout: 10_000 }).catch(async (e: unknown) => {
    throw new Error(`no destination choice: ${String(e)}; the dialog says: ${await dialog().innerText()}`);
  });
  await dialog().getByTestId('migrate-destination').selectOption('second');
  await dialog().getByLabel('Bandwidth limit (MiB/s, optional)').fill(bandwidth);
  await dialog().getByTestId('migrate-submit').click();
}

/** The RAM progressbar's value once the memory phase reports figures. */
async function ramValue(): Promise<number | null> {
  const v = await dialog().getByRole('progressbar').getAttribute('aria-valuenow').catch(() => null);
  return v === null ? null : Number(v);
}

describe('the Migrate dialog', { timeout: 300_000 }, () => {
  test('progress shown live; Cancel migration leaves the VM running here and nothing on the second core; axe clean', async () => {
    const t0 = Date.now();
    await page.goto(`${serve.url}#/vm/${VM}/overview`);
    await detailsState('running');
    await page.getByTestId('migrate-open').click();
    await dialog().waitFor();
    // The destinations: the saved connections but this one (local).
    const options = await dialog().getByTestId('migrate-destination').locator('option').allInnerTexts();
    assert.equal(options.length, 1, options.join(' | '));
    assert.match(options[0]!, /^second — /);
    assert.match(await dialog().innerText(), /Shared storage: the destination uses the same disk paths/);
    await dialog().getByTestId('migrate-copy-storage').check();
    assert.match(await dialog().innerText(), /The destination gets its own copy of each writable disk/);
    await dialog().getByTestId('migrate-copy-storage').uncheck();
    // A bad bandwidth is refused at the field.
    await dialog().getByLabel('Bandwidth limit (MiB/s, optional)').fill('fast');
    await dialog().getByTestId('migrate-submit').click();
    await dialog().getByText('Enter a number of MiB/s above 0').waitFor();
    assert.equal(await dialog().getByLabel('Bandwidth limit (MiB/s, optional)').getAttribute('aria-invalid'), 'true');
    assert.deepEqual(await serious(), [], 'axe with the Migrate dialog open');
    shots.push(await screenshot(page, 'migrate-1-dialog'));
    await dialog().getByTestId('migrate-close').click();
    await dialog().waitFor({ state: 'detached' });

    await startMigration('1');
    await dialog().locator('[data-testid="migrate-progress"][data-phase="memory"]').waitFor({ timeout: 60_000 });
    await dialog().getByTestId('migrate-ram-text').filter({ hasText: /sent of/ }).waitFor({ timeout: 15_000 });
    const bar = dialog().getByRole('progressbar', { name: 'Memory' });
    assert.equal(await bar.getAttribute('aria-valuemin'), '0');
    assert.equal(await bar.getAttribute('aria-valuemax'), '100');
    assert.match(await bar.getAttribute('aria-valuetext') ?? '', /[KM]iB sent of 12\d\.\d MiB/);
    assert.match(await dialog().getByTestId('migrate-phase').innerText(), /Copying the memory/);
    assert.match(await dialog().getByTestId('migrate-dirty-rate').innerText(), /\/s$/);
    await dialog().getByTestId('migrate-expected-downtime').waitFor();
    // The toolbar says it too.
    await page.getByTestId('migration-under-way').filter({ hasText: 'Migrating to second' }).waitFor({ timeout: 10_000 });
    assert.ok((await second.json<Array<{ name: string }>>(['list'])).some((v) => v.name === VM), 'the second core prepared the VM');
    assert.deepEqual(await serious(), [], 'axe in the progress state');
    shots.push(await screenshot(page, 'migrate-2-progress'));

    await dialog().getByTestId('migrate-cancel').click();
    await dialog().locator('[data-testid="migrate-result"][data-outcome="cancelled"]').waitFor({ timeout: 30_000 });
    assert.match(await dialog().innerText(), /Migration cancelled: “mig-ui” keeps running here/);
    assert.equal(await h.state(VM), 'running');
    const deadline = Date.now() + 20_000;
    while ((await second.json<Array<{ name: string }>>(['list'])).some((v) => v.name === VM)) {
      assert.ok(Date.now() < deadline, 'the second core still has the VM');
      await sleep(300);
    }
    await dialog().getByTestId('migrate-close').click();
    await dialog().waitFor({ state: 'detached' });
    await detailsState('running');
    console.log(`cancel case: ${Date.now() - t0} ms`);
  });

  test('migrate to `second`: progress moves, done with the downtime; gone here; Open on second shows it running there', async () => {
    const t0 = Date.now();
    await page.goto(`${serve.url}#/vm/${VM}/overview`);
    await detailsState('running');
    await startMigration('4');
    // The progressbar moves at least once in the memory phase.
    const seen = new Set<number>();
    const deadline = Date.now() + 90_000;
    while (Date.now() < deadline && seen.size < 2) {
      if (await dialog().locator('[data-testid="migrate-result"]').count()) break;
      const v = await ramValue();
      if (v !== null) seen.add(v);
      await sleep(150);
    }
    assert.ok(seen.size >= 2, `the RAM progressbar moved (values seen: ${[...seen].join(', ')})`);
    await dialog().locator('[data-testid="migrate-result"][data-outcome="done"]').waitFor({ timeout: 120_000 });
    const text = await dialog().getByTestId('migrate-result').innerText();
    assert.match(text, /“mig-ui” now runs on second\. Total time [\d.]+ (ms|s); the guest was paused for [\d.]+ (ms|s)\b/);
    assert.deepEqual(await serious(), [], 'axe on the result');
    shots.push(await screenshot(page, 'migrate-3-done'));
    // Gone from this core.
    assert.ok(!(await h.json<Array<{ name: string }>>(['list'])).some((v) => v.name === VM));
    assert.equal(await second.state(VM), 'running');

    await dialog().getByTestId('migrate-open-destination').click();
    await dialog().waitFor({ state: 'detached' });
    await page.waitForURL(new RegExp(`#/vm/${VM}`));
    assert.equal(await page.getByTestId('connection-select').inputValue(), 'second');
    await detailsState('running');
    await page.getByTestId('lifecycle-toolbar').waitFor();
    shots.push(await screenshot(page, 'migrate-4-on-second'));

    // Back on this computer: the list has the other VM and not the migrated one.
    await page.getByTestId('connection-select').selectOption('local');
    await page.locator(`[data-testid="vm-row"][data-vm="${STAY}"]`).waitFor({ timeout: 15_000 });
    assert.equal(await page.locator(`[data-testid="vm-row"][data-vm="${VM}"]`).count(), 0);
    assert.deepEqual(pageErrors, []);
    console.log(`migrate case: ${Date.now() - t0} ms`);
  });
});
