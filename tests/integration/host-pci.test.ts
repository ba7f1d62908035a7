// Host PCI devices on a VM, through the real CLI, core and QEMU. On this machine's own /sys (no
// IOMMU) a start is refused before QEMU spawns and nothing is written. Against a copy of the
// fixture sysfs tree (IOMMU on, HANGAR_SYSFS_ROOT) with stand-in /dev/vfio nodes, a start binds
// the device and its group to vfio-pci (the writes land in the copy), QEMU really runs with
// vfio-pci,host=ADDR and refuses (the device is not in this machine's /sys), the error is QEMU's,
// and the devices are given back. A device the host uses is refused before anything is written.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureTestGuest, GUEST_CMDLINE } from '../guest/guest.ts';
import { HangarHarness } from '../helpers/hangar.ts';

const fixtures = join(import.meta.dirname, '..', 'fixtures');

/** A harness whose CLI and daemon read host state from fixture copies. */
class FixtureHostHarness extends HangarHarness {
  constructor(private readonly hostEnv: NodeJS.ProcessEnv) {
    super();
  }

  override get env(): NodeJS.ProcessEnv {
    return { ...super.env, ...this.hostEnv };
  }
}

let guest: Awaited<ReturnType<typeof ensureTestGuest>>;
const harnesses: HangarHarness[] = [];

before(async () => {
  guest = await ensureTestGuest();
});

after(async () => {
  for (const h of harnesses) await h.cleanup();
});

async function createVm(h: HangarHarness, name: string, extra: Record<string, unknown>): Promise<{ id: string; dir: string }> {
  const file = join(h.home, `${name}.json`);
  writeFileSync(file, JSON.stringify({ memoryMiB: 256, accel: 'tcg', boot: { kernel: { kernel: guest.kernel, initrd: guest.initrd, append: GUEST_CMDLINE } }, ...extra }));
  return h.json<{ id: string; dir: string }>(['create', '--name', name, '--file', file]);
}

/** QEMU processes whose command line names this VM's id. */
function qemuFor(vmId: string): number[] {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      return cmd.startsWith('qemu-system') || cmd.includes('/qemu-system') ? cmd.includes(vmId) : false;
    } catch {
      return false;
    }
  }).map(Number);
}

