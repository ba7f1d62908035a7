// The core end to end through the real CLI, daemon and QEMU (TCG) with the real test guest.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureTestGuest, READY_MARKER } from '../guest/guest.ts';
import { HangarHarness, sleep } from '../helpers/hangar.ts';

const APPEND = 'console=ttyS0 quiet panic=-1';

let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;

async function createKernelVm(name: string, extra: string[] = []): Promise<{ id: string }> {
  return h.json<{ id: string }>(['create', '--name', name, '--memory', '256', '--accel', 'tcg',
    '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', APPEND, ...extra]);
}

async function boot(name: string, id: string, count = 1): Promise<void> {
  await h.ok(['start', name]);
  await h.waitForSerial(id, READY_MARKER, count);
}

before(async () => {
  guest = await ensureTestGuest();
  h = new HangarHarness();
});

after(async () => {
  await h?.cleanup();
});

describe('lifecycle', () => {
  test('create, start, console answers, ACPI shutdown -> stopped', async () => {
    const { id } = await createKernelVm('basic', ['--new-disk', '64M']);
    assert.equal(await h.state('basic'), 'stopped');
    // ACPI rather than the guest agent (which Shut Down prefers when it answers).
    await h.ok(['edit', 'basic', '--shutdown-mode', 'acpi']);
    await boot('basic', id);
    assert.equal(await h.state('basic'), 'running');
    const out = await h.consoleCommand('basic', 'echo $((6*7))');
    assert.match(out, /^42\r?$/m);
    const r = await h.run(['shutdown', 'basic', '--timeout', '30']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await h.state('basic'), 'stopped');
    assert.match(h.serialLog(id), /power button/i, 'the guest saw the ACPI power button');
  });

  test('pause and resume, reboot, force off', async () => {
    const { id } = await createKernelVm('cycle');
    await boot('cycle', id);
    await h.ok(['pause', 'cycle']);
    assert.equal(await h.state('cycle'), 'paused');
    // A paused guest runs nothing: input typed now is only answered after resume.
    const before = h.serialLog(id).length;
    await h.run(['console', 'cycle', '--no-replay', '--grace', '1'], { input: 'echo paused-$((1+1))\n', inputDelayMs: 200 });
    assert.equal(h.serialLog(id).length, before, 'no serial output while paused');
    await h.ok(['resume', 'cycle']);
    assert.equal(await h.state('cycle'), 'running');
    await h.waitForSerial(id, 'paused-2');
    await h.ok(['reboot', 'cycle']);
    await h.waitForSerial(id, READY_MARKER, 2);
    await h.waitForState('cycle', 'running');
    await h.ok(['destroy', 'cycle']);
    assert.equal(await h.state('cycle'), 'stopped');
  });

  test('boots from the ISO and from the disk image', async () => {
    const iso = await h.json<{ id: string }>(['create', '--name', 'from-iso', '--memory', '256', '--accel', 'tcg', '--machine', 'pc', '--cdrom', guest.iso, '--boot', 'cdrom']);
    await boot('from-iso', iso.id);
    await h.ok(['destroy', 'from-iso']);
    // Copy the disk image: the VM must not write into the shared cache.
    const copy = join(h.home, 'guest-copy.qcow2');
    execFileSync('qemu-img', ['convert', '-O', 'qcow2', guest.disk, copy]);
    const disk = await h.json<{ id: string }>(['create', '--name', 'from-disk', '--memory', '256', '--accel', 'tcg', '--disk', `${copy},bus=sata`]);
    await boot('from-disk', disk.id);
    await h.ok(['destroy', 'from-disk']);
  });

  test('data written to a virtio-blk disk survives power-off', async () => {
    const { id } = await createKernelVm('persist', ['--new-disk', '16M']);
    await boot('persist', id);
    await h.consoleCommand('persist', 'echo HANGAR-DATA-4711 > /dev/vda; sync; echo written', 2);
    await h.ok(['shutdown', 'persist', '--timeout', '30']);
    await boot('persist', id, 2);
    const out = await h.consoleCommand('persist', 'head -c 16 /dev/vda; echo');
    assert.match(out, /HANGAR-DATA-4711/);
    await h.ok(['destroy', 'persist']);
  });

  for (const model of ['e1000', 'virtio-net'] as const) {
    test(`user-mode NIC ${model}: DHCP and HTTP to the host`, async () => {
      const server = createServer((_req, res) => res.end(`hello-from-host-${model}\n`));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.address() as AddressInfo).port;
      try {
        const name = `net-${model}`;
        const { id } = await createKernelVm(name, ['--nic', `user,model=${model}`]);
        await boot(name, id);
        const out = await h.consoleCommand(name, `udhcpc -i eth0 -s /etc/udhcpc.script -q -n >/dev/null 2>&1; ip -4 addr show eth0 | grep -o 'inet [0-9.]*'; wget -q -O - http://10.0.2.2:${port}/`, 8);
        assert.match(out, /inet 10\.0\.2\.\d+/);
        assert.match(out, new RegExp(`hello-from-host-${model}`));
        await h.ok(['destroy', name]);
      } finally {
        server.close();
      }
    });
  }
});

