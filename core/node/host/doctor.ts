// `hangar doctor`: one look at everything on the host that Hangar depends on, each item with
// its state and, when something is missing or degraded, the exact command that fixes it.
// Every filesystem root is injectable so tests run against fixture trees.

import { execFile } from 'node:child_process';
import { constants, existsSync } from 'node:fs';
import { access, readFile, readdir, statfs } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { passthroughReadiness } from './passthrough-readiness.ts';
import { describeError } from '../../common/errors.ts';
import { pathExists } from '../fs-util.ts';
import { dataDir as hangarDataDir } from '../paths.ts';
import { probeAccelerators } from './accel.ts';
import type { AccelProbe, ProbeAcceleratorsOptions } from './accel.ts';
import { DEB_PACKAGES, findBinary as defaultFindBinary, formatQemuVersion, parseQemuVersion, qemuInfo } from './binaries.ts';
import { usableBridges } from './bridges.ts';

export type DoctorStatus = 'ok' | 'warn' | 'missing' | 'error';

export interface DoctorCheck {
  id: string;
  label: string;
  status: DoctorStatus;
  detail: string;
  fix?: string;
}

export interface DoctorReport {
  checks: DoctorCheck[];
}

export interface DoctorOptions {
  /** Default /dev. */
  devRoot?: string;
  /** Default /sys. */
  sysRoot?: string;
  /** Default /proc. */
  procRoot?: string;
  /** Hangar's data directory, for the free-space check (default $XDG_DATA_HOME/hangar or ~/.local/share/hangar). */
  dataDir?: string;
  /** Accelerator probe result; probed (or read from the probe cache) when absent. */
  probe?: AccelProbe;
  /** Options for that probe (cache dir, timeout...). */
  probeOptions?: ProbeAcceleratorsOptions;
  /** Default /usr/share: SeaBIOS and QEMU firmware descriptors live below it. */
  shareRoot?: string;
  /** Binary lookup (default: findBinary from binaries.ts). */
  findBinary?: (name: string) => string | null;
}

/** Free space under which the data dir gets a warning. */
export const LOW_DISK_BYTES = 5 * 1024 ** 3;

const GiB = 1024 ** 3;

function aptFix(name: string): string {
  return `apt-get install ${DEB_PACKAGES[name] ?? name}`;
}

const exists = pathExists;