describe('PCI host devices at start', { timeout: 300_000 }, () => {
  test('this host has no IOMMU: the start is refused before QEMU spawns, with the kernel command line fix', async () => {
    const h = new HangarHarness();
    harnesses.push(h);
    const groups = (() => { try { return readdirSync('/sys/kernel/iommu_groups'); } catch { return []; } })();
    assert.equal(groups.length, 0, 'this test is about a host without IOMMU groups; this one has some: the fixture tests below cover it');
    const vm = await createVm(h, 'vfio-real', { hostPci: [{ id: 'hostpci0', address: '0000:03:10.0' }] });
    const r = await h.run(['start', 'vfio-real']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /PCI host device hostpci0 \(0000:03:10\.0\) needs an IOMMU/);
    assert.match(r.stderr, /intel_iommu=on iommu=pt/);
    assert.equal(await h.state('vfio-real'), 'stopped');
    assert.deepEqual(qemuFor(vm.id), [], 'no QEMU was spawned');
    assert.ok(!existsSync(join(vm.dir, 'logs', 'qemu.log')), 'QEMU never ran for it');
  });

  test('with an IOMMU (fixture sysfs): the group is bound, QEMU runs vfio-pci,host=ADDR, and the devices are given back', async () => {
    const work = mkdtempSync(join(tmpdir(), 'hgt-sys-'));
    execFileSync('cp', ['-a', join(fixtures, 'sysfs', 'workstation'), join(work, 'sys')]);
    execFileSync('cp', ['-a', join(fixtures, 'proc', 'workstation'), join(work, 'proc')]);
    // Stand-ins for the nodes vfio-pci creates; QEMU itself opens the real /dev/vfio and fails there.
    mkdirSync(join(work, 'dev', 'vfio'), { recursive: true });
    for (const n of ['vfio', '13']) writeFileSync(join(work, 'dev', 'vfio', n), '');
    const sys = join(work, 'sys');
    const h = new FixtureHostHarness({ HANGAR_SYSFS_ROOT: sys, HANGAR_PROCFS_ROOT: join(work, 'proc'), HANGAR_DEVFS_ROOT: join(work, 'dev') });
    harnesses.push(h);
    const attr = (addr: string, name: string): string => readFileSync(join(sys, 'bus/pci/devices', addr, name), 'utf8');

    // The GPU shares IOMMU group 13 with its audio function (and a root port, which stays).
    const vm = await createVm(h, 'vfio-gpu', { hostPci: [{ id: 'hostpci0', address: '0000:01:00.0', rom: false }] });
    const cmdline = (await h.json<string[]>(['cmdline', 'vfio-gpu'])).join(' ');
    assert.match(cmdline, /"driver":"vfio-pci","id":"hostpci0","host":"0000:01:00\.0"/);
    const r = await h.run(['start', 'vfio-gpu']);
    assert.notEqual(r.code, 0, `the start cannot succeed without the real device: ${r.stdout}`);
    // QEMU ran and said why: the device is not in this machine's /sys.
    assert.match(r.stderr, /QEMU exited during start-up: .*vfio \/sys\/bus\/pci\/devices\/0000:01:00\.0: no such host device/);
    assert.match(readFileSync(join(vm.dir, 'logs', 'qemu.log'), 'utf8'), /0000:01:00\.0/);
    assert.equal(await h.state('vfio-gpu'), 'stopped');
    // Both functions were moved to vfio-pci (driver_override + unbind + probe), then given back.
    for (const addr of ['0000:01:00.0', '0000:01:00.1']) {
      assert.equal(attr(addr, 'driver_override').trim(), '', `${addr}: driver_override cleared again`);
    }
    assert.equal(readFileSync(join(sys, 'bus/pci/drivers/amdgpu/unbind'), 'utf8').trim(), '0000:01:00.0', 'the GPU was unbound from amdgpu');
    assert.equal(readFileSync(join(sys, 'bus/pci/drivers/snd_hda_intel/unbind'), 'utf8').trim(), '0000:01:00.1', 'its audio function from snd_hda_intel');
    const log = readFileSync(join(vm.dir, 'logs', 'hangar.log'), 'utf8');
    assert.match(log, /0000:01:00\.0 given back to its host driver/);
    assert.match(log, /0000:01:00\.1 given back to its host driver/);
    assert.equal(readFileSync(join(sys, 'bus/pci/drivers/pcieport/unbind'), 'utf8').trim(), '', 'the root port in the group stays with the host');
  });

  test('a device the host uses (boot VGA) is refused before anything is written', async () => {
    const work = mkdtempSync(join(tmpdir(), 'hgt-sys-'));
    execFileSync('cp', ['-a', join(fixtures, 'sysfs', 'workstation'), join(work, 'sys')]);
    const sys = join(work, 'sys');
    const h = new FixtureHostHarness({ HANGAR_SYSFS_ROOT: sys, HANGAR_PROCFS_ROOT: join(fixtures, 'proc', 'workstation') });
    harnesses.push(h);
    const vm = await createVm(h, 'vfio-vga', { hostPci: [{ id: 'hostpci0', address: '0000:00:02.0' }] });
    const r = await h.run(['start', 'vfio-vga']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /0000:00:02\.0/);
    assert.match(r.stderr, /boot VGA/);
    assert.deepEqual(qemuFor(vm.id), []);
    assert.equal(readFileSync(join(sys, 'bus/pci/drivers/i915/unbind'), 'utf8').trim(), '', 'i915 never lost the device');
  });
});
