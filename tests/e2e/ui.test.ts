// The real UI in Debian's Chromium against browser mode, with the real core and real QEMU (TCG)
// booting the test guest. Changes are also made behind the UI's back (CLI, guest, kill -9) to
// prove the UI follows the core's events.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { copyFileSync, existsSync, rmSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { ensureTestGuest, READY_MARKER } from '../guest/guest.ts';
import { HangarHarness } from '../helpers/hangar.ts';
import type { ServeProcess } from '../helpers/hangar.ts';
import { axeViolations, openUiSession, screenshot, waitConsole as waitConsoleIn } from './browser.ts';
import type { UiSession } from './browser.ts';
import { populate } from '../../bench/scale.ts';

const APPEND = 'console=ttyS0 quiet panic=-1';
const BOOT_MS = 90_000;

let session: UiSession;
let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;
let serve: ServeProcess;
let browser: Browser;
let page: Page;
let pageErrors: string[];
let shots: string[];

before(async () => {
  guest = await ensureTestGuest();
  session = await openUiSession();
  ({ h, serve, browser, page, pageErrors, shots } = session);
});

after(async () => {
  await session?.close();
});

async function createVm(name: string): Promise<{ id: string }> {
  return h.json<{ id: string }>(['create', '--name', name, '--memory', '256', '--accel', 'tcg',
    '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', APPEND]);
}

const row = (name: string) => page.locator(`[data-testid="vm-row"][data-vm="${name}"]`);
const toolbar = () => page.getByTestId('lifecycle-toolbar');

async function rowState(name: string, state: string, timeout = 10_000): Promise<void> {
  await page.locator(`[data-testid="vm-row"][data-vm="${name}"][data-state="${state}"]`).waitFor({ timeout });
  assert.equal((await row(name).getByTestId('vm-state').innerText()).trim().toLowerCase(), state.replace('-', ' '));
}

async function detailsState(state: string, timeout = 10_000): Promise<void> {
  await page.locator('main').getByTestId('vm-state').filter({ hasText: new RegExp(`^\\s*${state.replace('-', '[ -]')}\\s*$`, 'i') }).first().waitFor({ timeout });
}

function waitConsole(pred: (t: string) => boolean, what: string, timeout = BOOT_MS): Promise<void> {
  return waitConsoleIn(page, pred, what, timeout);
}

async function openDetails(name: string): Promise<void> {
  await page.goto(serve.url);
  await row(name).getByText(name, { exact: true }).click();
  await page.getByRole('tab', { name: 'Overview' }).waitFor();
}

describe('VM list and details', () => {
  test('a VM created with the CLI appears in the list, stopped', async () => {
    await page.goto(serve.url);
    await page.getByTestId('vm-list').waitFor({ state: 'attached' });
    await createVm('e2e-a');
    await rowState('e2e-a', 'stopped');
    assert.match(await row('e2e-a').innerText(), /256 MiB/);
    // A stopped VM has no address: "—" on screen, said as "no guest agent".
    assert.equal(await row('e2e-a').getByRole('gridcell', { name: 'no guest agent', exact: true }).count(), 1);
    assert.equal((await row('e2e-a').getByTestId('guest-address').locator('[aria-hidden="true"]').innerText()).trim(), '—');
    shots.push(await screenshot(page, 'vm-list'));
  });

  test('details show the configuration and the QEMU command line, with copy', async () => {
    await openDetails('e2e-a');
    await detailsState('stopped');
    const cmd = await page.getByTestId('command-line').innerText();
    assert.match(cmd, /qemu-system-x86_64/);
    assert.match(cmd, /-nodefaults/);
    assert.match(await page.getByTestId('config-summary').innerText(), /256 MiB/);
    assert.ok(await page.getByRole('button', { name: 'Copy command line' }).isVisible());
    for (const [name, enabled] of [['Start', true], ['Shut Down', false], ['Force Off', false], ['Pause', false], ['Delete', true]] as const) {
      assert.equal(await toolbar().getByRole('button', { name, exact: true }).isEnabled(), enabled, name);
    }
    shots.push(await screenshot(page, 'vm-details-overview'));
    await page.getByRole('tab', { name: 'Devices' }).click();
    assert.match(await page.getByTestId('devices-summary').innerText(), /serial|Serial/);
  });
});

