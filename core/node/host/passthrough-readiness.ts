// Can this host assign devices to guests (VFIO)? Checks in the doctor's shape, each with what
// was seen and the exact fix. Read from sysfs and /proc/cmdline only (no dmesg: it needs root
// on most distributions and its text is not stable), so each detail says how sure it is.

import { join } from 'node:path';
import type { DoctorCheck } from './doctor.ts';
import { listNames, readQuiet } from './sysfs-read.ts';

export interface PassthroughReadinessOptions {
  /** Default /sys. */
  sysRoot?: string;
  /** Default /proc. */
  procRoot?: string;
}

export const IOMMU_CMDLINE_FIX = 'add intel_iommu=on iommu=pt (Intel) or amd_iommu=on iommu=pt (AMD) to the kernel command line';
const CMDLINE_HOWTO = '(GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub and reboot)';

export async function passthroughReadiness(opts: PassthroughReadinessOptions = {}): Promise<DoctorCheck[]> {
  const sysRoot = opts.sysRoot ?? '/sys';
  const procRoot = opts.procRoot ?? '/proc';
  const host = await readIommuState(sysRoot, procRoot);
  return [
    iommuCheck(host),
    await interruptRemappingCheck(host, sysRoot),
    await vfioPciCheck(sysRoot),
    await hugepagesCheck(sysRoot),
  ];
}

interface IommuState {
  groupsDir: string;
  groups: number;
  /** Intel VT-d remapping units (class/iommu/dmar*). */
  dmar: string[];
  /** AMD-Vi units (class/iommu/ivhd*). */
  ivhd: string[];
  /** Other IOMMUs (virtio-iommu, ARM SMMU...). */
  other: string[];
  iommuDir: string;
  cmdlineFile: string;
  /** Kernel command line words; undefined when it could not be read. */
  cmdline?: string[];
}

async function readIommuState(sysRoot: string, procRoot: string): Promise<IommuState> {
  const groupsDir = join(sysRoot, 'kernel/iommu_groups');
  const iommuDir = join(sysRoot, 'class/iommu');
  const units = await listNames(iommuDir, []);
  const cmdlineFile = join(procRoot, 'cmdline');
  const cmdline = (await readQuiet(cmdlineFile))?.split(/\s+/).filter(Boolean);
  return {
    groupsDir,
    groups: (await listNames(groupsDir, [])).filter((n) => /^\d+$/.test(n)).length,
    dmar: units.filter((u) => u.startsWith('dmar')),
    ivhd: units.filter((u) => u.startsWith('ivhd')),
    other: units.filter((u) => !u.startsWith('dmar') && !u.startsWith('ivhd')),
    iommuDir,
    cmdlineFile,
    cmdline,
  };
}

const IOMMU_WORDS = /^(intel_iommu|amd_iommu|iommu|intremap|nointremap|vfio_iommu_type1\.|vfio-pci\.|vfio_pci\.)/;

function describeCmdline(s: IommuState): string {
  if (!s.cmdline) return `${s.cmdlineFile} could not be read`;
  const relevant = s.cmdline.filter((w) => IOMMU_WORDS.test(w));
  return relevant.length ? `kernel command line has ${relevant.join(' ')}` : 'kernel command line has no IOMMU options';
}

function describeUnits(s: IommuState): string {
  const parts: string[] = [];
  if (s.dmar.length) parts.push(`Intel VT-d (${s.dmar.join(', ')})`);
  if (s.ivhd.length) parts.push(`AMD-Vi (${s.ivhd.join(', ')})`);
  if (s.other.length) parts.push(`IOMMU ${s.other.join(', ')}`);
  return parts.length ? parts.join(', ') : `no IOMMU units in ${s.iommuDir}`;
}

function iommuCheck(s: IommuState): DoctorCheck {
  const base = { id: 'iommu', label: 'IOMMU for device assignment' };
  if (s.groups > 0) {
    return { ...base, status: 'ok', detail: `${s.groups} IOMMU group${s.groups === 1 ? '' : 's'}; ${describeUnits(s)}; ${describeCmdline(s)}` };
  }
  // Tailor the fix to the vendor when sysfs shows one; otherwise give both.
  const fix = s.dmar.length && !s.ivhd.length ? 'add intel_iommu=on iommu=pt to the kernel command line'
    : s.ivhd.length && !s.dmar.length ? 'add amd_iommu=on iommu=pt to the kernel command line' : IOMMU_CMDLINE_FIX;
  return {
    ...base, status: 'missing',
    detail: `no IOMMU groups in ${s.groupsDir}: devices cannot be assigned to guests; ${describeUnits(s)}; ${describeCmdline(s)}`,
    fix: `${fix} ${CMDLINE_HOWTO}, and enable VT-d / AMD-Vi (IOMMU) in the firmware setup`,
  };
}

// VT-d extended capability register: bit 3 (IR) = interrupt remapping supported.
const ECAP_IR = 1n << 3n;

