// The Performance tab and the VM list's live figures (issue 17) in Debian's Chromium against
// browser mode with the real core and the test guest under TCG (it runs qemu-ga on the agent
// channel new VMs get, and takes slirp's DHCP lease). The list: the CPU sparkline grows from the
// core's statsSample pushes while the page sends no statsLatest (the RPC frames on the page's
// WebSocket are counted), the host summary shows the host's memory as /proc/meminfo says and one
// running VM, the Address column shows the address the guest agent reports; axe-core finds
// nothing serious with the row selected. The tab draws its uPlot charts from the core's history
// (pixels on the CPU and disk canvases) and then appends pushed samples without asking for the
// history again; the newest values sit in the visually hidden table (CPU in % of one core, the
// disk's writes after dd), the user-mode NIC says why it has no counters, the time range can
// change (one history fetch); no script errors.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import type { HangarHarness, ServeProcess } from '../helpers/hangar.ts';
import { formatBytes } from '../../renderer/src/util/format.ts';
import { axeViolations, openUiSession, screenshot } from './browser.ts';
import type { UiSession } from './browser.ts';

const VM = 'perf';
let session: UiSession;
let h: HangarHarness;
let serve: ServeProcess;
let page: Page;
let pageErrors: string[];
let shots: string[];
/** RPC calls the page sent over its WebSockets, by method (birpc requests carry "m"). */
const rpcSent = new Map<string, number>();
const sent = (m: string): number => rpcSent.get(m) ?? 0;
/** The arguments of the last watchStats the page sent (JSON). */
let lastWatch = '';

