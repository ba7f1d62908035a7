// `hangar list`: one row per VM, with the first guest address the agent reported (the core
// polls the agent in the background; '-' without an agent, or before its first answer).
import type { VmSummary } from '../../common/api.ts';
import { table } from './table.ts';

function mib(n?: number): string {
  if (n === undefined) return '-';
  return n >= 1024 && n % 1024 === 0 ? `${n / 1024} GiB` : `${n} MiB`;
}

export function listText(vms: readonly VmSummary[]): string {
  if (!vms.length) return 'No VMs yet. Create one with `hangar create --name NAME ...`.';
  return table([
    ['NAME', 'STATE', 'VCPUS', 'MEMORY', 'ADDRESS', 'NOTE'],
    ...vms.map((v) => [v.name, v.state, String(v.vcpus ?? '-'), mib(v.memoryMiB), (v.guest?.agent && v.guest.addresses[0]) || '-', v.reason ?? '']),
  ]);
}
