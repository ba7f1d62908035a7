// The Terminal tab (issue 18) in Debian's Chromium against browser mode: the test guest with a
// user-mode NIC forwarding a free loopback port to its dropbear (port 22) gets a throw-away key
// through its serial console; `hangar serve` runs ssh with a HANGAR_SSH_CONFIG naming that key.
// Connect as root, type `echo $((6*7))`, see 42 in the xterm; the pty follows the terminal's size
// (`stty size` = xterm's rows and cols); `exit` ends the session with its exit code.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import type { HangarHarness, ServeProcess } from '../helpers/hangar.ts';
import { axeViolations, openUiSession, screenshot } from './browser.ts';
import type { UiSession } from './browser.ts';
import { freePort } from '../helpers/free-port.ts';

const VM = 'term-ui';
let session: UiSession;
let h: HangarHarness;
let serve: ServeProcess;
let page: Page;
let pageErrors: string[];
let shots: string[];
let dir: string;


before(async () => {
  const guest = await ensureTestGuest();
  dir = mkdtempSync(join(tmpdir(), 'hg-uiterm-'));
  const key = join(dir, 'id_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'hangar-ui-terminal-test', '-f', key]);
  const sshConfig = join(dir, 'ssh_config');
  writeFileSync(sshConfig, `Host *\n  IdentityFile ${key}\n  IdentitiesOnly yes\n  UserKnownHostsFile ${join(dir, 'known_hosts')}\n  StrictHostKeyChecking accept-new\n  LogLevel ERROR\n`);
  session = await openUiSession({ width: 1280, height: 860 }, { env: { HANGAR_SSH_CONFIG: sshConfig } });
  ({ h, serve, page, pageErrors, shots } = session);
  const port = await freePort();
  const vm = await h.json<{ id: string }>(['create', '--name', VM, '--memory', '256', '--accel', 'tcg', '--nic', `user,hostfwd=tcp:127.0.0.1:${port}-:22`,
    '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE]);
  await h.ok(['start', VM]);
  await h.waitForSerial(vm.id, READY_MARKER, 1, 240_000);
  const pub = readFileSync(`${key}.pub`, 'utf8').trim();
  const out = await h.consoleCommand(VM, `mkdir -p /root/.ssh && echo '${pub}' > /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys && echo KEY-IN-PLACE`);
  assert.match(out, /KEY-IN-PLACE/);
});

after(async () => {
  await session?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function terminalText(): Promise<string> {
  return (await page.locator('[data-testid="terminal"] .xterm-rows').innerText()).replace(/\u00a0/g, ' ');
}

async function waitTerminal(pred: (t: string) => boolean, what: string, timeout = 30_000): Promise<string> {
  const deadline = Date.now() + timeout;
  let last = '';
  while (Date.now() < deadline) {
    last = await terminalText().catch(() => '');
    if (pred(last)) return last;
    await page.waitForTimeout(200);
  }
  throw new Error(`terminal: ${what} not seen within ${timeout} ms; screen:\n${last}`);
}

describe('the Terminal tab', { timeout: 300_000 }, () => {
  test('connect as root, run a command, the pty has the terminal\'s size, exit ends the session', async () => {
    const t0 = Date.now();
    await page.goto(`${serve.url}#/vm/${VM}/terminal`);
    await page.getByRole('tab', { name: 'Terminal' }).waitFor();
    assert.equal(await page.getByTestId('terminal-user').inputValue(), 'root');
    await page.getByTestId('terminal-connect').click();
    await page.locator('[data-testid="terminal-status"][data-status="live"]').waitFor({ timeout: 60_000 });
    await waitTerminal((t) => /#\s*$/m.test(t), 'a shell prompt', 60_000);
    await page.locator('[data-testid="terminal"] .xterm-helper-textarea').focus();
    await page.keyboard.type('echo $((6*7))\n');
    await waitTerminal((t) => /^42\s*$/m.test(t), '42');
    // The pty follows xterm's size: as many rows as xterm shows, and the width of the panel (over 80 columns at 1280 px).
    const rows = await page.locator('[data-testid="terminal"] .xterm-rows').evaluate((el) => el.children.length);
    await page.keyboard.type('stty size\n');
    const screen = await waitTerminal((t) => /^\d+ \d+\s*$/m.test(t), 'stty size');
    const size = /^(\d+) (\d+)\s*$/m.exec(screen)!;
    assert.equal(Number(size[1]), rows, `stty rows ${size[1]} = xterm rows ${rows}`);
    assert.ok(Number(size[2]) > 80, `stty columns ${size[2]}: the fitted width, not ssh's default 80`);
    assert.deepEqual((await axeViolations(page)).filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.help}`), []);
    shots.push(await screenshot(page, 'terminal-1-live'));
    await page.keyboard.type('exit 3\n');
    await page.locator('[data-testid="terminal-status"][data-status="ended"]').waitFor({ timeout: 20_000 });
    assert.match(await page.getByTestId('terminal-status').innerText(), /Session ended \(exit code 3\)/);
    assert.deepEqual(pageErrors, []);
    console.log(`terminal case: ${Date.now() - t0} ms`);
  });
});
