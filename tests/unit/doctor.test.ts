import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AccelProbe } from '../../core/node/host/accel.ts';
import { formatDoctorReport, parseMeminfo, runDoctor } from '../../core/node/host/doctor.ts';
import type { DoctorCheck, DoctorOptions, DoctorReport } from '../../core/node/host/doctor.ts';

const MEMINFO_NONE = `MemTotal:        8000000 kB
MemFree:         4000000 kB
AnonHugePages:         0 kB
HugePages_Total:       0
HugePages_Free:        0
HugePages_Rsvd:        0
HugePages_Surp:        0
Hugepagesize:       2048 kB
Hugetlb:               0 kB
`;
const MEMINFO_SOME = MEMINFO_NONE.replace('HugePages_Total:       0', 'HugePages_Total:     512')
  .replace('HugePages_Free:        0', 'HugePages_Free:      100');

const PROBE: AccelProbe = {
  kvm: { available: true, works: false, reason: 'KVM is present but cannot run guests here (test); Hangar will use TCG software emulation' },
  tcg: { works: true, reason: 'TCG software emulation runs guests: test' },
  best: 'tcg',
  probedAt: new Date(0).toISOString(),
  qemuVersion: '7.2.22',
};

/** Binaries: everything present except QEMU, qemu-img and swtpm (so no real process is run). */
function fakeFind(name: string): string | null {
  return ['qemu-system-x86_64', 'qemu-img', 'swtpm'].includes(name) ? null : `/fixture/bin/${name}`;
}

function check(report: DoctorReport, id: string): DoctorCheck {
  const c = report.checks.find((x) => x.id === id);
  assert.ok(c, `check ${id} present (have ${report.checks.map((x) => x.id).join(', ')})`);
  return c;
}

