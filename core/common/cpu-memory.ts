// CPU and memory tuning rules that need no host: CPU lists ("0-3,6"), the vCPU topology QEMU will
// build, and the cross-field checks of topology, feature flags, pinning, huge pages, memory
// hotplug and guest NUMA nodes. Shared by the definition gate, the CLI and the UI.
import type { CpuDefinition, VmDefinition } from './model.ts';

/** The numbers of a CPU list ("0-3,6" -> [0,1,2,3,6]), sorted and unique; null when a range runs backwards. */
export function parseCpuSet(text: string): number[] | null {
  const out = new Set<number>();
  for (const part of text.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) return null;
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a || b - a > 4096) return null;
    for (let i = a; i <= b; i++) out.add(i);
  }
  return [...out].sort((x, y) => x - y);
}

/** The shortest CPU list for a set of numbers ([0,1,2,5] -> "0-2,5"). */
export function formatCpuSet(cpus: readonly number[]): string {
  const sorted = [...new Set(cpus)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(j === i ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

export interface Topology { sockets: number; dies: number; cores: number; threads: number; maxVcpus: number }

/** The vCPU slots and their layout as the guest sees them (QEMU's defaults: one core per socket). */
export function topologyOf(cpu: CpuDefinition): Topology {
  const maxVcpus = cpu.maxVcpus ?? cpu.vcpus;
  if (!topologyGiven(cpu)) return { sockets: maxVcpus, dies: 1, cores: 1, threads: 1, maxVcpus };
  // What QEMU fills in for a missing value: sockets first, then cores, from the slots left.
  const dies = cpu.dies ?? 1;
  const threads = cpu.threads ?? 1;
  const share = (n: number): number => Math.max(1, Math.floor(maxVcpus / n));
  if (cpu.sockets === undefined) {
    const cores = cpu.cores ?? 1;
    return { sockets: share(dies * cores * threads), dies, cores, threads, maxVcpus };
  }
  return { sockets: cpu.sockets, dies, cores: cpu.cores ?? share(cpu.sockets * dies * threads), threads, maxVcpus };
}

/** Huge page sizes in KiB (the kernel's pool directories are named by it: hugepages-2048kB). */
export const HUGEPAGE_KIB = { '2M': 2048, '1G': 1048576 } as const;
const MIB_PER_PAGE = { '2M': HUGEPAGE_KIB['2M'] / 1024, '1G': HUGEPAGE_KIB['1G'] / 1024 } as const;

/** "1 socket × 2 cores × 2 threads" (dies only when more than one), as QEMU builds it. */
export function topologyWords(cpu: CpuDefinition): string {
  const t = topologyOf(cpu);
  const n = (k: number, w: string): string => `${k} ${w}${k === 1 ? '' : 's'}`;
  return [n(t.sockets, 'socket'), ...(t.dies > 1 ? [n(t.dies, 'die')] : []), n(t.cores, 'core'), n(t.threads, 'thread')].join(' × ');
}

/** Whether the definition sets any part of the topology (else QEMU's default: one socket per vCPU). */
export function topologyGiven(cpu: CpuDefinition): boolean {
  return cpu.sockets !== undefined || cpu.dies !== undefined || cpu.cores !== undefined || cpu.threads !== undefined;
}

/** Whether the VM's memory hotplug room is one virtio-mem device (else DIMMs, or no hotplug). */
export function usesVirtioMem(def: VmDefinition): boolean {
  return def.memory?.hotplug === 'virtio-mem' && def.memory.maxMiB !== undefined;
}

/** The memory hotplug room a start gives the guest (MiB above the boot memory; 0 for none). */
export function hotplugRoomMiB(def: VmDefinition): number {
  const max = def.memory?.maxMiB;
  return max === undefined ? 0 : Math.max(0, max - def.memoryMiB);
}

/**
 * The virtio-mem block size in MiB: QEMU's default, the larger of 2 MiB (the host's transparent
 * huge page size) and the backend's page size, so the huge page size on huge pages.
 */
export function virtioMemBlockMiB(def: VmDefinition): number {
  return def.memory?.hugepages ? MIB_PER_PAGE[def.memory.hugepages] : 2;
}

/** Everything wrong with the CPU and memory settings, each with its fix. */
export function cpuMemoryProblems(def: VmDefinition): string[] {
  const problems: string[] = [];
  const { cpu } = def;
  const t = topologyOf(cpu);
  if (cpu.maxVcpus !== undefined && cpu.maxVcpus < cpu.vcpus) {
    problems.push(`CPU: ${cpu.vcpus} vCPUs at boot are more than the ${cpu.maxVcpus} vCPU slots (maxVcpus): raise maxVcpus or lower vcpus`);
  }
  const product = t.sockets * t.dies * t.cores * t.threads;
  if (product !== t.maxVcpus) {
    const what = cpu.maxVcpus !== undefined ? `the ${t.maxVcpus} vCPU slots (maxVcpus)` : `vcpus = ${t.maxVcpus}`;
    problems.push(`CPU topology sockets×dies×cores×threads = ${t.sockets}×${t.dies}×${t.cores}×${t.threads} = ${product} does not match ${what}: `
      + `make the product equal it, e.g. sockets=${Math.max(1, Math.floor(t.maxVcpus / (t.dies * t.cores * t.threads)))} when that divides evenly`);
  }
  if (def.machine === 'microvm' && (cpu.maxVcpus ?? cpu.vcpus) > cpu.vcpus) problems.push('CPU: a microvm has no CPU hotplug (use machine q35, or leave out maxVcpus)');
  const seen = new Map<string, string>();
  for (const f of cpu.features ?? []) {
    const name = f.slice(1);
    const prev = seen.get(name);
    if (prev !== undefined) problems.push(prev === f ? `CPU feature ${f} is given twice` : `CPU feature ${name} is both added and removed (${prev}, ${f}): keep one`);
    seen.set(name, f);
  }
  if (cpu.model === 'host' && def.accel === 'tcg') {
    problems.push('CPU model host passes the host CPU through, which only KVM can do: use model max under TCG (or accel kvm/auto)');
  }
  const pins = cpu.pinning?.vcpus ?? [];
  if (pins.length > t.maxVcpus) problems.push(`CPU pinning lists ${pins.length} vCPUs but the VM has ${t.maxVcpus} vCPU slots`);
  for (const [i, p] of pins.entries()) if (p !== null && parseCpuSet(p) === null) problems.push(`CPU pinning of vCPU ${i}: "${p}" has a range that runs backwards`);
  if (cpu.pinning?.emulator !== undefined && parseCpuSet(cpu.pinning.emulator) === null) problems.push(`CPU pinning of the emulator: "${cpu.pinning.emulator}" has a range that runs backwards`);
  if (cpu.pinning?.iothreads !== undefined && parseCpuSet(cpu.pinning.iothreads) === null) problems.push(`CPU pinning of the I/O threads: "${cpu.pinning.iothreads}" has a range that runs backwards`);

  const mem = def.memory;
  if (!mem) return problems;
  if (mem.hugepages) {
    const page = MIB_PER_PAGE[mem.hugepages];
    if (def.memoryMiB % page) problems.push(`memory: ${def.memoryMiB} MiB is not a whole number of ${mem.hugepages} huge pages: use a multiple of ${page} MiB`);
  }
  const virtioMem = mem.hotplug === 'virtio-mem';
  if (mem.maxMiB !== undefined) {
    // Equal is a room all used (a guest grown live to its maximum): it boots with no hotplug room.
    if (mem.maxMiB < def.memoryMiB) problems.push(`memory: the hotplug maximum (${mem.maxMiB} MiB) must be above the boot memory (${def.memoryMiB} MiB)`);
    if (def.machine === 'microvm' && !virtioMem) problems.push('memory: a microvm has no memory hotplug (use machine q35, or leave out the maximum)');
  }
  if (mem.slots !== undefined && mem.maxMiB === undefined) problems.push('memory: hotplug slots need a maximum to grow to (set maxMiB, e.g. --maxmem 4G)');
  if (mem.hotplug !== undefined && mem.maxMiB === undefined) {
    problems.push(`memory: ${virtioMem ? 'virtio-mem' : 'DIMM'} hotplug needs a maximum to grow to (set maxMiB above the boot memory, e.g. --maxmem ${Math.max(def.memoryMiB * 2, 1024)}M${virtioMem ? ',virtio-mem' : ''})`);
  }
  const nodes = mem.numa ?? [];
  if (virtioMem) {
    const block = virtioMemBlockMiB(def);
    const why = mem.hugepages ? ` (the ${mem.hugepages} huge page size)` : '';
    if (mem.maxMiB !== undefined && (def.memoryMiB % block || mem.maxMiB % block)) {
      const up = (n: number): number => Math.ceil(n / block) * block;
      problems.push(`memory: virtio-mem plugs memory in ${block} MiB blocks${why}: make the boot memory (${def.memoryMiB} MiB) and the maximum (${mem.maxMiB} MiB) multiples of ${block} MiB, e.g. ${up(def.memoryMiB)} and ${up(Math.max(mem.maxMiB, up(def.memoryMiB) + block))} MiB`);
    }
    if (mem.slots !== undefined) problems.push('memory: hotplug slots are DIMM slots, and virtio-mem needs none (one device covers the whole room): leave slots out, or use DIMM hotplug');
    // One virtio-mem device on node 0 would leave the other nodes unable to grow: not offered.
    if (nodes.length) problems.push('memory: virtio-mem hotplug does not go with guest NUMA nodes here: remove the NUMA nodes, or use DIMM hotplug (hotplug dimm)');
    if (def.machine !== 'q35' && def.machine !== 'pc') problems.push(`memory: virtio-mem is a PCI device, and a ${def.machine} machine has no PCI bus for it: use machine q35 or pc, or DIMM hotplug`);
  }
  if (nodes.length) {
    const owner = new Map<number, number>();
    nodes.forEach((n, i) => {
      const cpus = parseCpuSet(n.cpus);
      if (!cpus) { problems.push(`NUMA node ${i}: CPU list "${n.cpus}" has a range that runs backwards`); return; }
      for (const c of cpus) {
        if (c >= t.maxVcpus) problems.push(`NUMA node ${i}: vCPU ${c} does not exist (the VM has vCPUs 0-${t.maxVcpus - 1})`);
        else if (owner.has(c)) problems.push(`NUMA nodes ${owner.get(c)} and ${i} both claim vCPU ${c}: each vCPU belongs to one node`);
        else owner.set(c, i);
      }
      if (n.policy && !n.hostNodes) problems.push(`NUMA node ${i}: policy ${n.policy} needs host nodes to apply to (hostNodes, e.g. 0)`);
      if (n.hostNodes && parseCpuSet(n.hostNodes) === null) problems.push(`NUMA node ${i}: host node list "${n.hostNodes}" has a range that runs backwards`);
      if (mem.hugepages && n.memoryMiB % MIB_PER_PAGE[mem.hugepages]) problems.push(`NUMA node ${i}: ${n.memoryMiB} MiB is not a whole number of ${mem.hugepages} huge pages`);
    });
    const missing = [...Array(t.maxVcpus).keys()].filter((c) => !owner.has(c));
    if (missing.length) problems.push(`NUMA: vCPU${missing.length > 1 ? 's' : ''} ${formatCpuSet(missing)} belong${missing.length > 1 ? '' : 's'} to no node: give every vCPU slot a node`);
    const sum = nodes.reduce((a, n) => a + n.memoryMiB, 0);
    if (sum !== def.memoryMiB) problems.push(`NUMA: the nodes' memory adds up to ${sum} MiB, not the VM's ${def.memoryMiB} MiB: make them add up`);
    if (def.machine === 'microvm') problems.push('NUMA: a microvm has no NUMA nodes (use machine q35)');
  }
  if (mem.numaDistances) {
    const d = mem.numaDistances;
    if (d.length !== nodes.length || d.some((row) => row.length !== nodes.length)) {
      problems.push(`NUMA distances: give a ${nodes.length}×${nodes.length} table, one row per node`);
    } else {
      d.forEach((row, i) => row.forEach((v, j) => {
        if (i === j && v !== 10) problems.push(`NUMA distance from node ${i} to itself must be 10 (local), not ${v}`);
        if (i !== j && v <= 10) problems.push(`NUMA distance from node ${i} to node ${j} must be above 10 (local is 10), not ${v}`);
      }));
    }
  }
  return problems;
}

/** The CPU settings beyond model × vCPUs in words ("4 slots; 1 socket × 2 cores × 2 threads; -svm +x2apic"), or ''. */
export function cpuDetail(def: VmDefinition): string {
  const { cpu } = def;
  const parts: string[] = [];
  if (cpu.maxVcpus !== undefined && cpu.maxVcpus > cpu.vcpus) parts.push(`${cpu.vcpus} of ${cpu.maxVcpus} vCPU slots plugged`);
  if (topologyGiven(cpu)) parts.push(topologyWords(cpu));
  if (cpu.features?.length) parts.push(`flags ${cpu.features.join(' ')}`);
  const pins = (cpu.pinning?.vcpus ?? []).map((p, i) => (p === null ? '' : `vCPU ${i} on ${p}`)).filter(Boolean);
  if (pins.length) parts.push(`pinned: ${pins.join(', ')}`);
  if (cpu.pinning?.emulator) parts.push(`emulator on ${cpu.pinning.emulator}`);
  if (cpu.pinning?.iothreads) parts.push(`I/O threads on ${cpu.pinning.iothreads}`);
  return parts.join('; ');
}

/** The memory settings beyond its size in words, or ''. */
export function memoryDetail(def: VmDefinition): string {
  const mem = def.memory;
  if (!mem) return '';
  const parts: string[] = [];
  if (mem.maxMiB !== undefined && mem.maxMiB <= def.memoryMiB) parts.push(`at its hotplug maximum of ${mem.maxMiB} MiB (raise it to grow live again)`);
  else if (mem.maxMiB !== undefined) {
    parts.push(mem.hotplug === 'virtio-mem' ? `grows to ${mem.maxMiB} MiB by virtio-mem (and shrinks live)` : `grows to ${mem.maxMiB} MiB by DIMMs (${mem.slots ?? 4} hotplug slots)`);
  }
  if (mem.hugepages) parts.push(`${mem.hugepages} huge pages`);
  if (mem.merge === false) parts.push('KSM merging off');
  for (const [i, n] of (mem.numa ?? []).entries()) {
    parts.push(`NUMA node ${i}: vCPUs ${n.cpus}, ${n.memoryMiB} MiB${n.hostNodes !== undefined ? ` on host node ${n.hostNodes} (${n.policy ?? 'bind'})` : ''}`);
  }
  return parts.join('; ');
}

/** JSON with sorted keys and without undefined, so equal settings compare equal. */
function same(a: unknown, b: unknown): boolean {
  const norm = (v: unknown): unknown => (Array.isArray(v) ? v.map(norm)
    : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined).map((k) => [k, norm((v as Record<string, unknown>)[k])]))
      : v);
  return JSON.stringify(norm(a)) === JSON.stringify(norm(b));
}

const arrow = (what: string, from: string, to: string): string => `${what} ${from} → ${to}`;

/**
 * The CPU and memory settings saved for the next start that the running VM does not have
 * (what changed live is in both): each as "what before → after".
 */
export function cpuMemoryPending(running: VmDefinition, saved: VmDefinition): { cpu: string[]; memory: string[] } {
  const r = running.cpu;
  const s = saved.cpu;
  const cpu: string[] = [];
  if (r.model !== s.model) cpu.push(arrow('CPU model', r.model, s.model));
  if (!same(r.features ?? [], s.features ?? [])) cpu.push(arrow('flags', r.features?.join(' ') || 'none', s.features?.join(' ') || 'none'));
  if (r.vcpus !== s.vcpus) cpu.push(arrow('vCPUs', String(r.vcpus), String(s.vcpus)));
  if ((r.maxVcpus ?? r.vcpus) !== (s.maxVcpus ?? s.vcpus)) cpu.push(arrow('vCPU slots', String(r.maxVcpus ?? r.vcpus), String(s.maxVcpus ?? s.vcpus)));
  if (topologyWords(r) !== topologyWords(s)) cpu.push(arrow('topology', topologyWords(r), topologyWords(s)));
  if (!same(r.pinning, s.pinning)) cpu.push('pinning changes');
  const memory: string[] = [];
  if (running.memoryMiB !== saved.memoryMiB) memory.push(arrow('size', `${running.memoryMiB} MiB`, `${saved.memoryMiB} MiB`));
  const rm = running.memory;
  const sm = saved.memory;
  if (!same(rm ?? {}, sm ?? {})) {
    if ((rm?.hugepages ?? 'none') !== (sm?.hugepages ?? 'none')) memory.push(arrow('huge pages', rm?.hugepages ?? 'none', sm?.hugepages ?? 'none'));
    if ((rm?.merge ?? true) !== (sm?.merge ?? true)) memory.push(`KSM merging ${sm?.merge === false ? 'off' : 'on'}`);
    const max = (m: typeof rm): string => (m?.maxMiB === undefined ? 'none' : `${m.maxMiB} MiB`);
    if (max(rm) !== max(sm)) memory.push(arrow('hotplug maximum', max(rm), max(sm)));
    if ((rm?.hotplug ?? 'dimm') !== (sm?.hotplug ?? 'dimm')) memory.push(arrow('hotplug by', rm?.hotplug ?? 'dimm', sm?.hotplug ?? 'dimm'));
    if (!same(rm?.numa, sm?.numa) || !same(rm?.numaDistances, sm?.numaDistances)) memory.push('NUMA nodes change');
    if (memory.length === 0) memory.push('memory settings change');
  }
  return { cpu, memory };
}