describe('lifecycle and console from the UI', () => {
  test('Start from the UI, the ready marker in the xterm console, typing gets an answer', async () => {
    await openDetails('e2e-a');
    await page.getByRole('tab', { name: 'Console' }).click();
    await page.getByText('VM is not running').waitFor();
    await toolbar().getByRole('button', { name: 'Start', exact: true }).click();
    await detailsState('running', 30_000);
    await waitConsole((t) => t.includes(READY_MARKER), 'the ready marker');
    await page.waitForTimeout(700); // busybox's prompt queries the terminal first
    await page.locator('[data-testid="console"] .xterm').click();
    await page.keyboard.type('echo $((6*7))');
    await page.keyboard.press('Enter');
    await waitConsole((t) => /^42\s*$/m.test(t), 'the answer 42', 20_000);
    shots.push(await screenshot(page, 'vm-console'));
  });

  test('the Overview shows the guest OS and hostname the guest agent reports', async () => {
    await page.getByRole('tab', { name: 'Overview' }).click();
    await page.getByTestId('guest-os').filter({ hasText: 'Hangar Test Guest 1' }).waitFor({ timeout: 40_000 });
    assert.match(await page.getByTestId('guest-agent').innerText(), /hangar-guest/);
    assert.equal(await page.getByTestId('shutdown-mode').inputValue(), 'auto');
    shots.push(await screenshot(page, 'vm-overview-guest'));
    await page.getByRole('tab', { name: 'Console' }).click();
  });

  test('Shut Down from the UI -> stopped, the console says so', async () => {
    await toolbar().getByRole('button', { name: 'Shut Down', exact: true }).click();
    await detailsState('stopped', 60_000);
    await page.getByText('VM is not running').waitFor();
  });

  test('the console reconnects by itself when the VM starts again', async () => {
    const { id } = await h.json<{ id: string }>(['show', 'e2e-a']);
    await h.ok(['start', 'e2e-a']);
    await detailsState('running', 10_000);
    await h.waitForSerial(id, READY_MARKER, 2);
    await waitConsole((t) => t.includes(READY_MARKER), 'the new boot');
    await page.waitForTimeout(700);
    await page.locator('[data-testid="console"] .xterm').click();
    await page.keyboard.type('echo $((6*7))1');
    await page.keyboard.press('Enter');
    await waitConsole((t) => /^421\s*$/m.test(t), 'an answer from the new boot', 20_000);
  });
});

describe('the UI follows changes made elsewhere', () => {
  test('start and stop with the CLI behind the UI', async () => {
    await createVm('e2e-b');
    await page.goto(serve.url);
    await rowState('e2e-b', 'stopped');
    await h.ok(['start', 'e2e-b']);
    await rowState('e2e-b', 'running', 5_000);
    await h.ok(['destroy', 'e2e-b']);
    await rowState('e2e-b', 'stopped', 5_000);
  });

  test('QEMU killed -> crashed', async () => {
    await h.ok(['start', 'e2e-b']);
    await rowState('e2e-b', 'running', 5_000);
    const { pid } = await h.json<{ pid: number }>(['show', 'e2e-b']);
    assert.ok(pid > 0);
    process.kill(pid, 'SIGKILL');
    await rowState('e2e-b', 'crashed', 5_000);
  });

  test('a guest powering itself off -> stopped', async () => {
    const { id } = await h.json<{ id: string }>(['show', 'e2e-a']);
    await h.waitForSerial(id, READY_MARKER);
    await page.goto(serve.url);
    await rowState('e2e-a', 'running');
    await h.consoleCommand('e2e-a', 'poweroff -f', 1);
    await rowState('e2e-a', 'stopped', 30_000);
  });
});