describe('hangar doctor', () => {
  let root: string;
  let full: DoctorOptions; // a well-equipped host
  let bare: DoctorOptions; // nothing there

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'hangar-doctor-'));
    const dev = join(root, 'full/dev');
    const sys = join(root, 'full/sys');
    const proc = join(root, 'full/proc');
    const share = join(root, 'full/share');
    await mkdir(join(dev, 'net'), { recursive: true });
    await writeFile(join(dev, 'kvm'), '');
    await writeFile(join(dev, 'net/tun'), '');
    // no dev/vhost-net
    for (const g of ['0', '1', '2']) await mkdir(join(sys, 'kernel/iommu_groups', g, 'devices'), { recursive: true });
    await mkdir(proc, { recursive: true });
    await writeFile(join(proc, 'meminfo'), MEMINFO_SOME);
    await mkdir(join(share, 'seabios'), { recursive: true });
    await writeFile(join(share, 'seabios/bios-256k.bin'), 'bios');
    await mkdir(join(share, 'OVMF'), { recursive: true });
    await writeFile(join(share, 'OVMF/OVMF_CODE_4M.fd'), 'code');
    await writeFile(join(share, 'OVMF/OVMF_CODE_4M.secboot.fd'), 'code');
    await mkdir(join(share, 'qemu/firmware'), { recursive: true });
    const descriptor = (exe: string, features: string[]): string => JSON.stringify({
      description: 'UEFI firmware for x86_64',
      'interface-types': ['uefi'],
      mapping: { device: 'flash', executable: { filename: join(share, 'OVMF', exe), format: 'raw' } },
      targets: [{ architecture: 'x86_64', machines: ['pc-q35-*'] }],
      features,
    });
    await writeFile(join(share, 'qemu/firmware/60-edk2-x86_64.json'), descriptor('OVMF_CODE_4M.fd', ['acpi-s3']));
    await writeFile(join(share, 'qemu/firmware/50-edk2-x86_64-secure.json'),
      descriptor('OVMF_CODE_4M.secboot.fd', ['secure-boot', 'requires-smm']));
    await writeFile(join(share, 'qemu/firmware/70-bios.json'), JSON.stringify({
      'interface-types': ['bios'], mapping: { device: 'memory', filename: '/x/bios.bin' }, targets: [{ architecture: 'i386' }],
    }));
    full = { devRoot: dev, sysRoot: sys, procRoot: proc, shareRoot: share, dataDir: join(root, 'data/hangar'),
      probe: PROBE, findBinary: fakeFind };

    const bareRoot = join(root, 'bare');
    await mkdir(join(bareRoot, 'dev'), { recursive: true });
    await mkdir(join(bareRoot, 'proc'), { recursive: true });
    await writeFile(join(bareRoot, 'proc/meminfo'), MEMINFO_NONE);
    bare = { devRoot: join(bareRoot, 'dev'), sysRoot: join(bareRoot, 'sys'), procRoot: join(bareRoot, 'proc'),
      shareRoot: join(bareRoot, 'share'), dataDir: join(bareRoot, 'data'), findBinary: () => null,
      probe: { ...PROBE, kvm: { available: false, works: false, reason: 'no /dev/kvm; Hangar will use TCG software emulation' } } };
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('reports a missing /dev/vhost-net with the modprobe fix', async () => {
    const c = check(await runDoctor(full), 'vhost-net');
    assert.equal(c.status, 'missing');
    assert.match(c.fix ?? '', /modprobe vhost_net/);
  });

  it('counts IOMMU groups when present', async () => {
    const c = check(await runDoctor(full), 'iommu');
    assert.equal(c.status, 'ok');
    assert.match(c.detail, /\b3 IOMMU groups\b/);
  });

  it('gives the kernel command line fix when there are no IOMMU groups', async () => {
    const c = check(await runDoctor(bare), 'iommu');
    assert.equal(c.status, 'missing');
    assert.match(c.fix ?? '', /intel_iommu=on iommu=pt/);
    assert.match(c.fix ?? '', /amd_iommu=on/);
  });

  it('parses hugepage counts from meminfo', () => {
    assert.deepEqual(parseMeminfo(MEMINFO_SOME), { total: 512, free: 100, sizeKiB: 2048 });
    assert.deepEqual(parseMeminfo(MEMINFO_NONE), { total: 0, free: 0, sizeKiB: 2048 });
    assert.equal(parseMeminfo('MemTotal: 1 kB\n'), null);
  });

  it('reports reserved hugepages as ok and none as a warning with the sysctl fix', async () => {
    const some = check(await runDoctor(full), 'hugepages');
    assert.equal(some.status, 'ok');
    assert.match(some.detail, /100 of 512 hugepages free/);
    const none = check(await runDoctor(bare), 'hugepages');
    assert.equal(none.status, 'warn');
    assert.match(none.fix ?? '', /echo 1024 > \/proc\/sys\/vm\/nr_hugepages/);
  });

  it('checks /dev/kvm and /dev/net/tun', async () => {
    const r = await runDoctor(full);
    assert.equal(check(r, 'dev-kvm').status, 'ok');
    assert.equal(check(r, 'tun').status, 'ok');
    const b = await runDoctor(bare);
    assert.equal(check(b, 'dev-kvm').status, 'missing');
    assert.match(check(b, 'dev-kvm').fix ?? '', /modprobe kvm_intel/);
    assert.equal(check(b, 'tun').status, 'missing');
    assert.match(check(b, 'tun').fix ?? '', /modprobe tun/);
  });

  it('reads the accelerator verdicts from the probe', async () => {
    const r = await runDoctor(full);
    const kvm = check(r, 'accel-kvm');
    assert.equal(kvm.status, 'warn');
    assert.equal(kvm.detail, PROBE.kvm.reason);
    assert.ok(kvm.fix);
    assert.equal(check(r, 'accel-tcg').status, 'ok');
    const b = await runDoctor(bare);
    assert.equal(check(b, 'accel-kvm').status, 'missing');
  });

  it('lists firmware: SeaBIOS and the UEFI descriptors', async () => {
    const r = await runDoctor(full);
    const seabios = check(r, 'seabios');
    assert.equal(seabios.status, 'ok');
    assert.match(seabios.detail, /bios-256k\.bin/);
    const ovmf = check(r, 'ovmf');
    assert.equal(ovmf.status, 'ok');
    assert.match(ovmf.detail, /^3 firmware descriptors/);
    assert.match(ovmf.detail, /60-edk2-x86_64 \(OVMF_CODE_4M\.fd\)/);
    assert.match(ovmf.detail, /50-edk2-x86_64-secure \(OVMF_CODE_4M\.secboot\.fd\) \[Secure Boot\]/);
    assert.doesNotMatch(ovmf.detail, /70-bios/);

    const b = await runDoctor(bare);
    assert.equal(check(b, 'seabios').status, 'missing');
    assert.equal(check(b, 'seabios').fix, 'apt-get install seabios');
    assert.equal(check(b, 'ovmf').status, 'missing');
    assert.equal(check(b, 'ovmf').fix, 'apt-get install ovmf');
  });

  it('names the Debian package for every missing program', async () => {
    const r = await runDoctor(full);
    assert.equal(check(r, 'qemu').status, 'missing');
    assert.equal(check(r, 'qemu').fix, 'apt-get install qemu-system-x86');
    assert.equal(check(r, 'qemu-img').fix, 'apt-get install qemu-utils');
    assert.equal(check(r, 'swtpm').fix, 'apt-get install swtpm');
    assert.equal(check(r, 'passt').status, 'ok');
    assert.equal(check(r, 'passt').detail, '/fixture/bin/passt');
    const b = await runDoctor(bare);
    assert.equal(check(b, 'qemu-storage-daemon').fix, 'apt-get install qemu-system-common');
    assert.equal(check(b, 'passt').fix, 'apt-get install passt');
  });

  it('reports free space for a data dir that does not exist yet', async () => {
    const c = check(await runDoctor(full), 'disk-space');
    assert.ok(c.status === 'ok' || c.status === 'warn', c.detail);
    assert.match(c.detail, /GiB free/);
  });

  it('without a probe and without QEMU, the accelerator checks fail with the install fix', async () => {
    const { probe: _probe, ...noProbe } = bare;
    const r = await runDoctor(noProbe);
    assert.equal(check(r, 'accel-tcg').status, 'error');
    assert.match(check(r, 'accel-tcg').detail, /qemu-system-x86_64 not found/);
    assert.equal(check(r, 'accel-tcg').fix, 'apt-get install qemu-system-x86');
  });

  it('every missing item carries a fix', async () => {
    for (const r of [await runDoctor(full), await runDoctor(bare)]) {
      for (const c of r.checks) {
        if (c.status === 'missing') assert.ok(c.fix, `${c.id} is missing but has no fix`);
      }
    }
  });

  it('formats an aligned table with every label, status tags and fixes', async () => {
    const report = await runDoctor(full);
    const text = formatDoctorReport(report);
    for (const c of report.checks) assert.ok(text.includes(c.label), `label "${c.label}" in report`);
    assert.match(text, /^\[ ok \] /m);
    assert.match(text, /^\[warn\] /m);
    assert.match(text, /^\[miss\] \/dev\/vhost-net/m);
    assert.match(text, /^ +fix: modprobe vhost_net$/m);
    // the detail column starts at the same offset on every check line
    const lines = text.split('\n').filter((l) => l.startsWith('['));
    assert.equal(lines.length, report.checks.length);
    const columns = new Set(report.checks.map((c, i) => lines[i]!.indexOf(c.detail)));
    assert.equal(columns.size, 1, text);
    assert.match(text, new RegExp(`^${report.checks.length} checks: `, 'm'));
  });
});
