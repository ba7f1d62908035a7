// The privileged side of host device changes: op validation (what the helper refuses), running
// plans against a fake kernel on a fixture copy, the bin/hangar-host-helper.mjs entry as a real
// subprocess, and runHostChange's choice between root, sudo, pkexec and "run these yourself".

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { link, mkdir, readFile, readlink, rm, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { HangarError } from '../../core/common/errors.ts';
import { executeOps, handGroupNodeTo, validateOp, writeAttribute } from '../../core/node/host/host-helper.ts';
import { planFor } from '../../core/node/host/host-verbs.ts';
import { listPciDevices } from '../../core/node/host/pci-devices.ts';
import { PciIds } from '../../core/node/host/pci-ids.ts';
import { hostHelperPath, privilegeMode, runHostChange } from '../../core/node/host/privileged.ts';
import type { ExecResult } from '../../core/node/host/privileged.ts';
import { shellCommands } from '../../core/node/host/sysfs-plans.ts';
// @ts-expect-error: a build script in plain JS, without type declarations
import { buildHostHelper } from '../../scripts/build-helper.mjs';
import type { HostOp } from '../../core/node/host/sysfs-plans.ts';
import { FakeKernel, copyFixture, snapshotTree } from '../helpers/fake-sysfs-kernel.ts';
import type { FixtureCopy } from '../helpers/fake-sysfs-kernel.ts';

const pciIds = new PciIds(join(import.meta.dirname, '../fixtures/pci.ids'));
const HELPER = join(import.meta.dirname, '../../bin/hangar-host-helper.mjs');
const UUID = '2b5b1d9e-6c4f-4f3e-9a53-1f2e3d4c5b6a';
const GPU = 'bus/pci/devices/0000:01:00.0';

const w = (path: string, value: string): HostOp => ({ op: 'write', path, value });

async function refused(p: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof HangarError, String(e));
    assert.equal(e.code, 'invalid-input');
    assert.match(e.message, message);
    return true;
  });
}

/** A helper environment as root itself would have it (no sudo/pkexec markers). */
function rootEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  if (!('SUDO_UID' in extra)) delete env.SUDO_UID;
  delete env.PKEXEC_UID;
  return env;
}

