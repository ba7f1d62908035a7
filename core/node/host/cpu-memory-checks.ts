// Host checks of a VM's CPU and memory tuning before QEMU starts, each refused with the fix: huge
// pages free in the pool, host NUMA nodes and host CPUs that exist, a CPU model the accelerator
// can run. Reads sysfs under a root (fixture trees in tests).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatCpuSet, hotplugRoomMiB, HUGEPAGE_KIB, parseCpuSet, usesVirtioMem } from '../../common/cpu-memory.ts';
import { HangarError } from '../../common/errors.ts';
import type { VmDefinition } from '../../common/model.ts';
import { hostCpuNodes } from './host-memory.ts';


async function readText(path: string): Promise<string | null> {
  return readFile(path, 'utf8').then((t) => t.trim(), () => null);
}

/** The host's huge page pool of one size (null: this host has no pages of that size). */
export async function hugepagePool(sysRoot: string, size: '2M' | '1G'): Promise<{ total: number; free: number; dir: string } | null> {
  const dir = join(sysRoot, 'kernel/mm/hugepages', `hugepages-${HUGEPAGE_KIB[size]}kB`);
  const [total, free] = await Promise.all([readText(join(dir, 'nr_hugepages')), readText(join(dir, 'free_hugepages'))]);
  if (total === null || free === null) return null;
  return { total: Number(total), free: Number(free), dir };
}

/**
 * Guest NUMA nodes bound to host nodes (policy bind) take their huge pages from those nodes' own
 * pools only: the global pool can have enough free while the bound node has too few.
 */
async function checkNodePools(def: VmDefinition, sysRoot: string, size: '2M' | '1G', cannot: string): Promise<void> {
  const needBySet = new Map<string, { need: number; guestNodes: number[] }>();
  for (const [i, n] of (def.memory?.numa ?? []).entries()) {
    if (n.hostNodes === undefined || (n.policy ?? 'bind') !== 'bind') continue;
    const key = formatCpuSet(parseCpuSet(n.hostNodes) ?? []);
    const e = needBySet.get(key) ?? { need: 0, guestNodes: [] };
    e.need += Math.ceil(n.memoryMiB * 1024 / HUGEPAGE_KIB[size]);
    e.guestNodes.push(i);
    needBySet.set(key, e);
  }
  for (const [set, { need, guestNodes }] of needBySet) {
    const pools = await Promise.all((parseCpuSet(set) ?? []).map(async (node) => {
      const dir = join(sysRoot, 'devices/system/node', `node${node}`, 'hugepages', `hugepages-${HUGEPAGE_KIB[size]}kB`);
      const [total, free] = await Promise.all([readText(join(dir, 'nr_hugepages')), readText(join(dir, 'free_hugepages'))]);
      return { node, total: Number(total ?? 0), free: Number(free ?? 0) };
    }));
    const free = pools.reduce((a, p) => a + p.free, 0);
    if (free >= need) continue;
    const first = pools[0]!;
    const which = guestNodes.length > 1 ? `guest NUMA nodes ${guestNodes.join(', ')}` : `guest NUMA node ${guestNodes[0]}`;
    throw new HangarError('invalid-input', `${cannot}: ${which} ${guestNodes.length > 1 ? 'are' : 'is'} bound to host node${pools.length > 1 ? 's' : ''} ${set} and need${guestNodes.length > 1 ? '' : 's'} ${need} free ${size} huge pages there, and ${pools.length > 1 ? 'those nodes have' : 'that node has'} ${free} free (${pools.map((p) => `node ${p.node}: ${p.free} of ${p.total}`).join(', ')})`,
      `grow the node's pool as root: echo ${first.total + need - free} > /sys/devices/system/node/node${first.node}/hugepages/hugepages-${HUGEPAGE_KIB[size]}kB/nr_hugepages, or bind the node with policy preferred, or leave hugepages out`);
  }
}

export async function checkCpuMemoryHost(def: VmDefinition, sysRoot: string): Promise<void> {
  const cannot = `cannot start VM "${def.name}"`;
  const { cpus, nodes } = await hostCpuNodes(sysRoot);
  const mem = def.memory;
  for (const [i, n] of (mem?.numa ?? []).entries()) {
    if (n.hostNodes === undefined) continue;
    const missing = (parseCpuSet(n.hostNodes) ?? []).filter((x) => !nodes.includes(x));
    if (missing.length) {
      throw new HangarError('invalid-input', `${cannot}: guest NUMA node ${i} is bound to host node${missing.length > 1 ? 's' : ''} ${formatCpuSet(missing)}, which this host does not have (its nodes: ${formatCpuSet(nodes)})`,
        `bind it to host nodes ${formatCpuSet(nodes)}, or leave hostNodes out`);
    }
  }
  const pins = [...(def.cpu.pinning?.vcpus ?? []).map((p, i) => [`vCPU ${i}`, p] as const), ['the emulator threads', def.cpu.pinning?.emulator] as const, ['the I/O threads', def.cpu.pinning?.iothreads] as const];
  for (const [who, set] of pins) {
    if (set === null || set === undefined || !cpus.length) continue;
    const off = (parseCpuSet(set) ?? []).filter((c) => !cpus.includes(c));
    if (off.length) {
      throw new HangarError('invalid-input', `${cannot}: ${who} is pinned to host CPU${off.length > 1 ? 's' : ''} ${formatCpuSet(off)}, which ${off.length > 1 ? 'are' : 'is'} not online here (online: ${formatCpuSet(cpus)})`,
        `pin it to CPUs in ${formatCpuSet(cpus)} (hangar host topology shows them)`);
    }
  }
  if (mem?.hugepages) {
    const size = mem.hugepages;
    const pool = await hugepagePool(sysRoot, size);
    if (!pool) {
      throw new HangarError('invalid-input', `${cannot}: this host has no ${size === '1G' ? '1 GiB' : '2 MiB'} huge pages (the kernel offers no hugepages-${HUGEPAGE_KIB[size]}kB pool)`,
        size === '1G' ? 'use 2M huge pages, or boot the host with hugepagesz=1G hugepages=N (the CPU needs pdpe1gb)' : 'use a kernel with huge page support, or leave hugepages out');
    }
    // virtio-mem's backend is mapped whole at start (its pages reserved), plugged or not.
    const room = usesVirtioMem(def) ? hotplugRoomMiB(def) : 0;
    const need = Math.ceil((def.memoryMiB + room) * 1024 / HUGEPAGE_KIB[size]);
    await checkNodePools(def, sysRoot, size, cannot);
    if (pool.free < need) {
      throw new HangarError('invalid-input', `${cannot}: it needs ${need} free ${size} huge pages for its ${def.memoryMiB} MiB${room ? ` and its ${room} MiB of virtio-mem room` : ''}, and the host's pool has ${pool.free} free (of ${pool.total})`,
        `grow the pool as root: echo ${pool.total + need - pool.free} > ${join('/sys/kernel/mm/hugepages', `hugepages-${HUGEPAGE_KIB[size]}kB`, 'nr_hugepages')} (or sysctl vm.nr_hugepages=${pool.total + need - pool.free} for 2M pages), or leave hugepages out`);
    }
  }
}