before(async () => {
  const guest = await ensureTestGuest();
  session = await openUiSession({ width: 1280, height: 900 });
  ({ h, serve, page, pageErrors, shots } = session);
  page.on('websocket', (ws) => ws.on('framesent', ({ payload }) => {
    if (typeof payload !== 'string' || !payload.startsWith('{')) return;
    const { m, a } = JSON.parse(payload) as { m?: unknown; a?: unknown };
    if (typeof m === 'string') rpcSent.set(m, sent(m) + 1);
    if (m === 'watchStats') lastWatch = JSON.stringify(a);
  }));
  const disk = join(h.home, 'perf.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '64M']);
  const vm = await h.json<{ id: string }>(['create', '--name', VM, '--memory', '192', '--accel', 'tcg', '--disk', `${disk},bus=virtio-blk`, '--nic', 'user',
    '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE]);
  await h.ok(['start', VM]);
  await h.waitForSerial(vm.id, READY_MARKER, 1, 240_000);
  await h.consoleCommand(VM, 'dd if=/dev/zero of=/dev/vda bs=1M count=16 oflag=direct', 15);
});

after(async () => {
  await session?.close();
});

async function serious(): Promise<string[]> {
  return (await axeViolations(page)).filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.help} ${JSON.stringify(v.nodes)}`);
}

/** Pixels drawn on a chart's canvas (not transparent). */
function inkOf(id: string): Promise<number> {
  return page.getByTestId(`perf-chart-${id}`).locator('canvas').evaluate((c: HTMLCanvasElement) => {
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i]! > 0) n++;
    return n;
  });
}

/** The page's attribute as a number (NaN when absent). */
async function numberAttr(sel: string, attr: string): Promise<number> {
  return Number(await page.locator(sel).first().getAttribute(attr));
}

describe('performance in the UI', { timeout: 600_000 }, () => {
  test('the list: sparkline from pushes, host summary, the guest\'s address; axe clean with the row selected', async () => {
    await page.goto(`${serve.url}#/`);
    const row = page.locator(`[data-testid="vm-row"][data-vm="${VM}"]`);
    await row.waitFor();
    const sparkSel = `[data-testid="vm-row"][data-vm="${VM}"] [data-testid="cpu-sparkline"]`;
    await page.locator(sparkSel).waitFor({ timeout: 30_000 });
    const latestBefore = sent('statsLatest');
    assert.equal(lastWatch, '[null]', 'the list asked the core to push every running VM\'s samples');
    const n0 = await numberAttr(sparkSel, 'data-points');
    assert.ok(n0 >= 1 && n0 < 57, `a short series to start with (${n0})`);
    await page.waitForFunction(([sel, n]) => Number(document.querySelector(sel as string)?.getAttribute('data-points')) >= (n as number), [sparkSel, n0 + 3], { timeout: 30_000 });
    assert.equal(sent('statsLatest'), latestBefore, 'the sparkline grew from pushes: no statsLatest while it did');
    assert.ok(latestBefore <= 1, `statsLatest asked at most once on this connection (${latestBefore})`);
    const spark = page.locator(sparkSel);
    assert.equal(await spark.locator('polyline').count(), 1);
    assert.match(await spark.locator('.cpu-figure').getAttribute('aria-label') ?? '', new RegExp(`^CPU of ${VM}: \\d+%$`));
    assert.equal(await page.getByRole('columnheader', { name: 'CPU', exact: true }).count(), 1);

    // The host summary: the host's memory as the UI formats it, one VM running of one defined.
    const memTotalKb = Number(/^MemTotal:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'))![1]);
    const summary = page.getByRole('region', { name: 'Host' });
    const memText = await summary.getByTestId('host-memory').innerText();
    assert.match(memText, new RegExp(`^committed by guests 192\\.0 MiB of ${formatBytes(memTotalKb * 1024).replace('.', '\\.')}, \\d+(\\.\\d)? [KMGT]?i?B available$`));
    await summary.getByTestId('host-vms').filter({ hasText: /^VMs: 1 running, 1 defined$/ }).waitFor({ timeout: 10_000 });
    assert.equal(await summary.getByRole('meter').count(), 2);
    assert.match(await summary.getByRole('meter', { name: 'Memory' }).getAttribute('aria-valuetext') ?? '', /^committed by guests 192\.0 MiB of /);
    assert.equal(await summary.getByTestId('host-overcommit').count(), 0, '192 MiB does not overcommit the host');

    // The Address column: the address the guest agent reports (asked here through the CLI).
    const agent = await h.json<{ available: boolean; interfaces: Array<{ addresses: string[] }> }>(['agent', VM, 'info', '--json']);
    assert.ok(agent.available, 'the test guest\'s agent answers');
    const address = agent.interfaces.flatMap((i) => i.addresses).map((a) => a.replace(/\/\d+$/, '')).find((a) => !/^fe80:/i.test(a));
    assert.ok(address, `the guest has an address (${JSON.stringify(agent.interfaces)})`);
    await row.getByTestId('guest-address').filter({ hasText: new RegExp(`^${address.replaceAll('.', '\\.')}`) }).waitFor({ timeout: 60_000 });
    assert.equal(await page.getByRole('columnheader', { name: 'Address', exact: true }).count(), 1);

    // Selected (a click), the grid points at the row and axe finds nothing serious.
    await row.getByRole('gridcell').nth(1).click(); // the State cell (the name cell holds the VM's link)
    assert.equal(await row.getAttribute('aria-selected'), 'true');
    assert.equal(await page.getByRole('grid').getAttribute('aria-activedescendant'), await row.getAttribute('id'));
    shots.push(await screenshot(page, 'vm-list-live'));
    assert.deepEqual(await serious(), []);
    await page.emulateMedia({ colorScheme: 'dark' });
    try {
      assert.deepEqual(await serious(), [], 'dark theme, row selected');
    } finally {
      await page.emulateMedia({ colorScheme: 'light' });
    }
  });

  test('the Performance tab draws the VM\'s series, appends pushed samples, reads them out in a hidden table and names what has no counters', async () => {
    await page.goto(`${serve.url}#/vm/${VM}/performance`);
    await page.getByRole('tab', { name: 'Performance' }).and(page.locator('[aria-selected="true"]')).waitFor();
    for (const id of ['cpu', 'memory', 'disk', 'iops']) await page.getByTestId(`perf-chart-${id}`).locator('canvas').waitFor();
    assert.equal(lastWatch, `[["${VM}"]]`, 'the list gone, only this VM is watched');
    assert.equal(await page.getByTestId('perf-chart-net').count(), 0, 'no network chart: the only NIC has no counters');
    assert.match(await page.getByTestId('perf-unavailable').innerText(), /^Network net0: no counters: user-mode networking \(slirp\) keeps no counters Hangar can read\.$/);
    const table = page.getByTestId('perf-latest');
    const cpuRow = table.getByRole('row', { name: /^CPU: All of QEMU/ });
    assert.match(await cpuRow.locator('td').innerText(), /^\d+(\.\d+)? % of one core$/);
    assert.match(await table.getByRole('row', { name: /^Memory: Host memory in use/ }).locator('td').innerText(), /^\d+(\.\d+)? MiB$/);
    assert.equal(await table.getByRole('row', { name: /^Disk throughput: disk0 write/ }).count(), 1);
    assert.ok(await inkOf('cpu') > 500, 'the CPU chart has lines and axes drawn');
    // The dd's writes: the series has a point above zero.
    const peak = await page.evaluate(async (vm) => {
      const r = await fetch(`/metrics`);
      return r.ok ? (await r.text()).match(new RegExp(`hangar_vm_disk_written_bytes_total\\{vm="${vm}",[^}]*\\} (\\d+)`))?.[1] : null;
    }, VM);
    assert.ok(Number(peak) >= 16 * 1024 * 1024, `the disk counter holds the dd's 16 MiB (${peak})`);

    // Live: the pushed samples move the newest point on, with no history fetch meanwhile.
    const historyBefore = sent('statsHistory');
    const t0 = await numberAttr('[data-testid="performance"]', 'data-last-t');
    assert.ok(t0 > 0, 'the history has points');
    await page.waitForFunction((t) => Number(document.querySelector('[data-testid="performance"]')?.getAttribute('data-last-t')) >= t + 3000, t0, { timeout: 30_000 });
    assert.equal(sent('statsHistory'), historyBefore, 'appended from pushes, not fetched again');
    shots.push(await screenshot(page, 'performance-tab'));
    assert.deepEqual(await serious(), []);

    await page.getByTestId('perf-range').selectOption({ label: '1 hour' });
    await page.getByTestId('perf-chart-cpu').locator('canvas').waitFor();
    assert.ok(await inkOf('cpu') > 500, 'redrawn for the new range');
    assert.equal(sent('statsHistory'), historyBefore + 1, 'a new range fetches its history once');

    await page.getByRole('link', { name: 'Virtual machines' }).click();
    await page.locator(`[data-testid="vm-row"][data-vm="${VM}"] [data-testid="cpu-sparkline"]`).waitFor({ timeout: 10_000 });
    assert.equal(lastWatch, '[null]', 'back on the list: every VM again');
    assert.deepEqual(pageErrors, []);
  });
});