async function interruptRemappingCheck(s: IommuState, sysRoot: string): Promise<DoctorCheck> {
  const base = { id: 'interrupt-remapping', label: 'Interrupt remapping' };
  if (s.groups === 0) {
    return { ...base, status: 'missing', detail: 'needs an enabled IOMMU first (see the IOMMU check)', fix: IOMMU_CMDLINE_FIX };
  }
  const words = s.cmdline ?? [];
  if (words.includes('intremap=off') || words.includes('nointremap')) {
    return {
      ...base, status: 'warn',
      detail: 'turned off on the kernel command line (intremap=off): VFIO refuses to assign devices unless unsafe interrupts are allowed',
      fix: `remove intremap=off from the kernel command line ${CMDLINE_HOWTO}`,
    };
  }
  const unsafeParam = await readQuiet(join(sysRoot, 'module/vfio_iommu_type1/parameters/allow_unsafe_interrupts'));
  const unsafe = unsafeParam === 'Y' || unsafeParam === '1' || words.some((w) => /^vfio_iommu_type1\.allow_unsafe_interrupts=(1|y|Y)$/.test(w));
  const unsafeNote = unsafe
    ? '; vfio_iommu_type1.allow_unsafe_interrupts is on, so VFIO also assigns devices without remapping (a guest could then forge host interrupts)'
    : '';
  if (s.dmar.length) {
    const lacking: string[] = [];
    const unreadable: string[] = [];
    for (const unit of s.dmar) {
      const ecap = await readQuiet(join(s.iommuDir, unit, 'intel-iommu/ecap'));
      if (ecap === undefined || !/^(0x)?[0-9a-f]+$/i.test(ecap)) unreadable.push(unit);
      else if ((BigInt(`0x${ecap.replace(/^0x/i, '')}`) & ECAP_IR) === 0n) lacking.push(unit);
    }
    if (lacking.length) {
      return {
        ...base, status: 'warn',
        detail: `${lacking.join(', ')} report no interrupt-remapping support (VT-d ECAP.IR clear): VFIO refuses such devices unless unsafe interrupts are allowed${unsafeNote}`,
        fix: 'update the firmware or use a platform with interrupt remapping; as a last resort (insecure) set vfio_iommu_type1.allow_unsafe_interrupts=1',
      };
    }
    if (unreadable.length === 0) {
      return {
        ...base, status: unsafe ? 'warn' : 'ok',
        detail: 'every VT-d unit supports interrupt remapping (ECAP.IR) and the command line does not turn it off; the kernel ' +
          `then enables it by default (sysfs cannot confirm it was enabled: dmesg shows "Enabled IRQ remapping")${unsafeNote}`,
      };
    }
  }
  // AMD-Vi and other IOMMUs expose no remapping capability in sysfs.
  return {
    ...base, status: 'warn',
    detail: `${describeUnits(s)}: whether interrupt remapping is on cannot be read from sysfs (Linux enables it by default where ` +
      `the IOMMU supports it, and the command line does not turn it off)${unsafeNote}`,
    fix: 'check with: dmesg | grep -i remapping (as root)',
  };
}

async function vfioPciCheck(sysRoot: string): Promise<DoctorCheck> {
  const base = { id: 'vfio-pci', label: 'vfio-pci driver' };
  const driverDir = join(sysRoot, 'bus/pci/drivers/vfio-pci');
  const moduleDir = join(sysRoot, 'module/vfio_pci');
  if ((await readQuiet(join(driverDir, 'bind'))) !== undefined || (await listNames(driverDir, [])).length > 0) {
    return { ...base, status: 'ok', detail: `vfio-pci is registered (${driverDir})` };
  }
  if ((await listNames(moduleDir, [])).length > 0) {
    return { ...base, status: 'ok', detail: `vfio_pci module is loaded (${moduleDir})` };
  }
  return {
    ...base, status: 'missing', detail: `vfio-pci is not loaded (no ${driverDir} or ${moduleDir})`,
    fix: 'modprobe vfio-pci (as root; echo vfio-pci > /etc/modules-load.d/vfio-pci.conf loads it at every boot)',
  };
}

interface HugepagePool {
  sizeKiB: number;
  nr?: number;
  free?: number;
}

function formatSize(kiB: number): string {
  return kiB >= 1024 * 1024 ? `${kiB / (1024 * 1024)} GiB` : kiB >= 1024 ? `${kiB / 1024} MiB` : `${kiB} KiB`;
}

async function hugepagesCheck(sysRoot: string): Promise<DoctorCheck> {
  const base = { id: 'passthrough-hugepages', label: 'Hugepages for assigned-device guests' };
  const dir = join(sysRoot, 'kernel/mm/hugepages');
  const pools: HugepagePool[] = [];
  for (const name of await listNames(dir, [])) {
    const m = /^hugepages-(\d+)kB$/.exec(name);
    if (!m) continue;
    const num = async (f: string) => {
      const t = await readQuiet(join(dir, name, f));
      return t !== undefined && /^\d+$/.test(t) ? Number(t) : undefined;
    };
    pools.push({ sizeKiB: Number(m[1]), nr: await num('nr_hugepages'), free: await num('free_hugepages') });
  }
  pools.sort((a, b) => a.sizeKiB - b.sizeKiB);
  if (pools.length === 0) {
    return { ...base, status: 'missing', detail: `no hugepage pools in ${dir}: the kernel lacks hugetlbfs support; guests use normal pages` };
  }
  const reserved = pools.filter((p) => (p.nr ?? 0) > 0);
  if (reserved.length === 0) {
    // Default pool: the smallest size (2 MiB on x86), which vm.nr_hugepages controls.
    const size = pools[0].sizeKiB;
    const pages = Math.max(1, Math.round((2 * 1024 * 1024) / size));
    return {
      ...base, status: 'warn',
      detail: `no hugepages reserved (${pools.map((p) => formatSize(p.sizeKiB)).join(', ')} pools empty): an assigned device pins all guest ` +
        'memory, and with normal pages that takes longer and uses more IOMMU mappings',
      fix: `sysctl -w vm.nr_hugepages=${pages} (as root; ${pages} × ${formatSize(size)} = 2 GiB; keep it with vm.nr_hugepages=${pages} in /etc/sysctl.d/hugepages.conf)`,
    };
  }
  return {
    ...base, status: 'ok',
    detail: reserved.map((p) => `${p.nr} × ${formatSize(p.sizeKiB)} reserved, ${p.free ?? '?'} free`).join('; '),
  };
}
