// Guest RAM: its size and hotplug room (-m size=,slots=,maxmem=), the memory backends that hold it
// when it must be shareable (vhost-user), on huge pages, kept out of KSM, or split into guest NUMA
// nodes (one backend per node, optionally bound to host nodes), and the NUMA layout (-numa). With
// virtio-mem hotplug the whole room is one virtio-mem-pci device over a backend of the same kind,
// nothing plugged at boot (requested-size 0); QEMU 7.2 needs maxmem for it, and no DIMM slots.
import type { VmDefinition } from '../../../common/model.ts';
import { HUGEPAGE_KIB, hotplugRoomMiB, parseCpuSet, usesVirtioMem } from '../../../common/cpu-memory.ts';
import type { PropObject, QemuOption } from '../qemu-option.ts';

/** The one backend of a VM without NUMA nodes (named by -machine memory-backend=). */
export const SHARED_MEMORY_ID = 'mem0';
/** The virtio-mem device of a VM with virtio-mem hotplug, and its backend. */
export const VIRTIO_MEM_ID = 'vmem0';
export const VIRTIO_MEM_BACKEND_ID = 'vmem0-mem';
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
  /** -device entries (the virtio-mem device), placed with the other devices. */
  devices: PropObject[];
}

export function memoryParts(def: VmDefinition, shared: boolean): MemoryParts {
  const mem = def.memory;
  const nodes = mem?.numa ?? [];
  // A maximum the memory has reached leaves no room: no slots, no virtio-mem device (QEMU refuses either).
  const room = hotplugRoomMiB(def);
  const virtioMem = usesVirtioMem(def) && room > 0;
  const options: QemuOption[] = [{
    opt: '-m',
    keyval: { size: `${def.memoryMiB}M`, slots: room > 0 && !virtioMem ? mem?.slots ?? 4 : undefined, maxmem: room > 0 ? `${mem!.maxMiB}M` : undefined },
  }];
  const machine: PropObject = {};
  const devices: PropObject[] = [];
  if (virtioMem) {
    // The room above the boot memory, on the same kind of backend (huge pages, KSM, shared).
    options.push({ opt: '-object', json: memoryBackend(VIRTIO_MEM_BACKEND_ID, room, def, shared) });
    devices.push(virtioMemDevice(0));
  }
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
  return { machine, options, devices };
}

/** The virtio-mem device over the hotplug room, with requestedMiB of it plugged. */
export function virtioMemDevice(requestedMiB: number): PropObject {
  return { driver: 'virtio-mem-pci', id: VIRTIO_MEM_ID, memdev: VIRTIO_MEM_BACKEND_ID, 'requested-size': requestedMiB * MIB };
}
