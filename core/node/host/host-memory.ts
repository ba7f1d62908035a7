// The host's CPUs and memory as CPU and memory tuning needs them, read from sysfs and procfs:
// each online CPU's package, die, core and NUMA node; each NUMA node's CPUs and memory; the huge
// page pools; KSM's state and what it saves; total and available memory.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HostCpuMemory } from '../../common/api.ts';
import { HUGEPAGE_KIB, parseCpuSet } from '../../common/cpu-memory.ts';

async function text(path: string): Promise<string | undefined> {
  return readFile(path, 'utf8').then((t) => t.trim(), () => undefined);
}

async function num(path: string): Promise<number | undefined> {
  const t = await text(path);
  return t !== undefined && /^-?\d+$/.test(t) ? Number(t) : undefined;
}

/** A /proc/meminfo (or a node's meminfo) field in KiB; undefined when absent. */
export function meminfoKiB(content: string | undefined, key: string): number | undefined {
  const m = content ? new RegExp(`^(?:Node \\d+ )?${key}:\\s+(\\d+) kB`, 'm').exec(content) : null;
  return m ? Number(m[1]) : undefined;
}

/** Online host CPUs and NUMA nodes (sysfs lists; a host without NUMA has node 0). */
export async function hostCpuNodes(sysRoot: string): Promise<{ cpus: number[]; nodes: number[] }> {
  const cpus = parseCpuSet(await text(join(sysRoot, 'devices/system/cpu/online')) ?? '') ?? [];
  const nodes = parseCpuSet(await text(join(sysRoot, 'devices/system/node/online')) ?? '0') ?? [0];
  return { cpus, nodes };
}

export async function hostCpuMemory(roots: { sysRoot: string; procRoot: string }): Promise<HostCpuMemory> {
  const sys = roots.sysRoot;
  const { cpus: online, nodes: nodeIds } = await hostCpuNodes(sys);
  const nodes: HostCpuMemory['nodes'] = [];
  const nodeOfCpu = new Map<number, number>();
  for (const id of nodeIds) {
    const dir = join(sys, 'devices/system/node', `node${id}`);
    const cpus = parseCpuSet(await text(join(dir, 'cpulist')) ?? '') ?? [];
    for (const c of cpus) nodeOfCpu.set(c, id);
    const mi = await text(join(dir, 'meminfo'));
    nodes.push({ id, cpus, memTotalKiB: meminfoKiB(mi, 'MemTotal') ?? 0, memFreeKiB: meminfoKiB(mi, 'MemFree') ?? 0 });
  }
  const cpus: HostCpuMemory['cpus'] = [];
  for (const cpu of online) {
    const t = join(sys, 'devices/system/cpu', `cpu${cpu}`, 'topology');
    cpus.push({
      cpu, package: await num(join(t, 'physical_package_id')) ?? 0, die: await num(join(t, 'die_id')) ?? 0,
      core: await num(join(t, 'core_id')) ?? cpu, node: nodeOfCpu.get(cpu) ?? 0,
      siblings: parseCpuSet(await text(join(t, 'thread_siblings_list')) ?? String(cpu)) ?? [cpu],
    });
  }
  const hugepages: HostCpuMemory['hugepages'] = [];
  const poolRoot = join(sys, 'kernel/mm/hugepages');
  for (const name of (await readdir(poolRoot).catch(() => [])).sort()) {
    const m = /^hugepages-(\d+)kB$/.exec(name);
    if (!m) continue;
    const dir = join(poolRoot, name);
    const kib = Number(m[1]);
    hugepages.push({
      size: Object.entries(HUGEPAGE_KIB).find(([, k]) => k === kib)?.[0] ?? `${kib}K`, pageKiB: kib,
      total: await num(join(dir, 'nr_hugepages')) ?? 0, free: await num(join(dir, 'free_hugepages')) ?? 0,
      reserved: await num(join(dir, 'resv_hugepages')) ?? 0, surplus: await num(join(dir, 'surplus_hugepages')) ?? 0,
    });
  }
  const ksmDir = join(sys, 'kernel/mm/ksm');
  const run = await num(join(ksmDir, 'run'));
  const pageSize = 4096;
  const ksm: HostCpuMemory['ksm'] = run === undefined ? { available: false } : {
    available: true, running: run === 1,
    pagesShared: await num(join(ksmDir, 'pages_shared')) ?? 0, pagesSharing: await num(join(ksmDir, 'pages_sharing')) ?? 0,
    pagesUnshared: await num(join(ksmDir, 'pages_unshared')) ?? 0, fullScans: await num(join(ksmDir, 'full_scans')) ?? 0,
    savedBytes: (await num(join(ksmDir, 'pages_sharing')) ?? 0) * pageSize,
  };
  const meminfo = await text(join(roots.procRoot, 'meminfo'));
  return {
    cpus, nodes, hugepages, ksm,
    memTotalKiB: meminfoKiB(meminfo, 'MemTotal') ?? 0, memAvailableKiB: meminfoKiB(meminfo, 'MemAvailable') ?? 0,
  };
}
