// UEFI firmware from QEMU's firmware descriptors (docs/interop/firmware.json), the way libvirt
// picks it: descriptors in /usr/share/qemu/firmware, /etc/qemu/firmware and
// ~/.config/qemu/firmware, a later dir overriding an earlier one file by file name, all of them
// sorted by file name (lower first = higher priority). The first descriptor that fits the
// target (x86_64 + machine type) and the requested features wins.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { HangarError } from '../../common/errors.ts';
import type { FirmwareType, MachineType } from '../../common/model.ts';

export interface FlashFile {
  filename: string;
  format: string;
}

export interface FlashDescriptor {
  /** Absolute path of the descriptor JSON. */
  file: string;
  description: string;
  interfaceTypes: string[];
  targets: Array<{ architecture: string; machines: string[] }>;
  features: string[];
  executable: FlashFile;
  nvramTemplate: FlashFile;
}

/** What buildArgv needs for a UEFI VM: the code image, the VM's own vars file, and whether SMM is on. */
export interface ResolvedFirmware {
  type: Exclude<FirmwareType, 'bios'>;
  code: FlashFile;
  /** The VM's own NVRAM copy (in its folder). */
  vars: FlashFile;
  /** The template the vars file is copied from. */
  varsTemplate: FlashFile;
  secureBoot: boolean;
  requiresSmm: boolean;
  descriptor: string;
}

/** Descriptor dirs, lowest precedence first (a later dir overrides an earlier one per file name). */
export function defaultFirmwareDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const config = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return ['/usr/share/qemu/firmware', '/etc/qemu/firmware', join(config, 'qemu', 'firmware')];
}

function flashFile(v: unknown): FlashFile | null {
  if (!v || typeof v !== 'object') return null;
  const o = v as { filename?: unknown; format?: unknown };
  if (typeof o.filename !== 'string' || !o.filename.startsWith('/')) return null;
  return { filename: o.filename, format: typeof o.format === 'string' ? o.format : 'raw' };
}

/** The flash-device descriptors (others, e.g. memory/kernel mappings, are not used by Hangar). */
export function parseFlashDescriptor(file: string, json: unknown): FlashDescriptor | null {
  if (!json || typeof json !== 'object') return null;
  const d = json as Record<string, unknown>;
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  const mapping = d.mapping as Record<string, unknown> | undefined;
  if (!mapping || mapping.device !== 'flash') return null;
  const executable = flashFile(mapping.executable);
  const nvramTemplate = flashFile(mapping['nvram-template']);
  if (!executable || !nvramTemplate) return null;
  const targets = (Array.isArray(d.targets) ? d.targets : []).flatMap((t: unknown) => {
    const o = t as { architecture?: unknown; machines?: unknown } | null;
    return o && typeof o.architecture === 'string' ? [{ architecture: o.architecture, machines: strings(o.machines) }] : [];
  });
  return {
    file,
    description: typeof d.description === 'string' ? d.description : '',
    interfaceTypes: strings(d['interface-types']),
    targets,
    features: strings(d.features),
    executable,
    nvramTemplate,
  };
}

/** Every readable descriptor, in priority order (file name sorted; later dirs override by name). */
export function listFirmwareDescriptors(dirs: readonly string[] = defaultFirmwareDirs()): FlashDescriptor[] {
  const byName = new Map<string, string>();
  for (const dir of dirs) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const n of names) if (n.endsWith('.json')) byName.set(n, join(dir, n));
  }
  const out: FlashDescriptor[] = [];
  for (const name of [...byName.keys()].sort()) {
    const path = byName.get(name)!;
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(path, 'utf8'));
    } catch {
      continue; // an unreadable or empty file (e.g. /dev/null override to mask one) is skipped
    }
    const d = parseFlashDescriptor(path, json);
    if (d) out.push(d);
  }
  return out;
}

/** QEMU machine-type patterns our machine names stand for. */
const MACHINE_PREFIX: Partial<Record<MachineType, string>> = { q35: 'pc-q35-', pc: 'pc-i440fx-' };

function globMatch(glob: string, name: string): boolean {
  const re = new RegExp(`^${glob.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return re.test(name);
}

export function descriptorFits(d: FlashDescriptor, machine: MachineType): boolean {
  const prefix = MACHINE_PREFIX[machine];
  if (!prefix || !d.interfaceTypes.includes('uefi')) return false;
  const sample = `${prefix}7.2`;
  return d.targets.some((t) => t.architecture === 'x86_64' && t.machines.some((m) => globMatch(m, sample) || globMatch(m, machine)));
}

/** Picks the descriptor for a firmware type, or null. */
export function selectFirmware(descriptors: readonly FlashDescriptor[], type: Exclude<FirmwareType, 'bios'>, machine: MachineType): FlashDescriptor | null {
  const fits = descriptors.filter((d) => descriptorFits(d, machine));
  if (type === 'uefi-secure') {
    return fits.find((d) => d.features.includes('secure-boot') && d.features.includes('enrolled-keys')) ?? null;
  }
  // Plain UEFI: prefer a build without Secure Boot (no SMM needed, boots anything).
  return fits.find((d) => !d.features.includes('secure-boot')) ?? fits[0] ?? null;
}

export const UEFI_VARS_FILE = 'uefi-vars.fd';

export interface ResolveOptions {
  dirs?: readonly string[];
  /** Check that the code and template files exist (default true). */
  checkFiles?: boolean;
}

/** The firmware a VM boots with; null for BIOS (QEMU's built-in SeaBIOS). */
export function resolveFirmware(def: { firmware: FirmwareType; machine: MachineType }, vmDir: string, opts: ResolveOptions = {}): ResolvedFirmware | null {
  if (def.firmware === 'bios') return null;
  const dirs = opts.dirs ?? defaultFirmwareDirs();
  const d = selectFirmware(listFirmwareDescriptors(dirs), def.firmware, def.machine);
  const what = def.firmware === 'uefi-secure' ? 'UEFI firmware with Secure Boot and enrolled keys' : 'UEFI firmware';
  if (!d) {
    throw new HangarError('host-missing', `no ${what} for x86_64 machine ${def.machine} found in the QEMU firmware descriptors (${dirs.join(', ')})`,
      'install the ovmf package (apt-get install ovmf)');
  }
  if (opts.checkFiles !== false) {
    for (const f of [d.executable, d.nvramTemplate]) {
      if (!existsSync(f.filename)) {
        throw new HangarError('host-missing', `the firmware descriptor ${d.file} names ${f.filename}, which does not exist`, 'reinstall the ovmf package (apt-get install --reinstall ovmf)');
      }
    }
  }
  return {
    type: def.firmware,
    code: d.executable,
    vars: { filename: join(vmDir, UEFI_VARS_FILE), format: d.nvramTemplate.format },
    varsTemplate: d.nvramTemplate,
    secureBoot: d.features.includes('secure-boot'),
    requiresSmm: d.features.includes('requires-smm'),
    descriptor: d.file,
  };
}