describe('supervision', () => {
  test('SIGKILL of QEMU -> crashed, runtime files cleaned up', async () => {
    const { id } = await createKernelVm('victim');
    await boot('victim', id);
    const pid = (await h.json<{ pid: number }>(['show', 'victim'])).pid;
    process.kill(pid, 'SIGKILL');
    await h.waitForState('victim', 'crashed', 15_000);
    const info = await h.json<{ reason: string }>(['show', 'victim']);
    assert.match(info.reason, /SIGKILL|unexpectedly/);
    const runDir = join(h.home, 'run', 'vms', id);
    assert.throws(() => readFileSync(join(runDir, 'qemu.pid')), 'pidfile removed');
    // It can be started again.
    await boot('victim', id, 2);
    await h.ok(['destroy', 'victim']);
  });

  test('SIGKILL of the core daemon: the next call re-attaches, the VM still runs and answers', async () => {
    const { id } = await createKernelVm('survivor');
    await boot('survivor', id);
    const qemuPid = (await h.json<{ pid: number }>(['show', 'survivor'])).pid;
    const daemonPid = (await h.json<{ pid: number }>(['daemon', 'status'])).pid;
    process.kill(daemonPid, 'SIGKILL');
    await sleep(300);
    const info = await h.json<{ state: string; pid: number }>(['show', 'survivor']);
    assert.equal(info.state, 'running');
    assert.equal(info.pid, qemuPid);
    assert.notEqual((await h.json<{ pid: number }>(['daemon', 'status'])).pid, daemonPid);
    const out = await h.consoleCommand('survivor', 'echo $((100+23))');
    assert.match(out, /^123\r?$/m);
    // Scrollback from before the restart is still there.
    const replay = await h.run(['console', 'survivor', '--grace', '0.5'], { input: '' });
    assert.match(replay.stdout, new RegExp(READY_MARKER));
    await h.ok(['shutdown', 'survivor', '--timeout', '30']);
    assert.equal(await h.state('survivor'), 'stopped');
  });

  test('two concurrent starts give one QEMU', async () => {
    const { id } = await createKernelVm('racer');
    const [a, b] = await Promise.all([h.run(['start', 'racer']), h.run(['start', 'racer'])]);
    const codes = [a.code, b.code].sort((x, y) => x - y);
    // The loser is busy (exit 75) while the winner starts, or finds it running (exit 1) once it has.
    assert.equal(codes[0], 0, `${a.stderr} ${b.stderr}`);
    assert.ok(codes[1] === 75 || codes[1] === 1, `${a.stderr} ${b.stderr}`);
    assert.match(a.stderr + b.stderr, /busy|cannot start/);
    const procs = execFileSync('pgrep', ['-f', '--', `-uuid ${id}`]).toString().trim().split('\n');
    assert.equal(procs.length, 1);
    await h.ok(['destroy', 'racer']);
  });

  test('a corrupt definition shows as broken; the other VMs keep working', async () => {
    const bad = await createKernelVm('corrupt-me');
    await createKernelVm('healthy');
    writeFileSync(join(h.home, 'vms', bad.id, 'vm.json'), '{ "version": 1, "name": ');
    const list = await h.json<Array<{ name: string; id: string; state: string; reason?: string }>>(['list']);
    const broken = list.find((v) => v.id === bad.id);
    assert.equal(broken?.state, 'broken');
    assert.match(broken?.reason ?? '', /not valid JSON/);
    assert.equal(list.find((v) => v.name === 'healthy')?.state, 'stopped');
    const r = await h.run(['start', bad.id]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /broken/);
    await h.ok(['delete', bad.id]);
  });
});

