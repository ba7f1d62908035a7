// The guest NUMA nodes of the "Edit CPU and memory" dialog as plain data: rows to and from the
// definition's memory.numa, an even split of the vCPU slots and memory over N nodes, and the patch
// part edit() takes. Only each field's syntax is checked here; whether the nodes cover every vCPU
// slot and add up to the memory is the core's rule (its refusal names the fix).
import { formatCpuSet, parseCpuSet } from '../../../core/common/cpu-memory.ts';
import type { VmDefinition } from '../../../core/common/model.ts';
import { numaPolicies } from '../../../core/common/model.ts';

export type NumaPolicy = (typeof numaPolicies)[number];
export { numaPolicies };

export interface NumaRow {
  /** Guest vCPU slots of the node ("0-1"). */
  cpus: string;
  memoryMiB: string;
  /** Host nodes its memory comes from ("" = wherever the host puts it). */
  hostNodes: string;
  policy: NumaPolicy;
}

export type NumaRowErrors = Partial<Record<keyof NumaRow, string>>;

export function numaRowsFromDefinition(def: Pick<VmDefinition, 'memory'>): NumaRow[] {
  return (def.memory?.numa ?? []).map((n) => ({ cpus: n.cpus, memoryMiB: String(n.memoryMiB), hostNodes: n.hostNodes ?? '', policy: n.policy ?? 'bind' }));
}

/**
 * N nodes sharing the slots and memory as evenly as whole vCPUs and MiB allow (the first nodes
 * take what does not divide), each keeping the host binding its row had.
 */
export function splitEvenly(count: number, slots: number, memoryMiB: number, before: readonly NumaRow[] = []): NumaRow[] {
  const n = Math.max(1, Math.min(count, slots));
  const rows: NumaRow[] = [];
  let cpu = 0;
  for (let i = 0; i < n; i++) {
    const cpus = Math.floor(slots / n) + (i < slots % n ? 1 : 0);
    const mem = Math.floor(memoryMiB / n) + (i < memoryMiB % n ? 1 : 0);
    rows.push({
      cpus: formatCpuSet(Array.from({ length: cpus }, (_, k) => cpu + k)), memoryMiB: String(mem),
      hostNodes: before[i]?.hostNodes ?? '', policy: before[i]?.policy ?? 'bind',
    });
    cpu += cpus;
  }
  return rows;
}

/**
 * The memory patch keys for the rows: numa (null to take the nodes away when the definition has
 * some), and numaDistances dropped (null) when the node count changes (the old table no longer fits).
 */
export function numaPatch(rows: readonly NumaRow[], def: Pick<VmDefinition, 'memory'>): { ok: true; memory: Record<string, unknown> } | { ok: false; errors: NumaRowErrors[] } {
  const errors: NumaRowErrors[] = rows.map(() => ({}));
  let bad = false;
  const nodes = rows.map((r, i) => {
    const e = errors[i]!;
    // Number inputs hand numbers back through v-model: every field is read as text.
    const cpuText = String(r.cpus).trim();
    const cpus = parseCpuSet(cpuText);
    if (!cpuText || cpus === null || !cpus.length) e.cpus = 'vCPUs as a list like 0-1 or 0,2';
    const mem = String(r.memoryMiB).trim();
    if (!/^\d+$/.test(mem) || Number(mem) < 1) e.memoryMiB = 'memory in whole MiB, at least 1';
    const host = String(r.hostNodes).trim();
    if (host && parseCpuSet(host) === null) e.hostNodes = 'host nodes as a list like 0 or 0-1';
    if (Object.keys(e).length) bad = true;
    return { cpus: cpus ? formatCpuSet(cpus) : cpuText, memoryMiB: Number(mem), ...(host ? { hostNodes: formatCpuSet(parseCpuSet(host) ?? []), policy: r.policy } : {}) };
  });
  if (bad) return { ok: false, errors };
  const had = def.memory?.numa ?? [];
  const memory: Record<string, unknown> = {};
  if (nodes.length) memory.numa = nodes;
  else if (had.length) memory.numa = null;
  if (def.memory?.numaDistances !== undefined && nodes.length !== had.length) memory.numaDistances = null;
  return { ok: true, memory };
}
