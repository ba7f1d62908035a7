// TPM 2.0 end to end: a per-VM swtpm supervised with QEMU (real CLI, daemon, QEMU under TCG,
// the test guest booted by kernel + initrd under UEFI). The guest must see a TPM 2.0 device.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import { HangarHarness, sleep } from '../helpers/hangar.ts';

let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;

interface Info { id: string; dir: string; pid?: number; state: string; definition: { tpm?: { model: string } } }

/** Pids of swtpm processes serving this VM's state dir. */
function swtpmPids(vmDir: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', `swtpm socket .*dir=${join(vmDir, 'tpm')},`], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

async function waitNoSwtpm(vmDir: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (swtpmPids(vmDir).length) {
    if (Date.now() > deadline) throw new Error(`swtpm still running for ${vmDir}: ${swtpmPids(vmDir).join(' ')}`);
    await sleep(100);
  }
}

before(async () => {
  guest = await ensureTestGuest();
  h = new HangarHarness();
});

after(async () => {
  await h?.cleanup();
});

describe('tpm', () => {
  test('swtpm runs with the VM, the guest sees a TPM 2.0, state persists; stopped on shutdown and on a QEMU crash', { timeout: 400_000 }, async () => {
    const vm = await h.json<Info>(['create', '--name', 'tpm', '--memory', '320', '--accel', 'tcg', '--firmware', 'uefi', '--tpm',
      '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE]);
    assert.deepEqual(vm.definition.tpm, { model: 'tpm-crb' });
    assert.match(await h.ok(['show', 'tpm']), /^TPM: +TPM 2\.0 \(tpm-crb/m);
    await h.ok(['start', 'tpm']);
    assert.equal(swtpmPids(vm.dir).length, 1, 'one swtpm while the VM runs');
    const pid = (await h.json<Info>(['show', 'tpm'])).pid!;
    const argv = execFileSync('cat', [`/proc/${pid}/cmdline`], { encoding: 'utf8' }).split('\0');
    assert.ok(argv.includes('emulator,id=tpmdev0,chardev=chrtpm'), argv.join(' '));
    await h.waitForSerial(vm.id, READY_MARKER, 1, 240_000);
    const out = await h.consoleCommand('tpm', 'ls /sys/class/tpm; cat /sys/class/tpm/tpm0/tpm_version_major', 5);
    assert.match(out, /^tpm0\b/m, out);
    assert.match(out, /^2\r?$/m, `a TPM 2.0: ${out}`);
    assert.ok(readdirSync(join(vm.dir, 'tpm')).length > 0, 'TPM state in the VM folder');

    // A restarted core leaves the running VM's swtpm alone.
    const before = swtpmPids(vm.dir);
    await h.ok(['daemon', 'stop']);
    assert.equal(await h.state('tpm'), 'running');
    assert.deepEqual(swtpmPids(vm.dir), before);

    await h.ok(['shutdown', 'tpm', '--timeout', '60'], { timeoutMs: 120_000 });
    await h.waitForState('tpm', 'stopped');
    await waitNoSwtpm(vm.dir);
    assert.ok(readdirSync(join(vm.dir, 'tpm')).length > 0, 'TPM state kept after shutdown');

    // QEMU killed behind Hangar's back: the VM is crashed and its swtpm gone.
    await h.ok(['start', 'tpm']);
    assert.equal(swtpmPids(vm.dir).length, 1);
    const qemu = (await h.json<Info>(['show', 'tpm'])).pid!;
    process.kill(qemu, 'SIGKILL');
    await h.waitForState('tpm', 'crashed');
    await waitNoSwtpm(vm.dir);
  });

  test('TIS on pc with BIOS; swtpm stopped by destroy; a failed start stops swtpm too', { timeout: 240_000 }, async () => {
    const vm = await h.json<Info>(['create', '--name', 'tis', '--memory', '256', '--accel', 'tcg', '--machine', 'pc', '--tpm=tis',
      '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE]);
    assert.deepEqual(vm.definition.tpm, { model: 'tpm-tis' });
    await h.ok(['start', 'tis']);
    await h.waitForSerial(vm.id, READY_MARKER, 1, 120_000);
    const out = await h.consoleCommand('tis', 'cat /sys/class/tpm/tpm0/tpm_version_major', 4);
    assert.match(out, /^2\r?$/m, out);
    await h.ok(['destroy', 'tis']);
    await waitNoSwtpm(vm.dir);

    // QEMU refuses to start (an unknown CPU model) after swtpm was started: swtpm must go too.
    const bad = await h.json<Info>(['create', '--name', 'bad', '--accel', 'tcg', '--machine', 'pc', '--tpm', '--cpu', 'no-such-cpu',
      '--kernel', guest.kernel, '--initrd', guest.initrd]);
    const r = await h.run(['start', 'bad']);
    assert.notEqual(r.code, 0);
    assert.equal(await h.state('bad'), 'stopped');
    await waitNoSwtpm(bad.dir, 5000);
    assert.ok(!existsSync(join(bad.dir, '..', '..', 'run', 'vms', bad.id, 'swtpm.sock')));
  });

  test('bad --tpm values are refused with the fix', async () => {
    const r = await h.run(['create', '--name', 'x', '--tpm=foo']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--tpm: unknown interface "foo"/);
  });
});
