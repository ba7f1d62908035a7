// Debian's Chromium driven by playwright-core (Playwright's own browser download cannot run
// here). A missing Chromium fails the run loudly: setup.sh --test installs it.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { HangarHarness } from '../helpers/hangar.ts';
import type { ServeProcess } from '../helpers/hangar.ts';

const root = join(import.meta.dirname, '..', '..');
export const SCREENSHOT_DIR = join(root, 'test-artifacts', 'screenshots');

export function chromiumPath(): string {
  const path = process.env.HANGAR_CHROMIUM || '/usr/bin/chromium';
  if (!existsSync(path)) {
    throw new Error(`Chromium not found at ${path}: the end-to-end tests need it. Run \`bash scripts/setup.sh --test\` (installs the chromium package) or set HANGAR_CHROMIUM.`);
  }
  return path;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    // Without the background-networking flags Chromium keeps dialling out on a closed network.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

interface AxeViolation { id: string; impact: string | null; help: string; nodes: Array<{ target: unknown }> }

/** Runs axe-core in the page (through the debugger, so the page's CSP stays on). */
export async function axeViolations(page: Page): Promise<AxeViolation[]> {
  const source = readFileSync(join(root, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
  await page.evaluate(source);
  const result = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run(ctx: Document, o: object): Promise<{ violations: AxeViolation[] }> } }).axe;
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => ({ target: n.target })) }));
  });
  return result;
}

/** The text xterm.js shows in the page's console (non-breaking spaces as spaces). */
export async function consoleText(page: Page): Promise<string> {
  return (await page.locator('[data-testid="console"] .xterm-rows').innerText()).replace(/\u00a0/g, ' ');
}

/** Polls the console until pred holds; the error shows the last screen. */
export async function waitConsole(page: Page, pred: (t: string) => boolean, what: string, timeout: number): Promise<void> {
  const deadline = Date.now() + timeout;
  let last = '';
  while (Date.now() < deadline) {
    last = await consoleText(page).catch(() => '');
    if (pred(last)) return;
    await page.waitForTimeout(200);
  }
  throw new Error(`console: ${what} not seen within ${timeout} ms; screen:\n${last}`);
}

/** One suite's world: a private Hangar home with `hangar serve`, Chromium with one page that records script errors. */
export interface UiSession {
  h: HangarHarness;
  serve: ServeProcess;
  browser: Browser;
  page: Page;
  pageErrors: string[];
  shots: string[];
  close(): Promise<void>;
}

/** opts.env: extra environment for the harness's hangar processes (`hangar serve` and the CLI), e.g. HANGAR_SYSFS_ROOT. */
export async function openUiSession(viewport = { width: 1280, height: 800 }, opts: { env?: NodeJS.ProcessEnv } = {}): Promise<UiSession> {
  const h = new HangarHarness(opts);
  const serve = await h.serve();
  const browser = await launchChromium();
  const page = await browser.newPage({ viewport });
  const pageErrors: string[] = [];
  const shots: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()); });
  return {
    h, serve, browser, page, pageErrors, shots,
    async close() {
      if (shots.length) console.log(`screenshots:\n  ${shots.join('\n  ')}`);
      await browser.close();
      await serve.stop();
      await h.cleanup();
    },
  };
}