async function canReadWrite(p: string): Promise<boolean> {
  try {
    await access(p, constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Parsers (exported for tests)
// ---------------------------------------------------------------------------------------------

export interface HugepageInfo {
  total: number;
  free: number;
  /** Size of one hugepage in KiB (Hugepagesize). */
  sizeKiB: number;
}

/** HugePages_Total / HugePages_Free / Hugepagesize from /proc/meminfo text; null if absent. */
export function parseMeminfo(text: string): HugepageInfo | null {
  const field = (name: string): number | undefined => {
    const m = new RegExp(`^${name}:\\s*(\\d+)`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };
  const total = field('HugePages_Total');
  const free = field('HugePages_Free');
  const sizeKiB = field('Hugepagesize');
  if (total === undefined || free === undefined || sizeKiB === undefined) return null;
  return { total, free, sizeKiB };
}

export interface FirmwareDescriptor {
  file: string;
  description: string;
  interfaceTypes: string[];
  architectures: string[];
  features: string[];
  executable?: string;
  nvramTemplate?: string;
}

/** The fields Hangar uses from a QEMU firmware descriptor (docs/interop/firmware.json). */
export function parseFirmwareDescriptor(file: string, json: unknown): FirmwareDescriptor | null {
  if (!json || typeof json !== 'object') return null;
  const d = json as {
    description?: unknown; 'interface-types'?: unknown; targets?: unknown; features?: unknown;
    mapping?: { executable?: { filename?: unknown }; 'nvram-template'?: { filename?: unknown }; filename?: unknown };
  };
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  const targets = Array.isArray(d.targets) ? d.targets as Array<{ architecture?: unknown }> : [];
  const executable = d.mapping?.executable?.filename ?? d.mapping?.filename;
  const nvram = d.mapping?.['nvram-template']?.filename;
  const out: FirmwareDescriptor = {
    file,
    description: typeof d.description === 'string' ? d.description : '',
    interfaceTypes: strings(d['interface-types']),
    architectures: targets.map((t) => t.architecture).filter((a): a is string => typeof a === 'string'),
    features: strings(d.features),
  };
  if (typeof executable === 'string') out.executable = executable;
  if (typeof nvram === 'string') out.nvramTemplate = nvram;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Individual checks
// ---------------------------------------------------------------------------------------------

function toolVersion(path: string): Promise<string | null> {
  return new Promise((done) => {
    execFile(path, ['--version'], { timeout: 10_000, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } },
      (err, stdout) => {
        const parsed = err ? null : parseQemuVersion(stdout);
        done(parsed ? formatQemuVersion(parsed.version) : null);
      });
  });
}

async function checkQemu(find: (n: string) => string | null): Promise<DoctorCheck> {
  const base = { id: 'qemu', label: 'QEMU (qemu-system-x86_64)' };
  const path = find('qemu-system-x86_64');
  if (!path) {
    return { ...base, status: 'missing', detail: 'qemu-system-x86_64 not found', fix: aptFix('qemu-system-x86_64') };
  }
  try {
    const info = await qemuInfo(path);
    return { ...base, status: 'ok', detail: `${path}: ${info.versionText}` };
  } catch (e) {
    return { ...base, status: 'error', detail: `${path} does not run: ${describeError(e)}`,
      fix: 'apt-get install --reinstall qemu-system-x86' };
  }
}

async function checkQemuImg(find: (n: string) => string | null): Promise<DoctorCheck> {
  const base = { id: 'qemu-img', label: 'qemu-img (disk images)' };
  const path = find('qemu-img');
  if (!path) return { ...base, status: 'missing', detail: 'qemu-img not found', fix: aptFix('qemu-img') };
  const version = await toolVersion(path);
  if (!version) {
    return { ...base, status: 'error', detail: `${path} --version failed`, fix: 'apt-get install --reinstall qemu-utils' };
  }
  return { ...base, status: 'ok', detail: `${path}, version ${version}` };
}

function checkTool(find: (n: string) => string | null, id: string, label: string, purpose: string): DoctorCheck {
  const path = find(id);
  if (path) return { id, label, status: 'ok', detail: path };
  return { id, label, status: 'missing', detail: `${id} not found (${purpose})`, fix: aptFix(id) };
}

function accelChecks(probe: AccelProbe | null, probeError: string | null, kvmNode: string, kvmExists: boolean): DoctorCheck[] {
  const kvmLabel = 'KVM accelerator';
  const tcgLabel = 'TCG accelerator (software)';
  if (!probe) {
    const detail = `not probed: ${probeError ?? 'unknown error'}`;
    return [
      { id: 'accel-kvm', label: kvmLabel, status: 'error', detail, fix: aptFix('qemu-system-x86_64') },
      { id: 'accel-tcg', label: tcgLabel, status: 'error', detail, fix: aptFix('qemu-system-x86_64') },
    ];
  }
  let kvm: DoctorCheck;
  if (probe.kvm.works) {
    kvm = { id: 'accel-kvm', label: kvmLabel, status: 'ok', detail: probe.kvm.reason };
  } else if (probe.kvm.available) {
    kvm = {
      id: 'accel-kvm', label: kvmLabel, status: 'warn', detail: probe.kvm.reason,
      fix: 'nothing required: VMs set to accelerator "auto" run under TCG (slower). For KVM, run Hangar on ' +
        'bare metal or enable nested virtualization in the outer hypervisor (e.g. kvm_intel nested=1 / kvm_amd nested=1)',
    };
  } else {
    kvm = {
      id: 'accel-kvm', label: kvmLabel, status: 'missing', detail: probe.kvm.reason,
      fix: kvmExists
        ? 'sudo usermod -aG kvm $USER, then log out and back in'
        : `enable virtualization (VT-x/AMD-V) in the firmware settings, then: modprobe kvm_intel (or kvm_amd) so ${kvmNode} appears`,
    };
  }
  const tcg: DoctorCheck = probe.tcg.works
    ? { id: 'accel-tcg', label: tcgLabel, status: 'ok', detail: probe.tcg.reason }
    : { id: 'accel-tcg', label: tcgLabel, status: 'error', detail: probe.tcg.reason,
      fix: 'apt-get install --reinstall qemu-system-x86' };
  return [kvm, tcg];
}

async function checkDevKvm(devRoot: string): Promise<DoctorCheck> {
  const node = join(devRoot, 'kvm');
  const base = { id: 'dev-kvm', label: '/dev/kvm' };
  if (!(await exists(node))) {
    return { ...base, status: 'missing', detail: `${node} does not exist: no hardware virtualization available`,
      fix: 'enable virtualization (VT-x/AMD-V) in the firmware settings, then: modprobe kvm_intel (or kvm_amd)' };
  }
  if (!(await canReadWrite(node))) {
    return { ...base, status: 'warn', detail: `${node} exists but this user cannot open it for reading and writing`,
      fix: 'sudo usermod -aG kvm $USER, then log out and back in' };
  }
  return { ...base, status: 'ok', detail: `${node} present, readable and writable by this user` };
}

export async function checkVhostNet(devRoot: string): Promise<DoctorCheck> {
  const node = join(devRoot, 'vhost-net');
  const base = { id: 'vhost-net', label: '/dev/vhost-net' };
  if (!(await exists(node))) {
    return { ...base, status: 'missing', detail: `${node} does not exist: no in-kernel virtio-net acceleration for tap networking`,
      fix: 'modprobe vhost_net' };
  }
  if (!(await canReadWrite(node))) {
    return { ...base, status: 'warn', detail: `${node} exists but this user cannot open it (only privileged tap setups can use it)`,
      fix: `sudo chgrp kvm ${node} && sudo chmod 660 ${node} (make it permanent with a udev rule)` };
  }
  return { ...base, status: 'ok', detail: `${node} present and usable` };
}

export async function checkVhostVsock(devRoot: string): Promise<DoctorCheck> {
  const node = join(devRoot, 'vhost-vsock');
  const base = { id: 'vhost-vsock', label: '/dev/vhost-vsock' };
  if (!(await exists(node))) {
    return { ...base, status: 'missing', detail: `${node} does not exist: no host-guest vsock sockets`, fix: 'modprobe vhost_vsock' };
  }
  if (!(await canReadWrite(node))) {
    return { ...base, status: 'warn', detail: `${node} exists but this user cannot open it`, fix: `sudo chmod 666 ${node} (or a udev rule for your group)` };
  }
  return { ...base, status: 'ok', detail: `${node} present and usable` };
}

export async function checkTun(devRoot: string): Promise<DoctorCheck> {
  const node = join(devRoot, 'net', 'tun');
  const base = { id: 'tun', label: '/dev/net/tun' };
  if (!(await exists(node))) {
    return { ...base, status: 'missing', detail: `${node} does not exist: no tap networking`, fix: 'modprobe tun' };
  }
  return { ...base, status: 'ok', detail: `${node} present` };
}

async function checkHugepages(procRoot: string): Promise<DoctorCheck> {
  const file = join(procRoot, 'meminfo');
  const base = { id: 'hugepages', label: 'Hugepages' };
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    return { ...base, status: 'error', detail: `cannot read ${file}: ${describeError(e)}` };
  }
  const info = parseMeminfo(text);
  if (!info) return { ...base, status: 'warn', detail: `${file} has no hugepage fields: the kernel lacks hugetlbfs support` };
  const size = info.sizeKiB >= 1024 * 1024 ? `${info.sizeKiB / (1024 * 1024)} GiB` : `${info.sizeKiB / 1024} MiB`;
  if (info.total === 0) {
    const pagesFor2GiB = Math.max(1, Math.round((2 * 1024 * 1024) / info.sizeKiB));
    return {
      ...base, status: 'warn', detail: `no hugepages reserved (page size ${size}); VMs use normal pages`,
      fix: `echo ${pagesFor2GiB} > /proc/sys/vm/nr_hugepages (as root; reserves ${pagesFor2GiB} × ${size} = 2 GiB; ` +
        'keep it across reboots with vm.nr_hugepages in /etc/sysctl.d/)',
    };
  }
  return { ...base, status: 'ok', detail: `${info.free} of ${info.total} hugepages free (page size ${size})` };
}

async function checkSeabios(shareRoot: string): Promise<DoctorCheck> {
  const base = { id: 'seabios', label: 'SeaBIOS firmware' };
  // QEMU's pc/q35 machines load bios-256k.bin; Debian ships it in /usr/share/seabios and links
  // it into QEMU's data dir.
  const candidates = ['seabios/bios-256k.bin', 'qemu/bios-256k.bin', 'seabios/bios.bin', 'qemu/bios.bin']
    .map((p) => join(shareRoot, p));
  const found: string[] = [];
  for (const c of candidates) if (await exists(c)) found.push(c);
  if (found.length === 0) {
    return { ...base, status: 'missing', detail: `no SeaBIOS image (looked for ${candidates.join(', ')})`,
      fix: 'apt-get install seabios' };
  }
  return { ...base, status: 'ok', detail: found.join(', ') };
}

async function checkOvmf(shareRoot: string): Promise<DoctorCheck> {
  const dir = join(shareRoot, 'qemu', 'firmware');
  const base = { id: 'ovmf', label: 'UEFI firmware (OVMF)' };
  const files = await readdir(dir).then((entries) => entries.filter((f) => f.endsWith('.json')).sort(), () => []);
  const uefi: Array<FirmwareDescriptor & { present: boolean }> = [];
  for (const f of files) {
    let json: unknown;
    try {
      json = JSON.parse(await readFile(join(dir, f), 'utf8'));
    } catch {
      continue;
    }
    const d = parseFirmwareDescriptor(f, json);
    if (!d || !d.interfaceTypes.includes('uefi') || !d.architectures.includes('x86_64')) continue;
    const exe = d.executable;
    uefi.push({ ...d, present: exe !== undefined && (await exists(exe)) });
  }
  const count = `${files.length} firmware descriptor${files.length === 1 ? '' : 's'} in ${dir}`;
  if (uefi.length === 0) {
    return { ...base, status: 'missing', detail: `${count}, none for x86_64 UEFI`, fix: 'apt-get install ovmf' };
  }
  const describe = (d: FirmwareDescriptor & { present: boolean }): string => {
    const tags: string[] = [];
    if (d.features.includes('secure-boot')) tags.push(d.features.includes('enrolled-keys') ? 'Secure Boot, keys enrolled' : 'Secure Boot');
    if (!d.present) tags.push(`MISSING ${d.executable ?? 'executable'}`);
    const name = `${basename(d.file, '.json')} (${d.executable ? basename(d.executable) : '?'})`;
    return tags.length ? `${name} [${tags.join('; ')}]` : name;
  };
  const usable = uefi.filter((d) => d.present);
  const detail = `${count}; UEFI: ${uefi.map(describe).join(', ')}`;
  if (usable.length === 0) {
    return { ...base, status: 'error', detail, fix: 'apt-get install --reinstall ovmf' };
  }
  if (!usable.some((d) => d.features.includes('secure-boot'))) {
    return { ...base, status: 'warn', detail: `${detail}; no Secure Boot build (needed by Windows 11)`, fix: 'apt-get install ovmf' };
  }
  return { ...base, status: 'ok', detail };
}

async function nearestExisting(p: string): Promise<string> {
  let cur = resolve(p);
  for (;;) {
    if (await exists(cur)) return cur;
    const up = dirname(cur);
    if (up === cur) return cur;
    cur = up;
  }
}

async function checkDisk(dataDir: string): Promise<DoctorCheck> {
  const base = { id: 'disk-space', label: 'Free disk space' };
  const where = await nearestExisting(dataDir);
  try {
    const s = await statfs(where);
    const free = Number(s.bavail) * Number(s.bsize);
    const freeText = `${(free / GiB).toFixed(1)} GiB free for ${dataDir}${where === resolve(dataDir) ? '' : ` (on ${where}; not created yet)`}`;
    if (free < LOW_DISK_BYTES) {
      return { ...base, status: 'warn', detail: `only ${freeText}; VM disks need several GiB each`,
        fix: `free up space on the filesystem holding ${where}, or move Hangar's data dir to a larger disk` };
    }
    return { ...base, status: 'ok', detail: freeText };
  } catch (e) {
    return { ...base, status: 'error', detail: `cannot check free space at ${where}: ${describeError(e)}` };
  }
}

// ---------------------------------------------------------------------------------------------
// runDoctor / formatDoctorReport
// ---------------------------------------------------------------------------------------------

export async function runDoctor(opts: DoctorOptions = {}): Promise<DoctorReport> {
  const devRoot = opts.devRoot ?? '/dev';
  const sysRoot = opts.sysRoot ?? '/sys';
  const procRoot = opts.procRoot ?? '/proc';
  const shareRoot = opts.shareRoot ?? '/usr/share';
  const dataDir = opts.dataDir ?? hangarDataDir();
  const find = opts.findBinary ?? ((name: string) => defaultFindBinary(name));

  const probeResult = (async (): Promise<{ probe: AccelProbe | null; error: string | null }> => {
    if (opts.probe) return { probe: opts.probe, error: null };
    const qemu = find('qemu-system-x86_64');
    if (!qemu) return { probe: null, error: 'qemu-system-x86_64 not found' };
    try {
      return { probe: await probeAccelerators({ devRoot, qemuPath: qemu, ...opts.probeOptions }), error: null };
    } catch (e) {
      return { probe: null, error: describeError(e) };
    }
  })();

  const kvmNode = join(devRoot, 'kvm');
  const [qemu, qemuImg, accel, devKvm, vhost, vsock, tun, iommu, huge, seabios, ovmf, disk] = await Promise.all([
    checkQemu(find),
    checkQemuImg(find),
    probeResult.then(async (r) => accelChecks(r.probe, r.error, kvmNode, await exists(kvmNode))),
    checkDevKvm(devRoot),
    checkVhostNet(devRoot),
    checkVhostVsock(devRoot),
    checkTun(devRoot),
    // IOMMU, interrupt remapping and vfio-pci as `hangar host readiness` judges them (its hugepage check is the passthrough view of ours).
    passthroughReadiness({ sysRoot, procRoot }).then((cs) => cs.filter((c) => c.id !== 'passthrough-hugepages')),
    checkHugepages(procRoot),
    checkSeabios(shareRoot),
    checkOvmf(shareRoot),
    checkDisk(dataDir),
  ]);
  const qsd = checkTool(find, 'qemu-storage-daemon', 'qemu-storage-daemon', 'needed for disk operations on running VMs');
  const swtpm = checkTool(find, 'swtpm', 'swtpm (TPM emulator)', 'needed for virtual TPM 2.0, e.g. Windows 11 guests');
  const passt = checkTool(find, 'passt', 'passt (user-mode networking)', 'needed for unprivileged guest networking');
  // virtiofsd lives outside PATH where it is packaged (Debian 12 has no package for it).
  const virtiofsdPath = find('virtiofsd') ?? ['/usr/libexec/virtiofsd', '/usr/lib/qemu/virtiofsd'].find((p) => existsSync(p)) ?? null;
  const virtiofsd: DoctorCheck = virtiofsdPath
    ? { id: 'virtiofsd', label: 'virtiofsd (virtiofs shared folders)', status: 'ok', detail: virtiofsdPath }
    : { id: 'virtiofsd', label: 'virtiofsd (virtiofs shared folders)', status: 'missing', detail: 'virtiofsd not found: shared folders use virtio-9p', fix: 'install virtiofsd where your distribution packages it (Debian 13+: apt-get install virtiofsd)' };

  // Bridged NICs: the bridges this user may put a VM on (qemu-bridge-helper + its ACL), or why none.
  const br = usableBridges({ sysRoot });
  const bridge: DoctorCheck = br.available
    ? { id: 'bridge', label: 'host bridges for bridged NICs', status: 'ok', detail: br.bridges.join(', ') }
    : { id: 'bridge', label: 'host bridges for bridged NICs', status: 'warn', detail: br.reason ?? 'no usable bridge', ...(br.fix ? { fix: br.fix } : {}) };

  return {
    checks: [qemu, qemuImg, ...accel, devKvm, vhost, vsock, tun, ...iommu, huge, seabios, ovmf, qsd, swtpm, passt, virtiofsd, bridge, disk],
  };
}

const TAGS: Record<DoctorStatus, string> = { ok: '[ ok ]', warn: '[warn]', missing: '[miss]', error: '[fail]' };

/** Aligned text table: one line per check, a "fix:" line under each item that has one, a summary. */
export function formatDoctorReport(report: DoctorReport): string {
  const width = Math.max(0, ...report.checks.map((c) => c.label.length));
  const indent = ' '.repeat(TAGS.ok.length + 1 + width + 2);
  const lines: string[] = [];
  for (const c of report.checks) {
    lines.push(`${TAGS[c.status]} ${c.label.padEnd(width)}  ${c.detail}`);
    if (c.fix) lines.push(`${indent}fix: ${c.fix}`);
  }
  const n = (s: DoctorStatus): number => report.checks.filter((c) => c.status === s).length;
  lines.push('');
  lines.push(`${report.checks.length} checks: ${n('ok')} ok, ${n('warn')} warning${n('warn') === 1 ? '' : 's'}, ` +
    `${n('missing')} missing, ${n('error')} failed`);
  return `${lines.join('\n')}\n`;
}