describe('confirmations and errors', () => {
  test('Force Off asks first; Cancel keeps the VM running', async () => {
    await h.ok(['start', 'e2e-b']);
    await openDetails('e2e-b');
    await detailsState('running', 10_000);
    await toolbar().getByRole('button', { name: 'Force Off', exact: true }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    shots.push(await screenshot(page, 'force-off-dialog'));
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'hidden' });
    assert.equal(await h.state('e2e-b'), 'running');
    await toolbar().getByRole('button', { name: 'Force Off', exact: true }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Force Off' }).click();
    await detailsState('stopped', 20_000);
  });

  test('a failing start shows the core\'s message and fix, not a stack trace', async () => {
    // create checks the kernel (it must be there); it vanishes afterwards and start refuses with the fix.
    copyFileSync(guest.kernel, `${h.home}/kernel-that-will-vanish`);
    await h.ok(['create', '--name', 'e2e-broken', '--memory', '256', '--accel', 'tcg', '--new-disk', '16M',
      '--kernel', `${h.home}/kernel-that-will-vanish`, '--initrd', guest.initrd]);
    rmSync(`${h.home}/kernel-that-will-vanish`);
    await openDetails('e2e-broken');
    await toolbar().getByRole('button', { name: 'Start', exact: true }).click();
    const alert = page.getByTestId('error').filter({ hasText: 'cannot start' });
    await alert.waitFor({ timeout: 20_000 });
    const text = await alert.innerText();
    assert.match(text, /kernel file .*kernel-that-will-vanish does not exist/);
    assert.match(text, /restore the file/, 'the fix is shown');
    assert.doesNotMatch(text, /\n\s+at .+:\d+:\d+/, 'no stack trace');
    shots.push(await screenshot(page, 'error-message'));
    await alert.getByRole('button', { name: 'Dismiss' }).click();
  });

  test('Delete keeps the disk images unless asked', async () => {
    const info = await h.json<{ definition: { disks: Array<{ file: string }> } }>(['show', 'e2e-broken']);
    const disk = info.definition.disks[0]!.file;
    assert.ok(existsSync(disk));
    await openDetails('e2e-broken');
    await toolbar().getByRole('button', { name: 'Delete', exact: true }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    assert.equal(await dialog.getByRole('checkbox', { name: 'Also delete disk images' }).isChecked(), false);
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await page.getByTestId('vm-list').waitFor({ state: 'attached' });
    await row('e2e-broken').waitFor({ state: 'detached', timeout: 10_000 });
    assert.notEqual((await h.run(['show', 'e2e-broken'])).code, 0, 'the VM is gone');
    assert.ok(existsSync(disk), `the disk image ${disk} was kept`);
  });
});

describe('browser-mode security, seen from a browser', () => {
  test('a page without the token is refused', async () => {
    const p = await browser.newPage();
    const res = await p.goto(serve.origin + '/');
    assert.equal(res?.status(), 401);
    assert.match(await p.innerText('body'), /token/);
    await p.close();
  });

  test('a page from another origin cannot open the WebSocket API, even with the token', async () => {
    const evil: Server = createServer((_req, res) => {
      res.setHeader('Content-Type', 'text/html');
      res.end('<!doctype html><title>evil</title>');
    });
    await new Promise<void>((r) => evil.listen(0, '127.0.0.1', () => r()));
    try {
      const p = await browser.newPage();
      await p.goto(`http://127.0.0.1:${(evil.address() as AddressInfo).port}/`);
      const outcome = await p.evaluate(async (url) => new Promise<string>((resolve) => {
        const ws = new WebSocket(url);
        ws.onopen = () => resolve('opened');
        ws.onerror = () => resolve('refused');
      }), serve.url.replace('http://', 'ws://').replace('/?token=', '/api/rpc?token='));
      assert.equal(outcome, 'refused');
      await p.close();
    } finally {
      evil.close();
    }
  });
});

describe('accessibility', () => {
  test('axe-core finds no serious or critical violations in the list and details views', async () => {
    await page.goto(serve.url);
    await page.getByTestId('vm-list').waitFor({ state: 'attached' });
    await row('e2e-a').waitFor();
    const listIssues = (await axeViolations(page)).filter((v) => v.impact === 'serious' || v.impact === 'critical');
    assert.deepEqual(listIssues, [], 'list view');
    await openDetails('e2e-a');
    const detailIssues = (await axeViolations(page)).filter((v) => v.impact === 'serious' || v.impact === 'critical');
    assert.deepEqual(detailIssues, [], 'details view');
  });

  test('dark theme follows the system and keeps contrast', async () => {
    await page.emulateMedia({ colorScheme: 'dark' });
    try {
      await page.goto(serve.url);
      await row('e2e-a').waitFor();
      const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      const [r, g, b] = bg.match(/\d+/g)!.map(Number);
      assert.ok(r! + g! + b! < 200, `dark background expected, got ${bg}`);
      const issues = (await axeViolations(page)).filter((v) => v.impact === 'serious' || v.impact === 'critical');
      assert.deepEqual(issues, [], 'dark list view');
      shots.push(await screenshot(page, 'vm-list-dark'));
    } finally {
      await page.emulateMedia({ colorScheme: 'light' });
    }
  });

  test('keyboard only: arrow keys select a VM, Enter opens it', async () => {
    await page.goto(serve.url);
    await row('e2e-a').waitFor();
    await page.getByTestId('vm-list').focus();
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Enter');
    await page.getByRole('tab', { name: 'Overview' }).waitFor();
    assert.match(page.url(), /#\/vm\/e2e-/);
  });

  test('the page raised no script errors', () => {
    assert.deepEqual(pageErrors.filter((e) => !/status of 401/.test(e)), []);
  });
});

describe('many VMs', () => {
  test('the list is virtualized: few rows in the DOM, the last VM reachable by scrolling', async () => {
    const many = new HangarHarness();
    await populate(many, 400);
    const s = await many.serve();
    try {
      const p = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      await p.goto(s.url);
      await p.locator('[data-testid="vm-row"]').first().waitFor();
      assert.match(await p.getByTestId('vm-count').innerText(), /^400 VMs/);
      const inDom = await p.locator('[data-testid="vm-row"]').count();
      assert.ok(inDom > 5 && inDom < 60, `${inDom} rows in the DOM for 400 VMs`);
      await p.getByTestId('vm-list').evaluate((el) => { el.scrollTop = el.scrollHeight; });
      await p.locator('[data-testid="vm-row"][data-vm="vm-0399"]').waitFor({ timeout: 5_000 });
      await p.close();
    } finally {
      await s.stop();
      await many.cleanup();
    }
  });
});
