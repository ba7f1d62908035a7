// The Display tab (noVNC over Hangar's display channel) in Debian's Chromium against browser
// mode, with the real core, real QEMU (TCG) and the real test guest drawing a shell on tty1 of a
// VGA screen. One booted guest serves every case that allows it; changes are also made behind
// the UI's back (the API destroys and starts the VM) to prove the view follows.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Page } from 'playwright-core';
import type { CoreClient } from '../../core/common/core-client.ts';
import { ensureTestGuest, GRUB_MENU_ENTRY, GUEST_CMDLINE, POINTER_PREFIX, READY_MARKER } from '../guest/guest.ts';
import type { HangarHarness } from '../helpers/hangar.ts';
import { wsCoreClient } from '../helpers/ws-client.ts';
import { axeViolations, openUiSession, screenshot } from './browser.ts';
import type { UiSession } from './browser.ts';

/** Printed on ttyS0 by the test guest once its tty1 shell prompt is on the screen. */
const SCREEN_READY = 'HANGAR-SCREEN-READY';
const VM = 'disp';
const HEADLESS = 'headless';
const BOOT_MS = 120_000;

let session: UiSession;
let h: HangarHarness;
let page: Page;
let core: CoreClient;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;

before(async () => {
  guest = await ensureTestGuest();
  session = await openUiSession();
  ({ h, page } = session);
  core = await wsCoreClient(session.serve);
  // The test guest's kernel + initrd with a VGA screen (the CLI adds the USB tablet with it).
  await h.ok(['create', '--name', VM, '--memory', '256', '--accel', 'tcg',
    '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE, '--video', 'vga']);
  await h.ok(['create', '--name', HEADLESS, '--memory', '256', '--accel', 'tcg', '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE]);
});

after(async () => {
  core?.close();
  await session?.close();
});

/** The VM's serial output so far (the core's log, through the API). */
async function serial(vm = VM): Promise<string> {
  return Buffer.from(await core.api.serialLog(vm), 'base64').toString('latin1');
}

async function waitSerial(text: string, count = 1, timeout = BOOT_MS, vm = VM): Promise<void> {
  const deadline = Date.now() + timeout;
  let log = '';
  while (Date.now() < deadline) {
    log = await serial(vm);
    if (log.split(text).length - 1 >= count) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`"${text}" (x${count}) not in the serial log within ${timeout} ms; tail:\n${log.slice(-1500)}`);
}

const count = (log: string, text: string): number => log.split(text).length - 1;

/**
 * Types as a person does, Shift held for capitals and '>' (Playwright's keyboard.type sends a
 * capital's key without Shift; noVNC sends physical keys, so the guest would see lower case).
 */
async function typeLikeAPerson(p: Page, text: string): Promise<void> {
  for (const ch of text) {
    const shifted: Record<string, string> = { '>': 'Period', '&': 'Digit7', '$': 'Digit4', '!': 'Digit1' };
    if (shifted[ch]) await p.keyboard.press(`Shift+${shifted[ch]}`);
    else if (/[A-Z]/.test(ch)) await p.keyboard.press(`Shift+Key${ch}`);
    else await p.keyboard.press(ch === ' ' ? 'Space' : ch);
    await p.waitForTimeout(20);
  }
}

async function waitStatus(p: Page, re: RegExp, timeout = 30_000): Promise<void> {
  await p.getByTestId('display-status').filter({ hasText: re }).waitFor({ timeout });
}

interface Sample { width: number; height: number; pixels: number[] }
const GRID_W = 64;
const GRID_H = 40;

/**
 * What the page's noVNC canvas shows and a screenshot the core took at the same time, both
 * shrunk to 64x40 grey levels in the page (so the compare is fuzzy: a blinking cursor or a
 * scaling filter does not matter, a blank or wrong screen does).
 */
async function canvasAndScreenshot(p: Page, vm = VM): Promise<{ canvas: Sample; shot: Sample }> {
  const shot = await core.api.screenshot(vm);
  // No named helpers inside: the test runner's transform would reference its own __name there.
  return p.evaluate(async ({ png, w, h }) => {
    const canvas = document.querySelector<HTMLCanvasElement>('[data-testid="display-screen"] canvas');
    if (!canvas) throw new Error('no noVNC canvas in the Display tab');
    const img = new Image();
    img.src = `data:image/png;base64,${png}`;
    await img.decode();
    const out: Sample[] = [];
    for (const [src, sw, sh] of [[canvas, canvas.width, canvas.height], [img, img.naturalWidth, img.naturalHeight]] as const) {
      const c = document.createElement('canvas');
      c.width = w;
      c.height = h;
      const ctx = c.getContext('2d')!;
      ctx.imageSmoothingQuality = 'high';
      ctx.drawImage(src, 0, 0, w, h);
      const d = ctx.getImageData(0, 0, w, h).data;
      const pixels: number[] = [];
      for (let i = 0; i < d.length; i += 4) pixels.push(Math.round((d[i]! + d[i + 1]! + d[i + 2]!) / 3));
      out.push({ width: sw, height: sh, pixels });
    }
    return { canvas: out[0]!, shot: out[1]! };
  }, { png: shot.pngBase64, w: GRID_W, h: GRID_H });
}

function meanDiff(a: number[], b: number[]): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i]! - b[i]!);
  return sum / a.length;
}

/** Cells that are not background: a screen with text on it has some. */
function litCells(s: Sample): number {
  return s.pixels.filter((v) => v > 40).length;
}

/** Waits until the canvas shows what the core's screenshot shows (and that is not a blank screen). */
async function screenMatches(p: Page, what: string, timeout = 30_000, vm = VM): Promise<Sample> {
  const deadline = Date.now() + timeout;
  let last = '';
  while (Date.now() < deadline) {
    const { canvas, shot } = await canvasAndScreenshot(p, vm);
    const diff = meanDiff(canvas.pixels, shot.pixels);
    last = `canvas ${canvas.width}x${canvas.height}, screenshot ${shot.width}x${shot.height}, mean difference ${diff.toFixed(1)}/255, lit cells ${litCells(canvas)}/${GRID_W * GRID_H}`;
    if (canvas.width === shot.width && canvas.height === shot.height && diff < 8 && litCells(canvas) >= 10) return canvas;
    await p.waitForTimeout(500);
  }
  throw new Error(`${what}: the Display tab does not show the guest's screen (${last})`);
}

async function seriousAxe(p: Page): Promise<unknown[]> {
  return (await axeViolations(p)).filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

describe('a VM without a display', () => {
  test('shows "No display" with the reason, keeps the Console first, and "Add a display" adds a video device and a tablet', async () => {
    await page.goto(`${session.serve.url}#/vm/${HEADLESS}`);
    const tabs = page.getByRole('tab');
    await page.getByRole('tab', { name: 'Overview' }).waitFor();
    assert.deepEqual((await tabs.allInnerTexts()).map((t) => t.trim()), ['Overview', 'Console', 'Display', 'Terminal', 'Devices', 'Snapshots', 'Performance'], 'headless: the serial console before the display');
    assert.equal(await page.getByRole('tab', { name: 'Overview' }).getAttribute('aria-selected'), 'true', 'opens on the Overview');
    await page.getByRole('tab', { name: 'Display' }).click();
    const none = page.getByTestId('display-none');
    await none.waitFor();
    assert.match(await none.innerText(), /No display/);
    assert.match(await none.innerText(), /no video device/);
    assert.deepEqual(await seriousAxe(page), [], 'axe: No display');
    session.shots.push(await screenshot(page, 'display-none'));
    await page.getByTestId('add-display').click();
    await page.getByTestId('display-status').filter({ hasText: 'VM is not running' }).waitFor({ timeout: 15_000 });
    const info = await h.json<{ definition: { video: { model: string; display: string }; inputs: Array<{ type: string; bus: string }> } }>(['show', HEADLESS]);
    assert.equal(info.definition.video.display, 'vnc');
    assert.notEqual(info.definition.video.model, 'none');
    assert.ok(info.definition.inputs.some((i) => i.type === 'tablet' && i.bus === 'usb'), 'a USB tablet');
  });
});

describe('the Display tab on a running VM', () => {
  test('opens first on a VM with a display and shows the guest\'s screen (the canvas matches a screendump)', { timeout: BOOT_MS + 60_000 }, async () => {
    await page.goto(`${session.serve.url}#/vm/${VM}`);
    await page.getByRole('tab', { name: 'Display' }).waitFor();
    assert.deepEqual((await page.getByRole('tab').allInnerTexts()).map((t) => t.trim()), ['Display', 'Overview', 'Console', 'Terminal', 'Devices', 'Snapshots', 'Performance']);
    assert.equal(await page.getByRole('tab', { name: 'Display' }).getAttribute('aria-selected'), 'true');
    await page.getByTestId('display-status').filter({ hasText: 'VM is not running' }).waitFor();
    await page.getByTestId('lifecycle-toolbar').getByRole('button', { name: 'Start', exact: true }).click();
    await waitSerial(READY_MARKER);
    await waitStatus(page, /^Connected/);
    await waitSerial(SCREEN_READY);
    await screenMatches(page, 'first boot');
    session.shots.push(await screenshot(page, 'display-tab'));
  });

  test('text typed into the canvas reaches the shell on tty1', async () => {
    const marker = `hangar-typed-${randomBytes(4).toString('hex')}`;
    await page.locator('[data-testid="display-screen"] canvas').click();
    await page.getByTestId('display-grab').filter({ hasText: 'Keyboard captured' }).waitFor();
    await typeLikeAPerson(page, `echo ${marker} > /dev/ttyS0`);
    await page.keyboard.press('Enter');
    await waitSerial(marker, 1, 30_000);
    // Ctrl+Alt gives the keyboard back.
    await page.keyboard.down('Control');
    await page.keyboard.down('Alt');
    await page.keyboard.up('Alt');
    await page.keyboard.up('Control');
    await page.getByTestId('display-grab').filter({ hasText: 'Click the screen' }).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('data-testid')), 'display-capture', 'focus lands on Capture keyboard');
  });

  test('the mouse moves the guest\'s pointer (the USB tablet) where the canvas is pointed at', async () => {
    const canvas = page.locator('[data-testid="display-screen"] canvas');
    await canvas.click();
    await page.getByTestId('display-grab').filter({ hasText: 'Keyboard captured' }).waitFor();
    await typeLikeAPerson(page, 'pointer-watch &');
    await page.keyboard.press('Enter');
    await waitSerial(`${POINTER_PREFIX} watching`, 1, 30_000).catch(async (e: unknown) => {
      session.shots.push(await screenshot(page, 'display-pointer-failed'));
      throw e;
    });
    const box = (await canvas.boundingBox())!;
    for (const [fx, fy] of [[0.25, 0.25], [0.75, 0.6]] as const) {
      await page.mouse.move(box.x + box.width * fx, box.y + box.height * fy, { steps: 4 });
      const want = [fx * 32767, fy * 32767];
      const deadline = Date.now() + 20_000;
      for (;;) {
        const lines = [...(await serial()).matchAll(/HANGAR-POINTER (\d+) (\d+)/g)];
        const m = lines.at(-1);
        if (m && Math.abs(Number(m[1]) - want[0]!) < 1200 && Math.abs(Number(m[2]) - want[1]!) < 1200) break;
        if (Date.now() > deadline) throw new Error(`the guest's pointer is at ${m ? `${m[1]} ${m[2]}` : 'none'}, not near ${want.map(Math.round).join(' ')}`);
        await page.waitForTimeout(250);
      }
    }
    await typeLikeAPerson(page, 'kill $!');
    await page.keyboard.press('Enter');
    await page.keyboard.down('Control');
    await page.keyboard.down('Alt');
    await page.keyboard.up('Alt');
    await page.keyboard.up('Control');
  });

  test('Scale to fit / 1:1 and view only', async () => {
    const canvas = page.locator('[data-testid="display-screen"] canvas');
    await page.getByTestId('display-scale').selectOption('1:1');
    await page.waitForFunction(() => {
      const c = document.querySelector<HTMLCanvasElement>('[data-testid="display-screen"] canvas');
      return !!c && Math.abs(c.getBoundingClientRect().width - c.width) < 1;
    });
    await page.getByTestId('display-scale').selectOption('fit');
    await page.getByTestId('display-viewonly').click();
    assert.equal(await page.getByTestId('display-viewonly').getAttribute('aria-pressed'), 'true');
    await canvas.click();
    assert.equal(await page.getByTestId('display-grab').getAttribute('data-captured'), 'false', 'view only: no keyboard grab');
    await page.getByTestId('display-viewonly').click();
    assert.equal(await page.getByTestId('display-viewonly').getAttribute('aria-pressed'), 'false');
  });

  test('Screenshot saves NAME-YYYYMMDD-HHMMSS.png; the list and the Overview show a thumbnail', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('screenshot').click()]);
    assert.match(download.suggestedFilename(), new RegExp(`^${VM}-\\d{8}-\\d{6}\\.png$`));
    const file = await download.path();
    assert.ok(file);
    assert.deepEqual([...readFileSync(file).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG');

    await page.getByRole('tab', { name: 'Overview' }).click();
    await page.locator(`[data-testid="vm-thumbnail"][data-vm="${VM}"][data-loaded="true"] img`).waitFor({ timeout: 15_000 });
    await page.goto(session.serve.url);
    await page.locator(`[data-testid="vm-row"][data-vm="${VM}"] [data-testid="vm-thumbnail"][data-loaded="true"] img`).waitFor({ timeout: 15_000 });
    assert.equal(await page.locator(`[data-testid="vm-row"][data-vm="${HEADLESS}"] [data-testid="vm-thumbnail"]`).count(), 0, 'no thumbnail for a stopped VM');
    session.shots.push(await screenshot(page, 'display-thumbnails'));
  });

  test('keyboard reachable and axe clean with the screen live', async () => {
    await page.goto(`${session.serve.url}#/vm/${VM}`);
    await waitStatus(page, /^Connected/);
    assert.deepEqual(await seriousAxe(page), [], 'axe: Display tab');
    await page.getByRole('tab', { name: 'Display' }).focus();
    const wanted = new Set(['display-scale', 'display-viewonly', 'display-fullscreen', 'send-keys', 'screenshot', 'display-capture']);
    const seen = new Set<string>();
    for (let i = 0; i < 25 && seen.size < wanted.size; i++) {
      await page.keyboard.press('Tab');
      const id = await page.evaluate(() => document.activeElement?.getAttribute('data-testid') ?? '');
      if (wanted.has(id)) seen.add(id);
    }
    assert.deepEqual([...wanted].filter((w) => !seen.has(w)), [], 'every control is reached with Tab');
    // Capture keyboard from the keyboard: the canvas takes the keys.
    await page.getByTestId('display-capture').focus();
    await page.keyboard.press('Enter');
    await page.getByTestId('display-grab').filter({ hasText: 'Keyboard captured' }).waitFor();
    await page.keyboard.down('Control');
    await page.keyboard.down('Alt');
    await page.keyboard.up('Alt');
    await page.keyboard.up('Control');
    await page.getByTestId('display-grab').filter({ hasText: 'Click the screen' }).waitFor();
    // The Send keys menu opens from the keyboard; Escape gives the focus back.
    await page.getByTestId('send-keys').focus();
    await page.keyboard.press('ArrowDown');
    await page.getByRole('menu', { name: 'Send keys' }).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.textContent?.trim()), 'Ctrl+Alt+Del');
    assert.deepEqual(await seriousAxe(page), [], 'axe: Send keys menu open');
    await page.keyboard.press('Escape');
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('data-testid')), 'send-keys');
  });

  test('two viewers at once both show the screen', async () => {
    const second = await session.browser.newPage({ viewport: { width: 1024, height: 768 } });
    try {
      await second.goto(`${session.serve.url}#/vm/${VM}/display`);
      await waitStatus(second, /^Connected/);
      await waitStatus(page, /^Connected/);
      await screenMatches(second, 'second viewer');
      await screenMatches(page, 'first viewer beside the second');
    } finally {
      await second.close();
    }
  });

  test('Ctrl+Alt+Del from the Send keys menu reboots the guest; the view stays', { timeout: BOOT_MS + 30_000 }, async () => {
    const log = await serial();
    const readyBefore = count(log, READY_MARKER);
    const screenBefore = count(log, SCREEN_READY);
    await page.getByTestId('send-keys').focus();
    await page.keyboard.press('Enter');
    await page.getByTestId('send-key-ctrl-alt-delete').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('data-testid')), 'send-key-ctrl-alt-delete');
    await page.keyboard.press('Enter');
    await page.locator('.display-note').filter({ hasText: 'Sent Ctrl+Alt+Del' }).waitFor();
    await waitSerial(READY_MARKER, readyBefore + 1);
    await waitSerial(SCREEN_READY, screenBefore + 1);
    await waitStatus(page, /^Connected/);
    await screenMatches(page, 'after the guest rebooted');
  });

  test('the view comes back after the VM is destroyed and started behind the UI\'s back', { timeout: BOOT_MS + 60_000 }, async () => {
    const screenBefore = count(await serial(), SCREEN_READY);
    await core.api.destroy(VM);
    await page.getByTestId('display-status').filter({ hasText: 'VM is not running' }).waitFor({ timeout: 15_000 });
    await core.api.start(VM);
    await waitStatus(page, /^Connected/, 60_000);
    await waitSerial(SCREEN_READY, screenBefore + 1);
    await screenMatches(page, 'after a restart');
    session.shots.push(await screenshot(page, 'display-after-restart'));
    assert.deepEqual(session.pageErrors.filter((e) => !/noVNC|WebSocket|RFB/i.test(e)), [], 'no script errors');
  });
});

