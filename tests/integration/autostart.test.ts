// Autostart with the real core and the real test guest: VMs marked autostart start when a core
// starts in a new host boot (the boot marker removed, as a reboot clears the runtime dir's
// tmpfs), the others do not; one that cannot start is reported and the next still starts; a core
// restarted in the same boot leaves alone a VM the user shut down. `hangar service install`
// writes a unit whose ExecStart really runs the core, and enables it through systemctl (a
// recording stand-in: this machine has no running systemd; the real systemctl's refusal is checked too).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import { HangarHarness, sleep } from '../helpers/hangar.ts';

let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;

before(async () => {
  guest = await ensureTestGuest();
  h = new HangarHarness();
});

after(async () => {
  await h?.cleanup();
});

async function createVm(name: string, kernel = guest.kernel): Promise<{ id: string }> {
  const file = join(h.home, `${name}.json`);
  writeFileSync(file, JSON.stringify({ memoryMiB: 128, accel: 'tcg', boot: { kernel: { kernel, initrd: guest.initrd, append: GUEST_CMDLINE } } }));
  return h.json<{ id: string }>(['create', '--name', name, '--file', file]);
}

describe('autostart', { timeout: 600_000 }, () => {
  test('marked VMs start with the core once per boot, others do not; a failing one is reported and the next still starts', async () => {
    const a = await createVm('auto-a');
    await createVm('auto-b');
    const kernelCopy = join(h.home, 'vmlinuz-copy');
    copyFileSync(guest.kernel, kernelCopy);
    await createVm('auto-broken', kernelCopy);
    const z = await createVm('auto-z');
    for (const n of ['auto-a', 'auto-broken', 'auto-z']) assert.match(await h.ok(['autostart', n, 'on']), /starts with the core/);
    assert.match(await h.ok(['show', 'auto-a']), /Autostart: {3}on/);
    assert.match(await h.ok(['show', 'auto-b']), /Autostart: {3}off/);
    rmSync(kernelCopy); // auto-broken cannot start any more
    // A new boot: the runtime dir's boot marker is gone (a reboot empties that tmpfs).
    await h.ok(['daemon', 'stop']);
    await sleep(300);
    rmSync(join(h.home, 'run', 'autostarted-boot'), { force: true });
    await h.ok(['list']); // starts a core
    await h.waitForState('auto-a', 'running');
    await h.waitForState('auto-z', 'running');
    assert.equal(await h.state('auto-b'), 'stopped');
    const broken = await h.json<{ state: string; reason?: string }>(['show', 'auto-broken']);
    assert.equal(broken.state, 'stopped');
    assert.match(broken.reason ?? '', /^autostart failed: .*vmlinuz-copy/);
    await h.waitForSerial(a.id, READY_MARKER, 1, 180_000);
    await h.waitForSerial(z.id, READY_MARKER, 1, 180_000);
    // The same boot: a core restart does not start again what the user stopped.
    await h.ok(['destroy', 'auto-a']);
    await h.ok(['daemon', 'stop']);
    await sleep(300);
    await h.ok(['list']);
    await sleep(2000);
    assert.equal(await h.state('auto-a'), 'stopped', 'not started twice in one boot');
    assert.equal(await h.state('auto-z'), 'running', 're-attached, not restarted');
    // Switched off on a running VM (no hardware change, nothing pending), and bad input refused.
    await h.ok(['autostart', 'auto-z', 'off']);
    const zi = await h.json<{ definition: { autostart: boolean }; pending?: unknown[] }>(['show', 'auto-z']);
    assert.equal(zi.definition.autostart, false);
    assert.deepEqual(zi.pending ?? [], []);
    const bad = await h.run(['autostart', 'auto-z', 'maybe']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /hangar autostart NAME on\|off/);
    await h.ok(['destroy', 'auto-z']);
  });
});

describe('hangar service', { timeout: 300_000 }, () => {
  test('install writes a unit whose ExecStart runs the core and enables it; remove disables and deletes it; without systemd it says what to run', async () => {
    const config = join(h.home, 'xdg-config');
    const bin = join(h.home, 'fake-bin');
    mkdirSync(bin, { recursive: true });
    const calls = join(h.home, 'systemctl-calls');
    writeFileSync(join(bin, 'systemctl'), `#!/bin/sh\necho "$*" >> ${calls}\n`);
    chmodSync(join(bin, 'systemctl'), 0o755);
    const env = { XDG_CONFIG_HOME: config, PATH: `${bin}:${process.env.PATH}` };
    const r = await h.run(['service', 'install'], { env });
    assert.equal(r.code, 0, r.stderr);
    const unit = join(config, 'systemd', 'user', 'hangar.service');
    assert.match(r.stdout, new RegExp(`wrote ${unit}`));
    assert.deepEqual(readFileSync(calls, 'utf8').trim().split('\n'), ['--user daemon-reload', '--user enable hangar.service']);
    const text = readFileSync(unit, 'utf8');
    assert.match(text, /^KillMode=process$/m, 'stopping the unit leaves the VMs running');
    assert.match(text, /^WantedBy=default\.target$/m);
    assert.match(text, new RegExp(`^Environment=HANGAR_HOME=${h.home.replace(/[.]/g, '\\.')}$`, 'm'));
    const verify = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
    assert.equal(verify.status, 0, `systemd-analyze verify: ${verify.stderr}`);
    assert.doesNotMatch(verify.stderr, /hangar\.service:\d+:|Failed|Unknown|not executable/i, verify.stderr);
    // The ExecStart line really runs the core (as systemd would, with the unit's environment).
    await h.ok(['daemon', 'stop']);
    await sleep(300);
    const exec = /^ExecStart=(.*)$/m.exec(text)![1]!.split(' ');
    const core = spawn(exec[0]!, exec.slice(1), { env: { ...process.env, HANGAR_HOME: h.home }, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      core.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      const deadline = Date.now() + 20_000;
      while (!/listening on/.test(out) && Date.now() < deadline) await sleep(100);
      assert.match(out, /hangar core \d+ listening on/);
      const st = await h.json<{ pid: number }>(['daemon', 'status']);
      assert.equal(st.pid, core.pid, 'the CLI talks to the core the unit started');
    } finally {
      core.kill('SIGTERM');
      await new Promise((res) => core.once('exit', res));
    }
    // Remove: disabled and deleted.
    const rm = await h.run(['service', 'remove'], { env });
    assert.equal(rm.code, 0, rm.stderr);
    assert.equal(existsSync(unit), false);
    assert.match(readFileSync(calls, 'utf8'), /--user disable hangar\.service/);
    // With the real systemctl and no systemd running: the unit is written, the error says what to run later.
    const real = await h.run(['service', 'install'], { env: { XDG_CONFIG_HOME: config } });
    assert.equal(real.code, 1);
    assert.match(real.stderr, /the unit is written, but `systemctl --user daemon-reload` failed/);
    assert.match(real.stderr, /fix: once systemd runs for this user: systemctl --user daemon-reload && systemctl --user enable --now hangar\.service/);
    assert.equal(existsSync(unit), true);
    const sys = await h.run(['service', 'install', '--user', '--system']);
    assert.equal(sys.code, 2);
  });
});