describe('bad input gets a clear error', () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['a name with "/"', ['create', '--name', 'a/b'], /cannot contain "\/"/],
    ['a name with a control character', ['create', '--name', 'a\u0007b'], /control characters/],
    ['a too long name', ['create', '--name', 'x'.repeat(65)], /at most 64/],
    ['a duplicate name', ['create', '--name', 'HEALTHY'], /already exists/],
    ['a bad port forward', ['create', '--name', 'pf', '--nic', 'user,hostfwd=tcp:2222:22'], /tcp::HOSTPORT-:GUESTPORT/],
    ['a missing disk image', ['create', '--name', 'nodisk', '--disk', '/nonexistent/disk.qcow2'], /disk image \/nonexistent\/disk.qcow2 does not exist/],
    ['memory that is not a number', ['create', '--name', 'mem', '--memory', 'lots'], /--memory must be a whole number/],
    ['an unknown VM', ['start', 'no-such-vm'], /no VM named "no-such-vm"/],
    ['an unknown command', ['frobnicate'], /unknown command/],
    ['a bad bus', ['create', '--name', 'bus', '--new-disk', '1G,bus=floppy'], /unknown bus "floppy"/],
    ['a bad size', ['create', '--name', 'size', '--new-disk', 'huge'], /is not a size/],
    ['microvm without a kernel', ['create', '--name', 'mv', '--machine', 'microvm'], /microvm has no firmware boot path/],
    ['stopping a stopped VM', ['pause', 'healthy'], /cannot pause VM "healthy": it is stopped/],
  ];
  for (const [what, args, re] of cases) {
    test(what, async () => {
      const r = await h.run(args);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, re);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    });
  }

  test('KVM requested where it cannot run guests: refused before QEMU runs, with the fix', async () => {
    await createKernelVm('wants-kvm');
    await h.ok(['edit', 'wants-kvm', '--accel', 'kvm']);
    const doctor = await h.json<Array<{ id: string; status: string }>>(['doctor']);
    const kvmWorks = doctor.some((c) => c.id === 'accel-kvm' && c.status === 'ok');
    const r = await h.run(['start', 'wants-kvm']);
    if (kvmWorks) {
      assert.equal(r.code, 0, r.stderr);
      await h.ok(['destroy', 'wants-kvm']);
    } else {
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /KVM cannot run guests on this host/);
      assert.match(r.stderr, /tcg/);
      assert.equal(await h.state('wants-kvm'), 'stopped');
    }
  });

  test('a missing disk file at start is named, and the VM stays defined', async () => {
    const { id } = await createKernelVm('lost-disk', ['--new-disk', '16M']);
    const file = join(h.home, 'vms', id, 'disk0.qcow2');
    execFileSync('mv', [file, file + '.away']);
    const r = await h.run(['start', 'lost-disk']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /disk "disk0" file .* does not exist/);
    assert.equal(await h.state('lost-disk'), 'stopped');
    execFileSync('mv', [file + '.away', file]);
  });

  test('delete keeps disks unless asked, and never deletes foreign files', async () => {
    const foreign = join(h.home, 'foreign.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', foreign, '16M']);
    const owned = async (name: string): Promise<string> =>
      (await h.json<{ definition: { disks: Array<{ file: string; owned: boolean }> } }>(['show', name])).definition.disks.find((d) => d.owned)!.file;
    await createKernelVm('keep', ['--new-disk', '16M', '--disk', foreign]);
    const keptDisk = await owned('keep');
    const r = await h.json<{ keptFiles: string[] }>(['delete', 'keep']);
    assert.ok(r.keptFiles.includes(keptDisk), JSON.stringify(r));
    assert.ok(readFileSync(keptDisk).length > 0);
    await createKernelVm('drop', ['--new-disk', '16M', '--disk', foreign]);
    const dropDisk = await owned('drop');
    const r2 = await h.json<{ deletedFiles: string[]; keptFiles: string[] }>(['delete', 'drop', '--delete-disks']);
    assert.ok(r2.deletedFiles.includes(dropDisk), JSON.stringify(r2));
    assert.ok(r2.keptFiles.includes(foreign));
    assert.ok(readFileSync(foreign).length > 0, 'foreign disk untouched');
  });
});
