// Host readiness for device assignment: on the committed workstation fixture (VT-d with
// interrupt remapping, vfio-pci loaded, 2 MiB hugepages reserved), on an empty root, and on
// small temporary roots for each degraded case.

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DoctorCheck } from '../../core/node/host/doctor.ts';
import { IOMMU_CMDLINE_FIX, passthroughReadiness } from '../../core/node/host/passthrough-readiness.ts';

const FIXTURES = join(import.meta.dirname, '../fixtures');

function byId(checks: DoctorCheck[]): Record<string, DoctorCheck> {
  return Object.fromEntries(checks.map((c) => [c.id, c]));
}

describe('passthroughReadiness', () => {
  let tmp: string;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'hangar-ready-'));
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  /** A minimal sys/proc pair: files maps paths (relative to the pair's dir) to contents. */
  async function root(name: string, files: Record<string, string>): Promise<{ sysRoot: string; procRoot: string }> {
    const base = join(tmp, name);
    for (const [p, text] of Object.entries(files)) {
      await mkdir(dirname(join(base, p)), { recursive: true });
      await writeFile(join(base, p), text);
    }
    return { sysRoot: join(base, 'sys'), procRoot: join(base, 'proc') };
  }

  it('is all ok on the workstation fixture, reading what the command line has', async () => {
    const c = byId(await passthroughReadiness({ sysRoot: join(FIXTURES, 'sysfs/workstation'), procRoot: join(FIXTURES, 'proc/workstation') }));
    assert.deepEqual(Object.keys(c), ['iommu', 'interrupt-remapping', 'vfio-pci', 'passthrough-hugepages']);
    for (const check of Object.values(c)) assert.equal(check.status, 'ok', `${check.id}: ${check.detail}`);
    assert.match(c['iommu'].detail, /21 IOMMU groups; Intel VT-d \(dmar0\); kernel command line has intel_iommu=on iommu=pt/);
    assert.match(c['interrupt-remapping'].detail, /ECAP\.IR/);
    assert.match(c['interrupt-remapping'].detail, /cannot confirm/, 'honest about what sysfs does not show');
    assert.match(c['passthrough-hugepages'].detail, /1024 × 2 MiB reserved, 512 free/);
  });

  it('on an empty root every piece is missing, each with its fix', async () => {
    const empty = join(tmp, 'empty');
    await mkdir(empty);
    const c = byId(await passthroughReadiness({ sysRoot: empty, procRoot: empty }));
    assert.equal(c['iommu'].status, 'missing');
    assert.ok(c['iommu'].fix?.startsWith(IOMMU_CMDLINE_FIX));
    assert.match(c['iommu'].detail, /cmdline could not be read/);
    assert.equal(c['interrupt-remapping'].status, 'missing');
    assert.equal(c['vfio-pci'].status, 'missing');
    assert.match(c['vfio-pci'].fix ?? '', /^modprobe vfio-pci/);
    assert.equal(c['passthrough-hugepages'].status, 'missing');
    assert.match(c['passthrough-hugepages'].detail, /hugetlbfs/);
  });

  it('VT-d present but no groups: the Intel fix, and the command line shown as it is', async () => {
    const r = await root('vtd-off', {
      'sys/class/iommu/dmar0/intel-iommu/ecap': 'f050da\n',
      'proc/cmdline': 'BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet\n',
    });
    const c = byId(await passthroughReadiness(r));
    assert.equal(c['iommu'].status, 'missing');
    assert.match(c['iommu'].detail, /Intel VT-d \(dmar0\); kernel command line has no IOMMU options/);
    assert.match(c['iommu'].fix ?? '', /^add intel_iommu=on iommu=pt to the kernel command line/);
  });

  it('interrupt remapping: turned off on the command line, or not supported by a VT-d unit', async () => {
    const off = await root('intremap-off', {
      'sys/kernel/iommu_groups/0/type': 'DMA\n',
      'sys/class/iommu/dmar0/intel-iommu/ecap': 'f050da\n',
      'proc/cmdline': 'intel_iommu=on intremap=off\n',
    });
    const c1 = byId(await passthroughReadiness(off));
    assert.equal(c1['interrupt-remapping'].status, 'warn');
    assert.match(c1['interrupt-remapping'].fix ?? '', /remove intremap=off/);

    const noIr = await root('no-ir', {
      'sys/kernel/iommu_groups/0/type': 'DMA\n',
      'sys/class/iommu/dmar0/intel-iommu/ecap': 'f050d2\n', // bit 3 (IR) clear
      'sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts': 'Y\n',
      'proc/cmdline': 'intel_iommu=on\n',
    });
    const c2 = byId(await passthroughReadiness(noIr));
    assert.equal(c2['interrupt-remapping'].status, 'warn');
    assert.match(c2['interrupt-remapping'].detail, /dmar0 report no interrupt-remapping support/);
    assert.match(c2['interrupt-remapping'].detail, /allow_unsafe_interrupts is on/);
  });

  it('AMD-Vi: groups present, remapping not confirmable from sysfs (warn, says so)', async () => {
    const r = await root('amd', {
      'sys/kernel/iommu_groups/0/type': 'DMA\n',
      'sys/kernel/iommu_groups/1/type': 'DMA\n',
      'sys/devices/virtual/iommu/ivhd0/amd-iommu/features': '0\n',
      'proc/cmdline': 'amd_iommu=on iommu=pt\n',
    });
    await mkdir(join(r.sysRoot, 'class/iommu'), { recursive: true });
    await symlink('../../devices/virtual/iommu/ivhd0', join(r.sysRoot, 'class/iommu/ivhd0'));
    const c = byId(await passthroughReadiness(r));
    assert.equal(c['iommu'].status, 'ok');
    assert.match(c['iommu'].detail, /2 IOMMU groups; AMD-Vi \(ivhd0\)/);
    assert.equal(c['interrupt-remapping'].status, 'warn');
    assert.match(c['interrupt-remapping'].detail, /cannot be read from sysfs/);
  });

  it('vfio-pci loaded as a module only is ok; empty hugepage pools warn with the sysctl fix', async () => {
    const r = await root('pools-empty', {
      'sys/module/vfio_pci/refcnt': '0\n',
      'sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages': '0\n',
      'sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages': '0\n',
    });
    const c = byId(await passthroughReadiness(r));
    assert.equal(c['vfio-pci'].status, 'ok');
    assert.match(c['vfio-pci'].detail, /module is loaded/);
    assert.equal(c['passthrough-hugepages'].status, 'warn');
    assert.match(c['passthrough-hugepages'].fix ?? '', /^sysctl -w vm\.nr_hugepages=1024 .*2 MiB = 2 GiB.*\/etc\/sysctl\.d\//);
  });
});
