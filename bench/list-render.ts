// VM list with 1000 VMs in Chromium: time from navigation to the first rendered rows, time to
// scroll to the last VM, and how many rows are in the DOM (the list is virtualized).
import { HangarHarness } from '../tests/helpers/hangar.ts';
import { launchChromium } from '../tests/e2e/browser.ts';
import { populate } from './scale.ts';

const COUNT = Number(process.env.BENCH_VMS ?? 1000);
const ROUNDS = 5;

export async function benchListRender(): Promise<void> {
  const h = new HangarHarness();
  const browser = await launchChromium();
  try {
    await populate(h, COUNT);
    const serve = await h.serve();
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      const last = `vm-${String(COUNT - 1).padStart(4, '0')}`;
      const first: number[] = [];
      const scroll: number[] = [];
      let domRows = 0;
      for (let r = 0; r < ROUNDS; r++) {
        const t0 = Date.now();
        await page.goto(serve.url);
        await page.locator('[data-testid="vm-row"]').first().waitFor();
        first.push(Date.now() - t0);
        domRows = await page.locator('[data-testid="vm-row"]').count();
        const t1 = Date.now();
        await page.getByTestId('vm-list').evaluate((el) => { el.scrollTop = el.scrollHeight; });
        await page.locator(`[data-testid="vm-row"][data-vm="${last}"]`).waitFor();
        scroll.push(Date.now() - t1);
      }
      const med = (a: number[]): number => a.sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
      const heap = await page.evaluate(() => (performance as unknown as { memory?: { usedJSHeapSize: number } }).memory?.usedJSHeapSize ?? 0);
      console.log(`list render: ${COUNT} VMs in Chromium, median of ${ROUNDS}: first rows ${med(first)} ms after navigation (incl. page load + list RPC), scroll to the last VM ${med(scroll)} ms; ${domRows} rows in the DOM; page JS heap ${(heap / 1048576).toFixed(0)} MiB`);
    } finally {
      await serve.stop();
    }
  } finally {
    await browser.close();
    await h.cleanup();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await benchListRender();