describe('boot menus on screen', () => {
  for (const firmware of ['bios', 'uefi'] as const) {
    test(`the test ISO's GRUB menu is visible under ${firmware.toUpperCase()}`, { timeout: BOOT_MS + 60_000 }, async () => {
      const name = `grub-${firmware}`;
      await h.ok(['create', '--name', name, '--memory', '384', '--accel', 'tcg', '--cdrom', guest.iso, '--boot', 'cdrom', '--firmware', firmware]);
      await page.goto(`${session.serve.url}#/vm/${name}/display`);
      await page.getByTestId('display-status').filter({ hasText: 'VM is not running' }).waitFor();
      await core.api.start(name);
      // GRUB draws its menu on the screen and the serial console; a key stops its 3 s countdown.
      await waitSerial(GRUB_MENU_ENTRY, 1, BOOT_MS, name);
      await core.api.sendKeys(name, ['up']);
      await waitStatus(page, /^Connected/);
      // The serial console can show the menu a moment before the framebuffer does (UEFI's GOP under
      // TCG): compare again until the drawn menu is there, within the same budget.
      let seen = await screenMatches(page, `GRUB under ${firmware}`, 30_000, name);
      const drawnBy = Date.now() + 30_000;
      while (litCells(seen) < 40 && Date.now() < drawnBy) {
        await page.waitForTimeout(500);
        seen = await screenMatches(page, `GRUB under ${firmware}`, 30_000, name);
      }
      assert.ok(litCells(seen) >= 40, 'the menu is drawn, not a blank screen');
      session.shots.push(await screenshot(page, `display-grub-${firmware}`));
      await core.api.sendKeys(name, ['ret']);
      await waitSerial(READY_MARKER, 1, BOOT_MS, name);
      await core.api.destroy(name);
    });
  }
});
