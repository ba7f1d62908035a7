// `hangar os list|detect`: the guest OS catalogue (osinfo-db + generic fallbacks) and ISO
// detection. Runs in the CLI process; no daemon needed.
import { HangarError } from '../../common/errors.ts';
import { table } from './table.ts';
import { presetFor } from '../../common/os-presets.ts';
import type { OsPreset } from '../../common/os-presets.ts';
import type { OsDetection, OsEntry } from '../../common/os-types.ts';
import { GENERIC_OSES } from '../../common/os-types.ts';
import { detectOs, listOses } from '../osinfo/osinfo-db.ts';

export const OS_USAGE = `Usage:
  hangar os list [--search TEXT] [--json]   guest OSes Hangar knows (generic entries first)
  hangar os detect ISO [--json]             identify an install ISO and show the VM defaults
`;

function size(bytes: number): string {
  const gib = bytes / 1024 ** 3;
  return gib >= 1 ? `${Number.isInteger(gib) ? gib : gib.toFixed(1)} GiB` : `${Math.round(bytes / 1024 ** 2)} MiB`;
}

export function presetText(p: OsPreset): string[] {
  const fw = p.firmware === 'uefi-secure' ? 'UEFI + Secure Boot' : p.firmware === 'uefi' ? 'UEFI' : 'BIOS';
  const lines = [
    `  memory    ${p.memoryMiB >= 1024 && p.memoryMiB % 1024 === 0 ? `${p.memoryMiB / 1024} GiB` : `${p.memoryMiB} MiB`}`,
    `  vCPUs     ${p.vcpus}`,
    `  disk      ${size(p.diskBytes)} on ${p.diskBus}`,
    `  NIC       ${p.nicModel}`,
    `  firmware  ${fw}${p.tpm ? ' with TPM 2.0' : ''}`,
    `  CPU       ${p.plainCpu ? 'qemu64' : 'host under KVM, max under TCG'}`,
  ];
  for (const n of p.notes) lines.push(`  note: ${n}`);
  return lines;
}

export function detectionText(path: string, d: OsDetection, preset: OsPreset): string {
  const lines = [`ISO:          ${path}`];
  if (d.os) {
    lines.push(`Detected:     ${d.os.name} (${d.os.id}${d.arch ? `, ${d.arch}` : ''})`, `Matched by:   ${d.matchedBy.join(', ')}`);
  } else {
    lines.push('Detected:     unknown (no osinfo-db entry matches this medium); defaults below are generic');
  }
  const m = d.media;
  lines.push(`Volume id:    ${m.volumeId || '-'}`, `System id:    ${m.systemId || '-'}`, `Publisher:    ${m.publisherId || '-'}`,
    `Application:  ${m.applicationId || '-'}`, `Volume size:  ${m.volumeSizeBytes} bytes (${size(m.volumeSizeBytes)})`,
    `Defaults (${preset.osId}):`, ...presetText(preset));
  return lines.join('\n');
}

function listRow(o: OsEntry): string[] {
  return [o.id, o.name, o.version ?? '-', o.family];
}

export async function osCommand(sub: string | undefined, positionals: string[], values: Record<string, unknown>, print: (s: string) => void): Promise<number> {
  if (values.help || sub === '--help' || sub === '-h' || sub === 'help') {
    print(OS_USAGE);
    return 0;
  }
  if (!sub) {
    print(OS_USAGE);
    return 2;
  }
  if (sub === 'list') {
    if (positionals.length) throw new HangarError('invalid-input', `unexpected ${positionals.map((p) => JSON.stringify(p)).join(' ')}`, 'use --search TEXT to filter');
    const search = values.search as string | undefined;
    const oses = await listOses(search === undefined ? {} : { search });
    if (values.json) print(JSON.stringify(oses, null, 2));
    else if (!oses.length) print(`No OS matches "${search}".`);
    else print(table([['ID', 'NAME', 'VERSION', 'FAMILY'], ...oses.map(listRow)]));
    return 0;
  }
  if (sub === 'detect') {
    if (positionals.length !== 1) throw new HangarError('invalid-input', 'expected one ISO path', 'hangar os detect PATH.iso');
    const path = positionals[0]!;
    const d = await detectOs(path);
    const preset = presetFor(d.os ?? GENERIC_OSES.find((o) => o.id === 'other')!);
    if (values.json) print(JSON.stringify({ ...d, preset }, null, 2));
    else print(detectionText(path, d, preset));
    return 0;
  }
  throw new HangarError('invalid-input', `unknown subcommand "os ${sub}"`, 'use `hangar os list` or `hangar os detect ISO`');
}
