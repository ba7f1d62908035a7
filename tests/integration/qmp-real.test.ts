// Drives a real qemu-system-x86_64 over QMP. Never skips: a missing QEMU is a broken test host.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HangarError } from '../../core/common/errors.ts';
import { QmpClient } from '../../core/node/qmp/client.ts';
import { withTimeout } from '../helpers/with-timeout.ts';

const QEMU = 'qemu-system-x86_64';

interface Exit { code: number | null; signal: NodeJS.Signals | null }

/** QEMU creates the socket shortly after start; retry until it accepts or the process dies. */
async function connectWhenReady(sock: string, proc: ChildProcess, stderr: () => string): Promise<QmpClient> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`QEMU exited (${proc.exitCode ?? proc.signalCode}) before QMP was up:\n${stderr()}`);
    }
    try {
      return await QmpClient.connect(sock, { connectTimeoutMs: 10_000, commandTimeoutMs: 20_000 });
    } catch (e) {
      const notYet = e instanceof HangarError && e.code === 'qmp-closed' && /ENOENT|ECONNREFUSED/.test(e.message);
      if (!notYet || Date.now() > deadline) throw e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('QMP against a real QEMU', { timeout: 120_000 }, () => {
  let dir: string | undefined;
  let proc: ChildProcess | undefined;
  let exited: Promise<Exit> | undefined;
  let qmp: QmpClient;
  let stderr = '';

  before(async () => {
    const probe = spawnSync(QEMU, ['--version'], { encoding: 'utf8' });
    if (probe.error || probe.status !== 0) {
      throw new Error(`${QEMU} is required for this test and could not be run ` +
        `(${probe.error?.message ?? probe.stderr}). Install it: apt-get install qemu-system-x86`);
    }
    dir = await mkdtemp(join(tmpdir(), 'hangar-qmp-real-'));
    const sock = join(dir, 'qmp.sock');
    const p = spawn(QEMU, [
      '-accel', 'tcg', '-machine', 'q35', '-nodefaults', '-no-user-config', '-display', 'none',
      '-S', '-qmp', `unix:${sock},server=on,wait=off`, '-m', '64',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    proc = p;
    exited = new Promise((resolve) => p.once('exit', (code, signal) => resolve({ code, signal })));
    p.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    qmp = await connectWhenReady(sock, p, () => stderr);
  });

  after(async () => {
    qmp?.close();
    if (proc && proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await exited;
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('starts paused in prelaunch because of -S', async () => {
    const s = await qmp.queryStatus();
    assert.deepEqual([s.status, s.running], ['prelaunch', false]);
  });

  it('reports QEMU 7+ and TCG (no KVM)', async () => {
    const v = await qmp.queryVersion();
    assert.ok(v.qemu.major >= 7, `QEMU ${v.qemu.major}.${v.qemu.minor}`);
    assert.equal(qmp.transport.greeting.version.qemu.major, v.qemu.major);
    assert.equal((await qmp.queryKvm()).enabled, false);
  });

  it('lists the q35 host bridge on PCI bus 0', async () => {
    const bus0 = (await qmp.queryPci()).find((b) => b.bus === 0);
    assert.ok(bus0, 'bus 0 present');
    const host = bus0.devices.find((d) => d.class_info.class === 0x0600);
    assert.ok(host, 'a host bridge on bus 0');
    assert.deepEqual([host.id.vendor, host.id.device, host.slot], [0x8086, 0x29c0, 0]);
  });

  it('cont runs the VM and emits RESUME', async () => {
    const resumed = qmp.waitForEvent('RESUME', { timeoutMs: 20_000 });
    await qmp.cont();
    await resumed;
    const s = await qmp.queryStatus();
    assert.deepEqual([s.status, s.running], ['running', true]);
  });

  it('stop pauses the VM and emits STOP', async () => {
    const stopped = qmp.waitForEvent('STOP', { timeoutMs: 20_000 });
    await qmp.stop();
    await stopped;
    const s = await qmp.queryStatus();
    assert.deepEqual([s.status, s.running], ['paused', false]);
  });

  it('answers QOM and device introspection', async () => {
    assert.ok((await qmp.qomList('/machine')).some((p) => p.name === 'peripheral'));
    assert.ok((await qmp.deviceListProperties('virtio-net-pci')).some((p) => p.name === 'mac'));
    assert.deepEqual(await qmp.queryBlock(), []);
    assert.ok((await qmp.queryChardev()).length >= 1);
    assert.match(await qmp.humanMonitorCommand('info status'), /VM status: paused/);
  });

  it('maps a real QMP error to qmp-error with its class', async () => {
    await assert.rejects(qmp.deviceDel('no-such-device'), (e) => {
      assert.ok(e instanceof HangarError && e.code === 'qmp-error', String(e));
      assert.deepEqual(e.details, { class: 'DeviceNotFound' });
      return true;
    });
  });

  it('quit makes QEMU exit and closes the transport', async () => {
    await qmp.quit({ timeoutMs: 20_000 });
    assert.equal(qmp.transport.isClosed, true);
    const exit = await withTimeout(exited!, 20_000, () => `QEMU still running after quit:\n${stderr}`);
    assert.deepEqual(exit, { code: 0, signal: null });
  });
});
