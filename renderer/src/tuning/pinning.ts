// The pinning grid of a VM's Overview as plain data: the host's CPUs grouped by NUMA node and
// physical core (the threads of a core side by side), one row per vCPU slot plus the emulator's
// other threads, and the ticks of the grid to and from the core's pinning ({ vcpus: ['0-1', null],
// emulator: '3' }). A row with nothing ticked is not pinned: it may run on any host CPU. Pure TS
// (unit-tested in Node); PinningGrid.vue only renders it.
import type { HostCpuMemory } from '../../../core/common/api.ts';
import { formatCpuSet, parseCpuSet } from '../../../core/common/cpu-memory.ts';
import type { CpuDefinition, VmDefinition } from '../../../core/common/model.ts';

export type HostCpu = HostCpuMemory['cpus'][number];

export interface CoreGroup {
  /** Unique in the grid: "package.die.core". */
  key: string;
  package: number;
  die: number;
  core: number;
  /** Host CPU numbers of this core's threads, ascending. */
  cpus: number[];
}

export interface NodeGroup {
  node: number;
  cores: CoreGroup[];
  /** Every CPU of the node in grid order (the columns). */
  cpus: number[];
}

/** Host CPUs by NUMA node, then package, die and core (ascending); threads of a core together. */
export function pinningColumns(cpus: readonly HostCpu[]): NodeGroup[] {
  const nodes = new Map<number, Map<string, CoreGroup>>();
  for (const c of cpus) {
    const cores = nodes.get(c.node) ?? new Map<string, CoreGroup>();
    nodes.set(c.node, cores);
    const key = `${c.package}.${c.die}.${c.core}`;
    const g = cores.get(key) ?? { key, package: c.package, die: c.die, core: c.core, cpus: [] };
    cores.set(key, g);
    g.cpus.push(c.cpu);
  }
  return [...nodes.entries()].sort(([a], [b]) => a - b).map(([node, cores]) => {
    const list = [...cores.values()]
      .map((g) => ({ ...g, cpus: [...g.cpus].sort((a, b) => a - b) }))
      .sort((a, b) => a.package - b.package || a.die - b.die || a.core - b.core || a.cpus[0]! - b.cpus[0]!);
    return { node, cores: list, cpus: list.flatMap((g) => g.cpus) };
  });
}

/** "Core 3" or, with several packages, "Package 1 core 3". */
export function coreLabel(g: CoreGroup, packages: number): string {
  return packages > 1 ? `Package ${g.package} core ${g.core}` : `Core ${g.core}`;
}

/** The rows of the grid: "0" .. "n-1" for the vCPU slots, then "emulator", then "iothreads" (disks with an I/O thread). */
export type PinRow = number | 'emulator' | 'iothreads';

/** Whether a VM has I/O threads to pin (or a pin for them to clear). */
export function hasIoThreads(def: Pick<VmDefinition, 'disks' | 'cpu'>): boolean {
  return def.disks.some((d) => d.iothread) || def.cpu.pinning?.iothreads !== undefined;
}

export function pinningRows(cpu: Pick<CpuDefinition, 'vcpus' | 'maxVcpus'>, ioThreads = false): PinRow[] {
  const slots = cpu.maxVcpus ?? cpu.vcpus;
  return [...Array.from({ length: slots }, (_, i) => i), 'emulator', ...(ioThreads ? ['iothreads' as const] : [])];
}

export const rowLabel = (row: PinRow): string => (row === 'emulator' ? 'Emulator' : row === 'iothreads' ? 'I/O threads' : `vCPU ${row}`);

/** The ticks of the grid: row key ("0", "1" ..., "emulator") -> host CPUs, ascending. */
export type PinSelection = Record<string, number[]>;

/** The ticks a definition's pinning gives (rows without a pin: none). */
export function selectionFromPinning(cpu: Pick<CpuDefinition, 'vcpus' | 'maxVcpus' | 'pinning'>, ioThreads = false): PinSelection {
  const sel: PinSelection = {};
  for (const row of pinningRows(cpu, ioThreads)) {
    const text = row === 'emulator' ? cpu.pinning?.emulator : row === 'iothreads' ? cpu.pinning?.iothreads : cpu.pinning?.vcpus?.[row];
    sel[String(row)] = text ? parseCpuSet(text) ?? [] : [];
  }
  return sel;
}

/** Ticks or unticks one host CPU in a row (a new selection). */
export function toggle(sel: PinSelection, row: PinRow, cpu: number, on: boolean): PinSelection {
  const cur = new Set(sel[String(row)] ?? []);
  if (on) cur.add(cpu);
  else cur.delete(cpu);
  return { ...sel, [String(row)]: [...cur].sort((a, b) => a - b) };
}

/** A pinning as the definition and setCpuPinning have it. */
export type PinningRequest = NonNullable<CpuDefinition['pinning']>;

/** What setCpuPinning takes for the ticks: null when nothing is ticked anywhere (no pinning). */
export function pinningRequest(sel: PinSelection, slots: number): PinningRequest | null {
  const vcpus: Array<string | null> = Array.from({ length: slots }, (_, i) => {
    const cpus = sel[String(i)] ?? [];
    return cpus.length ? formatCpuSet(cpus) : null;
  });
  while (vcpus.length && vcpus[vcpus.length - 1] === null) vcpus.pop();
  const emulator = sel.emulator?.length ? formatCpuSet(sel.emulator) : undefined;
  const iothreads = sel.iothreads?.length ? formatCpuSet(sel.iothreads) : undefined;
  if (!vcpus.length && emulator === undefined && iothreads === undefined) return null;
  return { ...(vcpus.length ? { vcpus } : {}), ...(emulator !== undefined ? { emulator } : {}), ...(iothreads !== undefined ? { iothreads } : {}) };
}

/** Whether a pinning pins any thread (an empty one, {}, pins none). */
export function hasPins(p: PinningRequest | null | undefined): boolean {
  return !!p && (p.emulator !== undefined || p.iothreads !== undefined || (p.vcpus ?? []).some((v) => v !== null));
}

/** A row's pinning in words: "host CPUs 0-1" or "any host CPU (not pinned)". */
export function rowSummary(cpus: readonly number[]): string {
  if (!cpus.length) return 'any host CPU';
  return `host CPU${cpus.length > 1 ? 's' : ''} ${formatCpuSet(cpus)}`;
}

/** Whether two selections tick the same CPUs. */
export function sameSelection(a: PinSelection, b: PinSelection): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) if (formatCpuSet(a[k] ?? []) !== formatCpuSet(b[k] ?? [])) return false;
  return true;
}