function run(file: string, args: string[], env = rootEnv()): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(file, args, { env, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('host helper', () => {
  let fx: FixtureCopy;
  let kernel: FakeKernel;
  const devices = () => listPciDevices({ sysRoot: fx.sysRoot, procRoot: fx.procRoot, pciIds });
  const driver = async (a: string) => (await devices()).find((d) => d.address === a)?.driver;

  beforeEach(async () => {
    fx = await copyFixture();
    kernel = new FakeKernel(fx.sysRoot);
  });
  afterEach(() => fx.cleanup());

  describe('validateOp', () => {
    it('accepts each allowed attribute with a good value', async () => {
      const ops: HostOp[] = [
        w(`${GPU}/driver_override`, 'vfio-pci'),
        w(`${GPU}/driver_override`, '\n'),
        w('bus/pci/drivers/amdgpu/unbind', '0000:01:00.0'),
        w('bus/pci/drivers/vfio-pci/bind', '0000:01:00.0'),
        w('bus/pci/drivers_probe', '0000:01:00.0'),
        w('bus/pci/devices/0000:03:00.0/sriov_numvfs', '8'),
        w('bus/pci/devices/0000:04:00.0/mdev_supported_types/nvidia-222/create', UUID),
        { op: 'modprobe', module: 'vfio-pci' },
        { op: 'ip', args: ['link', 'set', 'dev', 'enp3s0f0', 'vf', '0', 'mac', '52:54:00:aa:bb:cc', 'vlan', '10'] },
        w('kernel/mm/ksm/run', '1'),
        w('kernel/mm/ksm/run', '0'),
        w('kernel/mm/hugepages/hugepages-2048kB/nr_hugepages', '512'),
        w('kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages', '4'),
      ];
      for (const op of ops) await validateOp(op, fx.sysRoot);
    });

    it('refuses paths outside the allowed attributes, ".." and extra segments', async () => {
      const bad: [string, RegExp][] = [
        ['/etc/passwd', /relative to the sysfs root/],
        [`${GPU}/../../../../etc/passwd`, /without "\." or "\.\."/],
        ['bus/pci/devices/../drivers_probe', /without "\." or "\.\."/],
        ['bus/pci/./drivers_probe', /without "\." or "\.\."/],
        ['bus/pci//drivers_probe', /without "\." or "\.\."/],
        ['kernel/iommu_groups/13/type', /not one of the attributes/],
        ['devices/pci0000:00/0000:00:01.0/0000:01:00.0/driver_override', /not one of the attributes/],
        [`${GPU}/power/driver_override`, /not one of the attributes/],
        [`${GPU}/remove`, /not one of the attributes/],
        [`${GPU}/reset`, /not one of the attributes/],
        ['bus/pci/drivers/amdgpu/new_id', /not one of the attributes/],
        ['bus/pci/rescan', /not one of the attributes/],
        ['kernel/mm/ksm/pages_to_scan', /not one of the attributes/],
        ['kernel/mm/hugepages/hugepages-64kB/nr_hugepages', /not one of the attributes/],
        ['kernel/mm/transparent_hugepage/enabled', /not one of the attributes/],
        ['bus/pci/drivers_probe/x', /not one of the attributes/],
        ['bus/pci/devices/0000:01:00.0x/driver_override', /not one of the attributes/],
        ['bus/pci/devices/0000:42:00.0/driver_override', /no PCI device 0000:42:00\.0/],
        ['bus/pci/drivers/nouveau/bind', /no PCI driver nouveau/],
        ['bus/pci/devices/0000:04:00.0/mdev_supported_types/nvidia-999/create', /has no mdev type nvidia-999/],
        [`bus/mdev/devices/${UUID}/remove`, /no mdev/],
      ];
      for (const [path, message] of bad) await refused(validateOp(w(path, path.endsWith('create') ? UUID : path.endsWith('remove') ? '1' : '0000:01:00.0'), fx.sysRoot), message);
    });

    it('refuses bad values for each attribute, and more VFs than sriov_totalvfs', async () => {
      const bad: [string, string, RegExp][] = [
        [`${GPU}/driver_override`, 'vfio-pci\nx', /driver_override takes a driver name/],
        [`${GPU}/driver_override`, 'VFIO', /driver_override takes a driver name/],
        [`${GPU}/driver_override`, '../x', /driver_override takes a driver name/],
        [`${GPU}/driver_override`, '', /driver_override takes a driver name/],
        ['bus/pci/drivers/amdgpu/unbind', 'amdgpu', /take a PCI address/],
        ['bus/pci/drivers_probe', '0000:42:00.0', /no PCI device 0000:42:00\.0/],
        ['bus/pci/devices/0000:03:00.0/sriov_numvfs', '9', /at most 8 VFs \(sriov_totalvfs\)/],
        ['bus/pci/devices/0000:03:00.0/sriov_numvfs', '-1', /whole number/],
        ['bus/pci/devices/0000:03:00.0/sriov_numvfs', '0x4', /whole number/],
        [`${GPU}/sriov_numvfs`, '1', /not an existing sysfs attribute/],
        ['bus/pci/devices/0000:04:00.0/mdev_supported_types/nvidia-222/create', 'not-a-uuid', /create takes an mdev UUID/],
        // 2 would unmerge every page at once: not the helper's to do.
        ['kernel/mm/ksm/run', '2', /KSM run takes 0 or 1/],
        ['kernel/mm/hugepages/hugepages-2048kB/nr_hugepages', '-1', /nr_hugepages takes a whole number/],
        ['kernel/mm/hugepages/hugepages-2048kB/nr_hugepages', '1e9', /nr_hugepages takes a whole number/],
      ];
      for (const [path, value, message] of bad) await refused(validateOp(w(path, value), fx.sysRoot), message);
      // The remove attribute: make an mdev first so the path exists.
      await executeOps((await planFor('create-mdev', ['0000:04:00.0', 'nvidia-222', UUID], fx.sysRoot, { procRoot: fx.procRoot })).ops, { sysRoot: fx.sysRoot, writer: kernel.writer });
      await validateOp(w(`bus/mdev/devices/${UUID}/remove`, '1'), fx.sysRoot);
      await refused(validateOp(w(`bus/mdev/devices/${UUID}/remove`, '0'), fx.sysRoot), /remove takes "1"/);
    });

    it('refuses other modules, other ip commands and unknown ops', async () => {
      await refused(validateOp({ op: 'modprobe', module: 'evil' } as unknown as HostOp, fx.sysRoot), /loads only vfio-pci/);
      const ipBad: [string[], RegExp][] = [
        [['link', 'del', 'dev', 'eth0', 'vf', '0', 'vlan', '1'], /ip runs only/],
        [['-b', '/etc/batch'], /ip runs only/],
        [['link', 'set', 'dev', 'eth0;x', 'vf', '0', 'vlan', '1'], /ip runs only/],
        [['link', 'set', 'dev', 'eth0', 'vf', '0', 'mac', 'zz'], /not a MAC address or VLAN/],
        [['link', 'set', 'dev', 'eth0', 'vf', '0', 'vlan', '5000'], /not a MAC address or VLAN/],
        [['link', 'set', 'dev', 'eth0', 'vf', '0', 'vlan', '1', 'vlan', '2'], /vlan given twice/],
        [['link', 'set', 'dev', 'eth0', 'vf', '0', 'trust', 'on'], /not a MAC address or VLAN/],
        [['link', 'set', 'dev', 'eth0', 'vf', '0', 'vlan'], /ip runs only/],
      ];
      for (const [args, message] of ipBad) await refused(validateOp({ op: 'ip', args }, fx.sysRoot), message);
      await refused(validateOp({ op: 'exec', cmd: 'sh' } as unknown as HostOp, fx.sysRoot), /unknown operation/);
    });

    it('refuses symlink and hard link tricks and missing attributes (nothing is created)', async () => {
      const outside = join(fx.dir, 'outside');
      await mkdir(outside);
      await writeFile(join(outside, 'secret'), 'keep\n');
      const attr = join(fx.sysRoot, GPU, 'driver_override');
      const op = w(`${GPU}/driver_override`, 'vfio-pci');

      await unlink(attr);
      await refused(validateOp(op, fx.sysRoot), /not an existing sysfs attribute file/);
      await symlink(join(outside, 'secret'), attr);
      await refused(validateOp(op, fx.sysRoot), /not an existing sysfs attribute file/);
      await unlink(attr);
      await link(join(outside, 'secret'), attr);
      await refused(validateOp(op, fx.sysRoot), /not an existing sysfs attribute file/);
      await unlink(attr);

      // The bus link re-pointed outside the root, or at another device inside it.
      const busLink = join(fx.sysRoot, GPU);
      await writeFile(join(outside, 'driver_override'), '');
      await unlink(busLink);
      await symlink(outside, busLink);
      await refused(validateOp(op, fx.sysRoot), /no PCI device 0000:01:00\.0 under/);
      await unlink(busLink);
      await symlink('../../../devices/pci0000:00/0000:00:02.0', busLink);
      await refused(validateOp(op, fx.sysRoot), /no PCI device 0000:01:00\.0 under/);

      // A driver directory that is a link elsewhere.
      const drv = join(fx.sysRoot, 'bus/pci/drivers/amdgpu');
      await rm(drv, { recursive: true });
      await writeFile(join(outside, 'unbind'), '');
      await symlink(outside, drv);
      await refused(validateOp(w('bus/pci/drivers/amdgpu/unbind', '0000:00:02.0'), fx.sysRoot), /no PCI driver amdgpu/);
      assert.equal(await readFile(join(outside, 'secret'), 'utf8'), 'keep\n');
      assert.equal(await readFile(join(outside, 'unbind'), 'utf8'), '');
    });
  });

  describe('executeOps on the fake kernel', () => {
    it('binds the GPU and its audio function to vfio-pci, and release gives amdgpu and snd_hda_intel back', async () => {
      const bind = await planFor('bind-vfio', ['0000:01:00.0'], fx.sysRoot, { procRoot: fx.procRoot, pciIds });
      const ran = await executeOps(bind.ops, { sysRoot: fx.sysRoot, writer: kernel.writer });
      assert.equal(ran.length, 6);
      assert.deepEqual([await driver('0000:01:00.0'), await driver('0000:01:00.1'), await driver('0000:00:01.0')], ['vfio-pci', 'vfio-pci', 'pcieport']);
      assert.equal(await readFile(join(fx.sysRoot, GPU, 'driver_override'), 'utf8'), 'vfio-pci\n');
      assert.deepEqual((await planFor('bind-vfio', ['0000:01:00.1'], fx.sysRoot, { procRoot: fx.procRoot })).ops, [], 'bound once, nothing more to do');

      const release = await planFor('release-vfio', ['0000:01:00.0'], fx.sysRoot, { procRoot: fx.procRoot, pciIds });
      await executeOps(release.ops, { sysRoot: fx.sysRoot, writer: kernel.writer });
      assert.deepEqual([await driver('0000:01:00.0'), await driver('0000:01:00.1')], ['amdgpu', 'snd_hda_intel']);
      assert.equal(await readFile(join(fx.sysRoot, GPU, 'driver_override'), 'utf8'), '(null)\n');
    });

    it('changes the number of VFs through 0, as the kernel requires', async () => {
      const plan = await planFor('set-numvfs', ['0000:03:00.0', '4'], fx.sysRoot, { procRoot: fx.procRoot });
      assert.deepEqual(shellCommands(plan.ops, '/sys'), [
        'echo 0 > /sys/bus/pci/devices/0000:03:00.0/sriov_numvfs',
        'echo 4 > /sys/bus/pci/devices/0000:03:00.0/sriov_numvfs',
      ]);
      await executeOps(plan.ops, { sysRoot: fx.sysRoot, writer: kernel.writer });
      const pf = (await devices()).find((d) => d.address === '0000:03:00.0');
      assert.deepEqual(pf?.sriov, { totalVfs: 8, numVfs: 4, vfs: ['0000:03:10.0', '0000:03:10.2', '0000:03:10.4', '0000:03:10.6'] });
      assert.equal((await devices()).length, 22);
      assert.equal(await driver('0000:03:10.6'), 'ixgbevf');
      assert.equal(await driver('0000:03:11.0'), undefined, 'VF 4 is gone');
    });

    it('stops at the first failure, naming the step and what ran before it', async () => {
      // The kernel refuses nonzero to nonzero (EBUSY), like Linux.
      await assert.rejects(executeOps([w('bus/pci/devices/0000:03:00.0/sriov_numvfs', '2')], { sysRoot: fx.sysRoot, writer: kernel.writer }), (e: unknown) => {
        assert.ok(e instanceof HangarError);
        assert.equal(e.code, 'io-error');
        assert.match(e.message, /step 1 of 1, echo 2 > .*0000:03:00\.0\/sriov_numvfs: EBUSY/);
        assert.equal(e.hint, 'nothing was changed before it');
        return true;
      });
      const ops = [
        w('bus/pci/devices/0000:03:10.0/driver_override', 'vfio-pci'),
        w('bus/pci/drivers/amdgpu/unbind', '0000:03:10.0'),
        w('bus/pci/drivers_probe', '0000:03:10.0'),
      ];
      await assert.rejects(executeOps(ops, { sysRoot: fx.sysRoot, writer: kernel.writer }), (e: unknown) => {
        assert.ok(e instanceof HangarError);
        assert.match(e.message, /step 2 of 3, echo 0000:03:10\.0 > .*drivers\/amdgpu\/unbind: ENODEV/);
        assert.deepEqual((e.details as { done: string[] }).done, [`echo vfio-pci > ${fx.sysRoot}/bus/pci/devices/0000:03:10.0/driver_override`]);
        return true;
      });
      assert.equal(kernel.log.length, 3, 'the third op never ran');
    });

    it('validates every op before running any', async () => {
      const ops = [w(`${GPU}/driver_override`, 'vfio-pci'), w(`${GPU}/remove`, '1')];
      await refused(executeOps(ops, { sysRoot: fx.sysRoot, writer: kernel.writer }), /not one of the attributes/);
      assert.deepEqual(kernel.log, []);
    });

    it('switches KSM and sizes a huge page pool from its own read of sysfs (nothing to do when already so)', async () => {
      let plan = await planFor('set-ksm', ['1'], fx.sysRoot);
      assert.deepEqual(plan.ops, [w('kernel/mm/ksm/run', '1')]);
      await executeOps(plan.ops, { sysRoot: fx.sysRoot });
      assert.equal((await readFile(join(fx.sysRoot, 'kernel/mm/ksm/run'), 'utf8')).trim(), '1');
      assert.deepEqual((await planFor('set-ksm', ['1'], fx.sysRoot)).ops, []);
      plan = await planFor('set-hugepages', ['2M', '64'], fx.sysRoot);
      assert.deepEqual(plan.ops, [w('kernel/mm/hugepages/hugepages-2048kB/nr_hugepages', '64')]);
      assert.match(plan.what, /setting the 2M huge page pool to 64 pages/);
      await refused(planFor('set-ksm', ['2'], fx.sysRoot), /set-ksm takes 1 \(run KSM\) or 0/);
      await refused(planFor('set-hugepages', ['4M', '1'], fx.sysRoot), /set-hugepages takes a huge page size/);
    });

    it('creates and removes an mdev', async () => {
      const create = await planFor('create-mdev', ['0000:04:00.0', 'nvidia-222', UUID], fx.sysRoot, { procRoot: fx.procRoot });
      await executeOps(create.ops, { sysRoot: fx.sysRoot, writer: kernel.writer });
      const typeDir = join(fx.sysRoot, 'bus/pci/devices/0000:04:00.0/mdev_supported_types/nvidia-222');
      assert.ok(existsSync(join(fx.sysRoot, 'bus/mdev/devices', UUID, 'remove')));
      assert.equal(await readlink(join(fx.sysRoot, 'bus/mdev/devices', UUID, 'mdev_type')), '../mdev_supported_types/nvidia-222');
      assert.equal((await readFile(join(typeDir, 'available_instances'), 'utf8')).trim(), '15');
      await executeOps((await planFor('remove-mdev', [UUID], fx.sysRoot)).ops, { sysRoot: fx.sysRoot, writer: kernel.writer });
      assert.ok(!existsSync(join(fx.sysRoot, 'bus/mdev/devices', UUID)));
      assert.equal((await readFile(join(typeDir, 'available_instances'), 'utf8')).trim(), '16');
    });

    it('runs modprobe and ip without a shell, through the injected runner', async () => {
      const calls: string[][] = [];
      const runner = async (file: string, args: string[]) => { calls.push([file, ...args]); };
      const vf = await planFor('vf-config', ['enp3s0f0', '1', 'mac=52:54:00:AA:BB:CC', 'vlan=10'], fx.sysRoot);
      await executeOps([{ op: 'modprobe', module: 'vfio-pci' }, ...vf.ops], { sysRoot: fx.sysRoot, run: runner });
      assert.deepEqual(calls, [['modprobe', 'vfio-pci'], ['ip', 'link', 'set', 'dev', 'enp3s0f0', 'vf', '1', 'mac', '52:54:00:aa:bb:cc', 'vlan', '10']]);
      await assert.rejects(planFor('vf-config', ['eth9', '1', 'vlan=10'], fx.sysRoot), /no network interface eth9/);
      await assert.rejects(planFor('vf-config', ['enp3s0f0', '1', 'trust=on'], fx.sysRoot), /mac=M or vlan=V/);
    });

    it('a permission failure is a permission error', async () => {
      const writer = async () => { throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' }); };
      await assert.rejects(executeOps([w('bus/pci/drivers_probe', '0000:01:00.0')], { sysRoot: fx.sysRoot, writer }), { code: 'permission' });
    });
  });

  it('the real writer writes existing attributes only and never creates files', async () => {
    await executeOps([w(`${GPU}/driver_override`, 'vfio-pci')], { sysRoot: fx.sysRoot });
    assert.equal(await readFile(join(fx.sysRoot, GPU, 'driver_override'), 'utf8'), 'vfio-pci');
    const missing = join(fx.sysRoot, GPU, 'new_attribute');
    await assert.rejects(writeAttribute(missing, 'x'), { code: 'ENOENT' });
    assert.ok(!existsSync(missing));
    await symlink(join(fx.dir, 'elsewhere'), join(fx.sysRoot, GPU, 'linked'));
    await assert.rejects(writeAttribute(join(fx.sysRoot, GPU, 'linked'), 'x'), { code: 'ELOOP' });
    assert.ok(!existsSync(join(fx.dir, 'elsewhere')));
  });

  describe('bin/hangar-host-helper.mjs', () => {
    it('plans from its own read of sysfs, runs, and prints the commands as JSON', async () => {
      const r = await run(process.execPath, [HELPER, '--sys-root', fx.sysRoot, 'bind-vfio', '0000:01:00.0']);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { commands: string[] };
      assert.equal(out.commands.length, 6);
      assert.equal(out.commands[0], `echo vfio-pci > ${fx.sysRoot}/bus/pci/devices/0000:01:00.0/driver_override`);
      // No kernel behind plain files: the writes are there as written.
      assert.equal(await readFile(join(fx.sysRoot, GPU, 'driver_override'), 'utf8'), 'vfio-pci');
      assert.equal(await readFile(join(fx.sysRoot, 'bus/pci/drivers/snd_hda_intel/unbind'), 'utf8'), '0000:01:00.1');
      assert.equal(await readFile(join(fx.sysRoot, 'bus/pci/drivers_probe'), 'utf8'), '0000:01:00.1');
    });

    it('refuses with the message on stderr and the error as JSON on its last line, writing nothing', async () => {
      const before = await snapshotTree(fx.dir);
      const boot = await run(process.execPath, [HELPER, '--sys-root', fx.sysRoot, 'bind-vfio', '0000:00:02.0']);
      assert.equal(boot.code, 1);
      assert.match(boot.stderr, /^hangar-host-helper: cannot bind 0000:00:02\.0 to vfio-pci: .*boot VGA/);
      assert.equal(JSON.parse(boot.stderr.trim().split('\n').pop() ?? '').code, 'invalid-state');
      const verb = await run(process.execPath, [HELPER, '--sys-root', fx.sysRoot, 'write', 'bus/pci/rescan', '1']);
      assert.equal(verb.code, 1);
      assert.match(verb.stderr, /unknown host change "write"/);
      // Through sudo the caller may not choose the sysfs root.
      const sudo = await run(process.execPath, [HELPER, '--sys-root', fx.sysRoot, 'bind-vfio', '0000:01:00.0'], rootEnv({ SUDO_UID: '1000' }));
      assert.equal(sudo.code, 1);
      assert.match(sudo.stderr, /--sys-root only when run by root itself/);
      assert.deepEqual(await snapshotTree(fx.dir), before);
    });
  });

  describe('runHostChange', () => {
    const never = async () => { throw new Error('must not be asked'); };

    it('as root: plans and runs in-process', async () => {
      const r = await runHostChange('bind-vfio', ['0000:01:00.0'], { sysRoot: fx.sysRoot, procRoot: fx.procRoot, uid: 0, writer: kernel.writer, sudoWorks: never });
      assert.equal(r.via, 'root');
      assert.equal(r.commands.length, 6);
      assert.equal(await driver('0000:01:00.1'), 'vfio-pci');
    });

    it('creates an mdev with a fresh UUID when none is given', async () => {
      const r = await runHostChange('create-mdev', ['0000:04:00.0', 'nvidia-223'], { sysRoot: fx.sysRoot, procRoot: fx.procRoot, uid: 0, writer: kernel.writer });
      assert.match(r.uuid ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.ok(r.commands[0].startsWith(`echo ${r.uuid} > `));
      assert.ok(existsSync(join(fx.sysRoot, 'bus/mdev/devices', r.uuid ?? '')));
    });

    it('without root, sudo or pkexec: a permission error with the commands to run, and nothing written', async () => {
      const before = await snapshotTree(fx.dir);
      await assert.rejects(runHostChange('bind-vfio', ['0000:01:00.0'], {
        sysRoot: fx.sysRoot, procRoot: fx.procRoot, uid: 1000, sudoWorks: async () => false, hasPkexec: async () => true, env: {},
        exec: never, writer: kernel.writer,
      }), (e: unknown) => {
        assert.ok(e instanceof HangarError);
        assert.equal(e.code, 'permission');
        assert.match(e.message, /^binding 0000:01:00\.0 and its IOMMU group to vfio-pci needs root/);
        const commands = (e.details as { commands: string[] }).commands;
        assert.equal(commands.length, 6);
        assert.equal(commands[1], `echo 0000:01:00.0 > ${fx.sysRoot}/bus/pci/drivers/amdgpu/unbind`);
        assert.equal(e.hint, `run these commands as root:\n  ${commands.join('\n  ')}`);
        return true;
      });
      assert.deepEqual(kernel.log, []);
      assert.deepEqual(await snapshotTree(fx.dir), before);
    });

    it('with passwordless sudo: runs the helper entry with the same node binary', async () => {
      const calls: string[][] = [];
      const exec = async (file: string, args: string[]) => {
        calls.push([file, ...args]);
        assert.equal(file, 'sudo');
        assert.equal(args[0], '-n');
        return run(args[1], args.slice(2)); // we are root already
      };
      const r = await runHostChange('set-numvfs', ['0000:03:00.0', '0'], { sysRoot: fx.sysRoot, procRoot: fx.procRoot, uid: 1000, sudoWorks: async () => true, exec });
      assert.deepEqual(r, { via: 'sudo', commands: [`echo 0 > ${fx.sysRoot}/bus/pci/devices/0000:03:00.0/sriov_numvfs`] });
      assert.deepEqual(calls[0].slice(0, 4), ['sudo', '-n', process.execPath, hostHelperPath()]);
      assert.deepEqual(calls[0].slice(4), ['--sys-root', fx.sysRoot, 'set-numvfs', '0000:03:00.0', '0']);
      assert.equal(await readFile(join(fx.sysRoot, 'bus/pci/devices/0000:03:00.0/sriov_numvfs'), 'utf8'), '0');
    });

    it('pkexec with a display; helper errors keep their code; a refused escalation gives the commands', async () => {
      const seen: string[] = [];
      const fail = (stderr: string) => async (file: string) => { seen.push(file); return { code: 1, stdout: '', stderr }; };
      const base = { sysRoot: fx.sysRoot, procRoot: fx.procRoot, uid: 1000, sudoWorks: async () => false, hasPkexec: async () => true, env: { DISPLAY: ':0' } };
      const payload = JSON.stringify({ code: 'invalid-state', message: 'cannot bind: changed meanwhile' });
      await assert.rejects(runHostChange('bind-vfio', ['0000:03:10.0'], { ...base, exec: fail(`hangar-host-helper: x\n${payload}\n`) }),
        { code: 'invalid-state', message: 'cannot bind: changed meanwhile' });
      await assert.rejects(runHostChange('bind-vfio', ['0000:03:10.0'], { ...base, exec: fail('Error executing command as another user: Request dismissed\n') }),
        (e: unknown) => e instanceof HangarError && e.code === 'permission' && /Request dismissed/.test(e.message) && (e.details as { commands: string[] }).commands.length === 3);
      assert.deepEqual(seen, ['pkexec', 'pkexec']);
    });

    it('nothing to change needs no privilege', async () => {
      assert.deepEqual(await runHostChange('bind-vfio', ['0000:02:00.0'], { sysRoot: fx.sysRoot, procRoot: fx.procRoot, uid: 1000, sudoWorks: never, exec: never }),
        { commands: [], via: 'root' });
    });

    it('refuses bad verbs and arguments before asking for privilege', async () => {
      const opts = { sysRoot: fx.sysRoot, uid: 1000, sudoWorks: never, exec: never };
      await assert.rejects(runHostChange('rm', ['-rf'], opts), { code: 'invalid-input' });
      await assert.rejects(runHostChange('set-numvfs', ['0000:03:00.0', '99'], opts), /sriov_totalvfs = 8/);
      await assert.rejects(runHostChange('bind-vfio', ['0000:00:02.0'], opts), /boot VGA/);
    });
  });

  it('the helper is found in a checkout (bin/) and in a packaged app (the bundle in dist/); the bundle runs', async () => {
    const root = join(import.meta.dirname, '../..');
    assert.equal(hostHelperPath({}, join(root, 'core/node/host')), join(root, 'bin/hangar-host-helper.mjs'));
    assert.equal(hostHelperPath({ HANGAR_HOST_HELPER: '/opt/h.mjs' }), '/opt/h.mjs');
    // A packaged app: app.asar holds dist/ only; the core host runs from dist/electron.
    const app = join(fx.dir, 'app');
    await mkdir(join(app, 'dist/electron'), { recursive: true });
    assert.throws(() => hostHelperPath({}, join(app, 'dist/electron')), /host helper \(hangar-host-helper\.mjs\) is not installed/);
    await buildHostHelper(join(app, 'dist/hangar-host-helper.mjs'));
    assert.equal(hostHelperPath({}, join(app, 'dist/electron')), join(app, 'dist/hangar-host-helper.mjs'));
    // The bundle is the same helper: plans, validates, writes, prints the commands.
    const r = await run(process.execPath, [join(app, 'dist/hangar-host-helper.mjs'), '--sys-root', fx.sysRoot, 'set-numvfs', '0000:03:00.0', '2']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as { commands: string[] }).commands.map((c) => c.replace(fx.sysRoot, 'SYS')), [
      'echo 0 > SYS/bus/pci/devices/0000:03:00.0/sriov_numvfs', 'echo 2 > SYS/bus/pci/devices/0000:03:00.0/sriov_numvfs']);
    const bad = await run(process.execPath, [join(app, 'dist/hangar-host-helper.mjs'), '--sys-root', fx.sysRoot, 'set-numvfs', '0000:03:00.0', '9']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /sriov_totalvfs|at most 8/);
  });

  it('privilegeMode: root, then sudo -n, then pkexec only with a display', async () => {
    const no = async () => false;
    const yes = async () => true;
    assert.equal(await privilegeMode({ uid: 0, sudoWorks: no }), 'root');
    assert.equal(await privilegeMode({ uid: 1000, sudoWorks: yes }), 'sudo');
    assert.equal(await privilegeMode({ uid: 1000, sudoWorks: no, hasPkexec: yes, env: { WAYLAND_DISPLAY: 'wayland-0' } }), 'pkexec');
    assert.equal(await privilegeMode({ uid: 1000, sudoWorks: no, hasPkexec: yes, env: {} }), 'none');
    assert.equal(await privilegeMode({ uid: 1000, sudoWorks: no, env: { DISPLAY: ':0', PATH: '/nonexistent' } }), 'none');
    assert.ok(existsSync(hostHelperPath()));
  });

});

describe('the group node for an escalated caller', () => {
  let fx: FixtureCopy;
  beforeEach(async () => { fx = await copyFixture(); });
  afterEach(async () => { await fx.cleanup(); });

  it('gives /dev/vfio/<group> of a bound device to the user sudo/pkexec ran for; refuses a symlink; says when the node never came', async () => {
    const dev = join(fx.dir, 'dev');
    await mkdir(join(dev, 'vfio'), { recursive: true });
    await writeFile(join(dev, 'vfio', '17'), '');
    assert.deepEqual(await handGroupNodeTo(fx.sysRoot, '0000:03:10.0', 4321, dev), [`chown 4321 ${join(dev, 'vfio', '17')}`]);
    assert.equal((await stat(join(dev, 'vfio', '17'))).uid, 4321);
    await symlink('/etc/shadow', join(dev, 'vfio', '18'));
    await assert.rejects(handGroupNodeTo(fx.sysRoot, '0000:03:10.2', 4321, dev), /is a symlink: not changed/);
    await assert.rejects(handGroupNodeTo(fx.sysRoot, '0000:03:10.4', 4321, dev), /did not appear after binding 0000:03:10\.4/);
    await assert.rejects(handGroupNodeTo(fx.sysRoot, '../../x', 4321, dev), /not a PCI address/);
  });
});
