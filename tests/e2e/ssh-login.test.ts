// Logging in to an ssh:// connection in the app (issue 18: ssh's questions appear in a terminal in
// the app): a real sshd on 127.0.0.1 whose host key the serving host does not know yet, and a
// second Hangar core behind it. The connection first fails with ssh's own words and offers
// "Log in…"; the login terminal shows the host key question, "yes" is typed into the xterm, and
// the connection opens with the second core's VMs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { HangarHarness, HANGAR_BIN } from '../helpers/hangar.ts';
import { startSshd } from '../helpers/sshd.ts';
import type { SshdHandle } from '../helpers/sshd.ts';
import { axeViolations, openUiSession, screenshot } from './browser.ts';
import type { UiSession } from './browser.ts';

let session: UiSession;
let sshd: SshdHandle;
let there: HangarHarness;
let page: Page;
let pageErrors: string[];
let shots: string[];

before(async () => {
  sshd = await startSshd({ trustHostKey: false });
  there = new HangarHarness();
  // A VM defined on the second core only (it never runs): what the connection must show.
  await there.ok(['create', '--name', 'far-away', '--memory', '64', '--accel', 'tcg']);
  session = await openUiSession({ width: 1280, height: 860 }, { env: { HANGAR_SSH_CONFIG: sshd.configFile } });
  ({ page, pageErrors, shots } = session);
  await session.h.ok(['connect', 'add', 'lab', `ssh://hangar-test-sshd?command=${HANGAR_BIN}&env.HANGAR_HOME=${there.home}`]);
  await page.goto(session.serve.url);
  await page.getByTestId('connection-select').locator('option[value="lab"]').waitFor({ state: 'attached', timeout: 30_000 });
});

after(async () => {
  await session?.close();
  await there?.cleanup();
  await sshd?.stop();
});

async function loginText(p: Page): Promise<string> {
  return (await p.locator('[data-testid="login-terminal"] .xterm-rows').innerText().catch(() => '')).replace(/\u00a0/g, ' ');
}

describe('ssh login in the app', { timeout: 240_000 }, () => {
  test('an unknown host key is answered in the login terminal, then the connection opens', async () => {
    await page.getByTestId('connection-select').selectOption('lab');
    // The serving host never prompts: ssh's refusal, and the way to answer it.
    const problem = page.getByTestId('connection-problem');
    await problem.waitFor({ timeout: 60_000 });
    assert.match(await problem.innerText(), /Host key verification failed/);
    await page.getByTestId('connection-login').click();
    const deadline = Date.now() + 60_000;
    while (!/continue connecting/.test(await loginText(page)) && Date.now() < deadline) await page.waitForTimeout(200);
    // (xterm wraps long lines at the terminal's width)
    assert.match((await loginText(page)).replace(/\n/g, ''), /authenticity of host .* can't be established/);
    shots.push(await screenshot(page, 'ssh-login-question'));
    const violations = await axeViolations(page);
    assert.deepEqual(violations, [], JSON.stringify(violations, null, 2));
    await page.locator('[data-testid="login-terminal"] .xterm-helper-textarea').focus();
    await page.keyboard.type('yes');
    await page.keyboard.press('Enter');
    // Logged in: the dialog closes and the connection opens with the second core's VM.
    await page.getByTestId('login-terminal').waitFor({ state: 'detached', timeout: 60_000 });
    await page.locator('[data-testid="vm-row"]', { hasText: 'far-away' }).first().waitFor({ timeout: 60_000 });
    assert.equal(await problem.count(), 0, 'no problem shown once logged in');
    shots.push(await screenshot(page, 'ssh-login-done'));
    assert.deepEqual(pageErrors, []);
  });
});
