// Guest RAM: its size and hotplug room (-m size=,slots=,maxmem=), the memory backends that hold it
// when it must be shareable (vhost-user), on huge pages, kept out of KSM, or split into guest NUMA
// nodes (one backend per node, optionally bound to host nodes), and the NUMA layout (-numa).
import type { VmDefinition } from '../../../common/model.ts';
import { HUGEPAGE_KIB, parseCpuSet } from '../../../common/cpu-memory.ts';
import type { PropObject, QemuOption } from '../qemu-option.ts';

/** The one backend of a VM without NUMA nodes (named by -machine memory-backend=). */
export const SHARED_MEMORY_ID = 'mem0';
const MIB = 1024 * 1024;

/** A backend's properties: memfd when shared or on huge pages (memfd's hugetlb needs no hugetlbfs mount), else plain RAM. */
export function memoryBackend(id: string, mib: number, def: VmDefinition, shared: boolean, node?: { hostNodes?: string; policy?: string }): PropObject {
  const mem = def.memory;
  const memfd = shared || mem?.hugepages !== undefined;
  const hostNodes = node?.hostNodes !== undefined ? parseCpuSet(node.hostNodes) ?? undefined : undefined;
  return {
    'qom-type': memfd ? 'memory-backend-memfd' : 'memory-backend-ram',
    id,
    size: mib * MIB,
    // memfd is shared unless told otherwise; private pages are what KSM can merge.
    share: memfd ? shared : undefined,
    hugetlb: mem?.hugepages ? true : undefined,
    hugetlbsize: mem?.hugepages ? HUGEPAGE_KIB[mem.hugepages] * 1024 : undefined,
    merge: mem?.merge === false ? false : undefined,
    'host-nodes': hostNodes,
    policy: hostNodes ? node?.policy ?? 'bind' : undefined,
  };
}

export interface MemoryParts {
  /** Properties -machine gets (memory-backend, mem-merge). */
  machine: PropObject;
  options: QemuOption[];
}

export function memoryParts(def: VmDefinition, shared: boolean): MemoryParts {
  const mem = def.memory;
  const nodes = mem?.numa ?? [];
  const options: QemuOption[] = [{
    opt: '-m',
    keyval: { size: `${def.memoryMiB}M`, slots: mem?.maxMiB !== undefined ? mem.slots ?? 4 : undefined, maxmem: mem?.maxMiB !== undefined ? `${mem.maxMiB}M` : undefined },
  }];
  const machine: PropObject = {};
  if (nodes.length) {
    nodes.forEach((n, i) => {
      options.push({ opt: '-object', json: memoryBackend(`ram-node${i}`, n.memoryMiB, def, shared, n) });
      const cpus = n.cpus.split(',');
      options.push({ opt: '-numa', implied: 'node', keyval: { nodeid: i, cpus: cpus.length > 1 ? cpus : cpus[0], memdev: `ram-node${i}` } });
    });
    (mem?.numaDistances ?? []).forEach((row, i) => row.forEach((val, j) => {
      if (i !== j) options.push({ opt: '-numa', implied: 'dist', keyval: { src: i, dst: j, val } });
    }));
  } else if (shared || mem?.hugepages !== undefined) {
    options.push({ opt: '-object', json: memoryBackend(SHARED_MEMORY_ID, def.memoryMiB, def, shared) });
    machine['memory-backend'] = SHARED_MEMORY_ID;
  } else if (mem?.merge === false) {
    machine['mem-merge'] = false;
  }
  return { machine, options };
}
