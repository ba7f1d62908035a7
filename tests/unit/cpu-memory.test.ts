// CPU and memory tuning (issue 16) without a guest: CPU lists, the topology QEMU builds, the
// definition rules with their fixes, the CLI flags, and the host checks against sysfs trees made
// here (huge page pools, NUMA nodes, online CPUs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { cpuDetail, cpuMemoryPending, cpuMemoryProblems, formatCpuSet, memoryDetail, parseCpuSet, topologyOf, virtioMemBlockMiB } from '../../core/common/cpu-memory.ts';
import { parseDefinition } from '../../core/common/definition.ts';
import { pendingChanges } from '../../core/common/device-edit.ts';
import { HangarError } from '../../core/common/errors.ts';
import { MODEL_VERSION } from '../../core/common/model.ts';
import { applyCpuMemoryFlags, dropNulls } from '../../core/node/cli/cpu-memory-args.ts';
import { checkCpuMemoryHost } from '../../core/node/host/cpu-memory-checks.ts';
import { memoryParts } from '../../core/node/qemu/devices/memory.ts';
import type { QmpClient } from '../../core/node/qmp/client.ts';
import { liveHotplugBlocker } from '../../core/node/service/cpu-memory-ops.ts';
import { hostCpuMemory } from '../../core/node/host/host-memory.ts';
import { overcommitNote, overcommitRatio } from '../../core/node/service/start-phases.ts';

const base = { version: MODEL_VERSION, id: '4b20d080-1b54-4048-85b3-a6a62d165c01', name: 'v' };
const problemsOf = (extra: Record<string, unknown>): string[] => {
  try {
    parseDefinition({ ...base, ...extra });
    return [];
  } catch (e) {
    assert.ok(e instanceof HangarError, String(e));
    return [e.message];
  }
};

test('CPU lists: ranges and singles, sorted and unique; backwards ranges refused; shortest form written', () => {
  assert.deepEqual(parseCpuSet('0-3,6,2'), [0, 1, 2, 3, 6]);
  assert.deepEqual(parseCpuSet('5'), [5]);
  assert.equal(parseCpuSet('3-1'), null);
  assert.equal(parseCpuSet('a'), null);
  assert.equal(formatCpuSet([5, 0, 1, 2, 7, 8]), '0-2,5,7-8');
  assert.equal(formatCpuSet([]), '');
});

test('the topology QEMU builds: sockets by default, missing values filled from the slots left', () => {
  assert.deepEqual(topologyOf({ model: 'max', vcpus: 4 }), { sockets: 4, dies: 1, cores: 1, threads: 1, maxVcpus: 4 });
  assert.deepEqual(topologyOf({ model: 'max', vcpus: 2, maxVcpus: 8, cores: 2, threads: 2 }), { sockets: 2, dies: 1, cores: 2, threads: 2, maxVcpus: 8 });
  assert.deepEqual(topologyOf({ model: 'max', vcpus: 8, sockets: 2 }), { sockets: 2, dies: 1, cores: 4, threads: 1, maxVcpus: 8 });
});

test('definition rules: topology, slots, flags, huge pages, hotplug memory and NUMA nodes, each with its fix', () => {
  assert.deepEqual(problemsOf({ cpu: { vcpus: 4, sockets: 1, cores: 2, threads: 2 } }), []);
  assert.match(problemsOf({ cpu: { vcpus: 6, sockets: 1, cores: 2, threads: 2 } })[0]!, /sockets×dies×cores×threads = 1×1×2×2 = 4 does not match vcpus = 6: make the product equal it/);
  assert.match(problemsOf({ cpu: { vcpus: 2, maxVcpus: 8, sockets: 1, cores: 2, threads: 2 } })[0]!, /= 4 does not match the 8 vCPU slots \(maxVcpus\)/);
  assert.match(problemsOf({ cpu: { vcpus: 4, maxVcpus: 2 } })[0]!, /4 vCPUs at boot are more than the 2 vCPU slots/);
  assert.match(problemsOf({ cpu: { vcpus: 1, features: ['+avx2', '-avx2'] } })[0]!, /CPU feature avx2 is both added and removed/);
  assert.match(problemsOf({ cpu: { vcpus: 1, features: ['avx2'] } })[0]!, /a CPU feature is \+name or -name/);
  assert.match(problemsOf({ accel: 'tcg', cpu: { model: 'host', vcpus: 1 } })[0]!, /only KVM can do: use model max under TCG/);
  assert.match(problemsOf({ memoryMiB: 513, memory: { hugepages: '2M' } })[0]!, /513 MiB is not a whole number of 2M huge pages: use a multiple of 2 MiB/);
  assert.match(problemsOf({ memoryMiB: 512, memory: { maxMiB: 256 } })[0]!, /hotplug maximum \(256 MiB\) must be above the boot memory/);
  assert.match(problemsOf({ memoryMiB: 512, memory: { slots: 2 } })[0]!, /hotplug slots need a maximum/);
  const numa = (nodes: unknown[], extra: Record<string, unknown> = {}): string[] => problemsOf({ memoryMiB: 512, cpu: { vcpus: 4 }, memory: { numa: nodes, ...extra } });
  assert.deepEqual(numa([{ cpus: '0-1', memoryMiB: 256 }, { cpus: '2-3', memoryMiB: 256 }]), []);
  assert.match(numa([{ cpus: '0-1', memoryMiB: 256 }, { cpus: '2-3', memoryMiB: 128 }])[0]!, /nodes' memory adds up to 384 MiB, not the VM's 512 MiB/);
  assert.match(numa([{ cpus: '0-1', memoryMiB: 256 }, { cpus: '1-2', memoryMiB: 256 }])[0]!, /NUMA nodes 0 and 1 both claim vCPU 1.*vCPU 3 belongs to no node/);
  assert.match(numa([{ cpus: '0-4', memoryMiB: 512 }])[0]!, /vCPU 4 does not exist \(the VM has vCPUs 0-3\)/);
  assert.match(numa([{ cpus: '0-3', memoryMiB: 512, policy: 'bind' }])[0]!, /policy bind needs host nodes/);
  assert.match(numa([{ cpus: '0-1', memoryMiB: 256 }, { cpus: '2-3', memoryMiB: 256 }], { numaDistances: [[10, 20], [20, 12]] })[0]!, /distance from node 1 to itself must be 10/);
  assert.match(numa([{ cpus: '0-1', memoryMiB: 256 }, { cpus: '2-3', memoryMiB: 256 }], { numaDistances: [[10, 20]] })[0]!, /give a 2×2 table/);
  assert.match(problemsOf({ machine: 'microvm', boot: { kernel: { kernel: '/k' } }, cpu: { vcpus: 1, maxVcpus: 2 } })[0]!, /a microvm has no CPU hotplug/);
  // Directly: every problem at once.
  const def = parseDefinition({ ...base, memoryMiB: 512 });
  assert.equal(cpuMemoryProblems({ ...def, cpu: { ...def.cpu, vcpus: 3, sockets: 2 }, memory: { merge: true, hugepages: '1G' } }).length, 2);
});

test('the words hangar show and the UI use for CPU and memory settings', () => {
  const def = parseDefinition({
    ...base, memoryMiB: 512,
    cpu: { vcpus: 2, maxVcpus: 4, sockets: 1, cores: 2, threads: 2, features: ['-svm'], pinning: { vcpus: ['0', null], emulator: '1' } },
    memory: { maxMiB: 2048, hugepages: '2M', merge: false, numa: [{ cpus: '0-1', memoryMiB: 256, hostNodes: '0' }, { cpus: '2-3', memoryMiB: 256 }] },
  });
  assert.equal(cpuDetail(def), '2 of 4 vCPU slots plugged; 1 socket × 2 cores × 2 threads; flags -svm; pinned: vCPU 0 on 0; emulator on 1');
  assert.equal(memoryDetail(def), 'grows to 2048 MiB by DIMMs (4 hotplug slots); 2M huge pages; KSM merging off; NUMA node 0: vCPUs 0-1, 256 MiB on host node 0 (bind); NUMA node 1: vCPUs 2-3, 256 MiB');
  assert.equal(cpuDetail(parseDefinition(base)), '');
  assert.equal(memoryDetail(parseDefinition(base)), '');
});

test('pending for the next start: each CPU and memory setting saved that the running VM lacks, as before → after', () => {
  const running = parseDefinition({ ...base, memoryMiB: 512, cpu: { vcpus: 2, maxVcpus: 4 } });
  assert.deepEqual(cpuMemoryPending(running, running), { cpu: [], memory: [] });
  assert.deepEqual(pendingChanges(running, parseDefinition({ ...running })), [], 'the same settings in another key order are not a change');
  const saved = parseDefinition({
    ...base, memoryMiB: 256,
    cpu: { model: 'Nehalem', features: ['-svm'], vcpus: 4, maxVcpus: 4, sockets: 1, cores: 2, threads: 2, pinning: { vcpus: ['0'] } },
    memory: { hugepages: '2M', merge: false, maxMiB: 1024 },
  });
  assert.deepEqual(cpuMemoryPending(running, saved), {
    cpu: ['CPU model max → Nehalem', 'flags none → -svm', 'vCPUs 2 → 4', 'topology 4 sockets × 1 core × 1 thread → 1 socket × 2 cores × 2 threads', 'pinning changes'],
    memory: ['size 512 MiB → 256 MiB', 'huge pages none → 2M', 'KSM merging off', 'hotplug maximum none → 1024 MiB'],
  });
  assert.deepEqual(pendingChanges(running, saved).map((p) => [p.kind, p.id, p.change]), [['cpu', 'cpu', 'edit'], ['memory', 'memory', 'edit']]);
  const numa = parseDefinition({ ...base, memoryMiB: 512, cpu: { vcpus: 2, maxVcpus: 4 }, memory: { numa: [{ cpus: '0-1', memoryMiB: 256 }, { cpus: '2-3', memoryMiB: 256 }] } });
  assert.deepEqual(cpuMemoryPending(running, numa).memory, ['NUMA nodes change']);
});

test('CLI flags: --cpu with flags, --topology, --maxcpus, --numa (CPU lists with commas), --hugepages, --maxmem, --mem-merge', () => {
  const def: Record<string, unknown> = {};
  applyCpuMemoryFlags({
    cpu: 'max,-svm,+x2apic', vcpus: '2', maxcpus: '4', topology: 'sockets=1,cores=2,threads=2',
    numa: ['node0:cpus=0,2,mem=256M,host=0,policy=bind', 'cpus=1,3,mem=256'], hugepages: '2M', maxmem: '2G,slots=2', 'mem-merge': 'off',
  }, def);
  dropNulls(def);
  // --topology resets the keys it leaves out (dies here): null, dropped from a new definition.
  assert.deepEqual(def, {
    cpu: { model: 'max', features: ['-svm', '+x2apic'], vcpus: 2, maxVcpus: 4, sockets: 1, cores: 2, threads: 2 },
    memory: { hugepages: '2M', merge: false, maxMiB: 2048, slots: 2, numa: [{ cpus: '0,2', memoryMiB: 256, hostNodes: '0', policy: 'bind' }, { cpus: '1,3', memoryMiB: 256 }] },
  });
  const dist: Record<string, unknown> = {};
  applyCpuMemoryFlags({ 'numa-distances': '10,21/21,10' }, dist);
  assert.deepEqual(dist, { memory: { numaDistances: [[10, 21], [21, 10]] } });
  const plain: Record<string, unknown> = {};
  applyCpuMemoryFlags({ maxmem: '1G' }, plain);
  assert.deepEqual(plain, { memory: { maxMiB: 1024, slots: null, hotplug: null } }, 'a maximum alone: DIMMs, default slots');
  const pinned: Record<string, unknown> = {};
  applyCpuMemoryFlags({ pin: 'vcpu0=0,2,vcpu2=1,emulator=3,iothreads=0-1' }, pinned);
  assert.deepEqual(pinned, { cpu: { pinning: { vcpus: ['0,2', null, '1'], emulator: '3', iothreads: '0-1' } } });
  // Edit patches mark what a flag takes away with null (the edit's merge removes it).
  const patch: Record<string, unknown> = {};
  applyCpuMemoryFlags({ cpu: 'host', hugepages: 'off', maxmem: 'off' }, patch);
  assert.deepEqual(patch, { cpu: { model: 'host', features: null }, memory: { hugepages: null, maxMiB: null, slots: null, hotplug: null } });
  for (const [flags, re] of [
    [{ cpu: 'max,avx2' }, /"avx2" is not a feature flag/],
    [{ topology: 'sockets=1,cpus=2' }, /unknown key "cpus"/],
    [{ maxmem: '2G,4' }, /--maxmem: "4" is not key=value/],
    [{ 'numa-distances': '10,x' }, /"x" is not a distance/],
    [{ numa: ['cpus=0-1'] }, /needs cpus= and mem=/],
    [{ numa: ['cpus=0,mem=1G,policy=strict'] }, /policy strict is not one of bind, preferred, interleave/],
    [{ hugepages: '4M' }, /not a huge page size/],
    [{ maxmem: '1.5M' }, /not a whole number of MiB/],
    [{ 'mem-merge': 'yes' }, /must be on or off/],
    [{ vcpus: '0' }, /whole number above 0/],
    [{ pin: 'cpu0=1' }, /--pin: unknown key "cpu0"/],
  ] as const) {
    assert.throws(() => applyCpuMemoryFlags(flags, {}), (e: unknown) => e instanceof HangarError && e.code === 'invalid-input' && re.test(e.message), JSON.stringify(flags));
  }
});

test('host checks before start: huge pages free (the fix names the pool size to set), per host node for bound NUMA nodes, host NUMA nodes, online CPUs for pins', async () => {
  const root = mkdtempSync(join(tmpdir(), 'hgt-sys-'));
  const put = (p: string, text: string): void => { mkdirSync(dirname(join(root, p)), { recursive: true }); writeFileSync(join(root, p), text); };
  try {
    put('devices/system/cpu/online', '0-1\n');
    put('devices/system/node/online', '0\n');
    put('kernel/mm/hugepages/hugepages-2048kB/nr_hugepages', '10\n');
    put('kernel/mm/hugepages/hugepages-2048kB/free_hugepages', '4\n');
    const def = (extra: Record<string, unknown>) => parseDefinition({ ...base, memoryMiB: 64, ...extra });
    const refused = (d: ReturnType<typeof def>, re: RegExp, hint: RegExp) => assert.rejects(checkCpuMemoryHost(d, root), (e: unknown) => e instanceof HangarError && re.test(e.message) && hint.test(e.hint ?? ''), String(re));
    await refused(def({ memory: { hugepages: '2M' } }), /needs 32 free 2M huge pages for its 64 MiB, and the host's pool has 4 free \(of 10\)/, /echo 38 > \/sys\/kernel\/mm\/hugepages\/hugepages-2048kB\/nr_hugepages/);
    await refused(def({ memory: { hugepages: '1G' }, memoryMiB: 1024 }), /no 1 GiB huge pages/, /hugepagesz=1G/);
    await refused(def({ memoryMiB: 16, memory: { hugepages: '2M' } }), /needs 8 free 2M huge pages/, /echo 14 >/);
    put('kernel/mm/hugepages/hugepages-2048kB/free_hugepages', '8\n');
    await checkCpuMemoryHost(def({ memoryMiB: 16, memory: { hugepages: '2M' } }), root);
    await refused(def({ cpu: { vcpus: 2 }, memory: { numa: [{ cpus: '0', memoryMiB: 32, hostNodes: '0-1' }, { cpus: '1', memoryMiB: 32 }] } }), /bound to host node 1, which this host does not have \(its nodes: 0\)/, /bind it to host nodes 0/);
    await refused(def({ cpu: { vcpus: 2, pinning: { vcpus: ['0', '1-3'] } } }), /vCPU 1 is pinned to host CPUs 2-3, which are not online here \(online: 0-1\)/, /pin it to CPUs in 0-1/);
    await refused(def({ cpu: { vcpus: 1, pinning: { emulator: '7' } } }), /the emulator threads is pinned to host CPU 7/, /0-1/);
    await checkCpuMemoryHost(def({ cpu: { vcpus: 2, pinning: { vcpus: ['1', '0'], emulator: '0-1' } } }), root);
    // Bound to a host node, a guest node's huge pages come from that node's pool alone.
    put('devices/system/node/online', '0-1\n');
    put('kernel/mm/hugepages/hugepages-2048kB/free_hugepages', '50\n');
    put('devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages', '40\n');
    put('devices/system/node/node0/hugepages/hugepages-2048kB/free_hugepages', '40\n');
    put('devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages', '10\n');
    put('devices/system/node/node1/hugepages/hugepages-2048kB/free_hugepages', '10\n');
    const numa = (node1: Record<string, unknown>) => def({ cpu: { vcpus: 2 }, memory: { hugepages: '2M', numa: [{ cpus: '0', memoryMiB: 32, hostNodes: '0' }, { cpus: '1', memoryMiB: 32, ...node1 }] } });
    await refused(numa({ hostNodes: '1' }), /guest NUMA node 1 is bound to host node 1 and needs 16 free 2M huge pages there, and that node has 10 free \(node 1: 10 of 10\)/,
      /echo 16 > \/sys\/devices\/system\/node\/node1\/hugepages\/hugepages-2048kB\/nr_hugepages/);
    await checkCpuMemoryHost(numa({ hostNodes: '0' }), root);
    await checkCpuMemoryHost(numa({ hostNodes: '0-1' }), root);
    await checkCpuMemoryHost(numa({ hostNodes: '1', policy: 'preferred' }), root);
    await refused(def({ cpu: { vcpus: 2 }, memory: { hugepages: '2M', numa: [{ cpus: '0', memoryMiB: 32, hostNodes: '1' }, { cpus: '1', memoryMiB: 32, hostNodes: '1' }] } }),
      /guest NUMA nodes 0, 1 are bound to host node 1 and need 32 free 2M huge pages there/, /echo 32 >/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the host as tuning sees it (a two-node fixture): CPUs with core and thread siblings, nodes with memory, huge page pools, KSM savings', async () => {
  const fixtures = join(import.meta.dirname, '../fixtures');
  const m = await hostCpuMemory({ sysRoot: join(fixtures, 'sysfs/workstation'), procRoot: join(fixtures, 'proc/workstation') });
  assert.deepEqual(m.cpus.map((c) => `${c.cpu}:p${c.package}c${c.core}n${c.node}[${formatCpuSet(c.siblings)}]`), ['0:p0c0n0[0,2]', '1:p0c1n1[1,3]', '2:p0c0n0[0,2]', '3:p0c1n1[1,3]']);
  assert.deepEqual(m.nodes.map((n) => [n.id, formatCpuSet(n.cpus), n.memTotalKiB, n.memFreeKiB]), [[0, '0,2', 16318000, 12000000], [1, '1,3', 16384000, 8192000]]);
  assert.deepEqual(m.hugepages.map((p) => [p.size, p.total]), [['1G', 0], ['2M', 1024]]);
  assert.deepEqual(m.ksm, { available: true, running: false, pagesShared: 1200, pagesSharing: 51200, pagesUnshared: 300, fullScans: 7, savedBytes: 51200 * 4096 });
  assert.equal(m.memAvailableKiB, 24000000);
});

test('a start past host memory × HANGAR_MEMORY_OVERCOMMIT warns with the numbers; below it, nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hgt-mem-'));
  try {
    const meminfo = join(dir, 'meminfo');
    writeFileSync(meminfo, 'MemTotal:        4194304 kB\nMemFree:         1000000 kB\n');
    const def = parseDefinition({ ...base, memoryMiB: 1024 });
    assert.equal(await overcommitNote(def, 3072, meminfo, {}), null, 'exactly host memory is fine');
    assert.match((await overcommitNote(def, 3584, meminfo, {}))!, /running guests get 4608 MiB of this host's 4096 MiB \(1\.13x, above the 1x allowed by HANGAR_MEMORY_OVERCOMMIT\)/);
    assert.equal(await overcommitNote(def, 3584, meminfo, { HANGAR_MEMORY_OVERCOMMIT: '1.5' }), null);
    assert.equal(overcommitRatio({ HANGAR_MEMORY_OVERCOMMIT: 'lots' }), 1, 'a bad value is the default');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('virtio-mem hotplug: needs a maximum, sizes on its blocks (2 MiB, or the huge page size), no DIMM slots, no NUMA nodes, q35 or pc only', () => {
  const vmem = (memoryMiB: number, memory: Record<string, unknown>, extra: Record<string, unknown> = {}): string[] => problemsOf({ memoryMiB, memory: { hotplug: 'virtio-mem', ...memory }, ...extra });
  assert.deepEqual(vmem(256, { maxMiB: 768 }), []);
  assert.deepEqual(vmem(256, { maxMiB: 768 }, { machine: 'pc' }), []);
  assert.deepEqual(vmem(2048, { maxMiB: 4096, hugepages: '1G' }), []);
  assert.match(vmem(256, {})[0]!, /virtio-mem hotplug needs a maximum to grow to \(set maxMiB above the boot memory, e.g. --maxmem 1024M,virtio-mem\)/);
  assert.match(vmem(257, { maxMiB: 768 })[0]!, /virtio-mem plugs memory in 2 MiB blocks: make the boot memory \(257 MiB\) and the maximum \(768 MiB\) multiples of 2 MiB, e.g. 258 and 768 MiB/);
  assert.match(vmem(1024, { maxMiB: 1536, hugepages: '1G' })[0]!, /virtio-mem plugs memory in 1024 MiB blocks \(the 1G huge page size\): .* e.g. 1024 and 2048 MiB/);
  assert.match(vmem(256, { maxMiB: 768, slots: 2 })[0]!, /hotplug slots are DIMM slots, and virtio-mem needs none/);
  assert.match(vmem(256, { maxMiB: 768, numa: [{ cpus: '0', memoryMiB: 256 }] })[0]!, /virtio-mem hotplug does not go with guest NUMA nodes here: remove the NUMA nodes, or use DIMM hotplug/);
  const micro = vmem(256, { maxMiB: 768 }, { machine: 'microvm', boot: { kernel: { kernel: '/k' } } })[0]!;
  assert.match(micro, /virtio-mem is a PCI device, and a microvm machine has no PCI bus for it: use machine q35 or pc/);
  assert.doesNotMatch(micro, /a microvm has no memory hotplug/, 'one message for one problem');
  assert.match(problemsOf({ memoryMiB: 256, memory: { hotplug: 'dimm' } })[0]!, /DIMM hotplug needs a maximum/);
  assert.match(problemsOf({ memoryMiB: 256, memory: { hotplug: 'balloon', maxMiB: 512 } })[0]!, /hotplug/);
  // A guest grown live to its maximum is saved as it is: it boots with no room.
  assert.deepEqual(vmem(768, { maxMiB: 768 }), []);
  assert.equal(virtioMemBlockMiB(parseDefinition({ ...base, memory: { hugepages: '2M' } })), 2);
});

test('virtio-mem argv: -m with maxmem and no DIMM slots, one virtio-mem-pci over a backend of the room made like the boot memory, nothing requested; no room, no hotplug', () => {
  const def = (memoryMiB: number, memory: Record<string, unknown>) => parseDefinition({ ...base, memoryMiB, memory });
  let p = memoryParts(def(256, { maxMiB: 768, hotplug: 'virtio-mem' }), false);
  assert.deepEqual(p.options, [
    { opt: '-m', keyval: { size: '256M', slots: undefined, maxmem: '768M' } },
    { opt: '-object', json: { 'qom-type': 'memory-backend-ram', id: 'vmem0-mem', size: 512 * 1048576, share: undefined, hugetlb: undefined, hugetlbsize: undefined, merge: undefined, 'host-nodes': undefined, policy: undefined } },
  ]);
  assert.deepEqual(p.devices, [{ driver: 'virtio-mem-pci', id: 'vmem0', memdev: 'vmem0-mem', 'requested-size': 0 }]);
  assert.deepEqual(p.machine, {});
  // Huge pages, no KSM, shared (vhost-user): the room's backend is of the same kind as the boot memory's.
  p = memoryParts(def(256, { maxMiB: 512, hotplug: 'virtio-mem', hugepages: '2M', merge: false }), true);
  const objects = p.options.flatMap((o) => ('json' in o ? [o.json as Record<string, unknown>] : []));
  assert.deepEqual(objects.map((o) => [o.id, o['qom-type'], o.size, o.share, o.hugetlbsize, o.merge]), [
    ['vmem0-mem', 'memory-backend-memfd', 256 * 1048576, true, 2097152, false],
    ['mem0', 'memory-backend-memfd', 256 * 1048576, true, 2097152, false],
  ]);
  // DIMMs as before; a maximum reached leaves neither slots nor a device (QEMU refuses slots without room).
  assert.deepEqual(memoryParts(def(256, { maxMiB: 768 }), false).options[0], { opt: '-m', keyval: { size: '256M', slots: 4, maxmem: '768M' } });
  for (const hotplug of ['dimm', 'virtio-mem']) {
    p = memoryParts(def(768, { maxMiB: 768, hotplug }), false);
    assert.deepEqual(p.options, [{ opt: '-m', keyval: { size: '768M', slots: undefined, maxmem: undefined } }], hotplug);
    assert.deepEqual(p.devices, [], hotplug);
  }
});

test('virtio-mem in words, as pending, by CLI flag, and in the huge page check (its whole room is reserved at start)', async () => {
  const d = parseDefinition({ ...base, memoryMiB: 256, memory: { maxMiB: 768, hotplug: 'virtio-mem' } });
  assert.equal(memoryDetail(d), 'grows to 768 MiB by virtio-mem (and shrinks live)');
  assert.equal(memoryDetail(parseDefinition({ ...base, memoryMiB: 768, memory: { maxMiB: 768, hotplug: 'virtio-mem' } })), 'at its hotplug maximum of 768 MiB (raise it to grow live again)');
  const dimm = parseDefinition({ ...base, memoryMiB: 256, memory: { maxMiB: 768 } });
  assert.deepEqual(cpuMemoryPending(dimm, d).memory, ['hotplug by dimm → virtio-mem']);
  assert.deepEqual(cpuMemoryPending(d, dimm).memory, ['hotplug by virtio-mem → dimm']);

  const flags: Record<string, unknown> = {};
  applyCpuMemoryFlags({ maxmem: '768M,virtio-mem' }, flags);
  assert.deepEqual(flags, { memory: { maxMiB: 768, slots: null, hotplug: 'virtio-mem' } });
  const back: Record<string, unknown> = {};
  applyCpuMemoryFlags({ maxmem: '1G,slots=2,dimm' }, back);
  assert.deepEqual(back, { memory: { maxMiB: 1024, slots: 2, hotplug: null } }, 'dimm is the default: named, it takes virtio-mem away');
  assert.throws(() => applyCpuMemoryFlags({ maxmem: '1G,dimm,virtio-mem' }, {}), /give one hotplug method, not dimm and virtio-mem/);
  assert.throws(() => applyCpuMemoryFlags({ maxmem: '1G,virtio' }, {}), /--maxmem: "virtio" is not key=value/);

  const root = mkdtempSync(join(tmpdir(), 'hgt-sys-'));
  try {
    mkdirSync(join(root, 'kernel/mm/hugepages/hugepages-2048kB'), { recursive: true });
    mkdirSync(join(root, 'devices/system/cpu'), { recursive: true });
    writeFileSync(join(root, 'devices/system/cpu/online'), '0-1\n');
    writeFileSync(join(root, 'kernel/mm/hugepages/hugepages-2048kB/nr_hugepages'), '100\n');
    writeFileSync(join(root, 'kernel/mm/hugepages/hugepages-2048kB/free_hugepages'), '100\n');
    const huge = (hotplug: string) => parseDefinition({ ...base, memoryMiB: 128, memory: { hugepages: '2M', maxMiB: 256, hotplug } });
    await checkCpuMemoryHost(huge('dimm'), root);
    await assert.rejects(checkCpuMemoryHost(huge('virtio-mem'), root), /needs 128 free 2M huge pages for its 128 MiB and its 128 MiB of virtio-mem room, and the host's pool has 100 free/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('save and RAM snapshots with virtio-mem: an idle device restores with the rest; memory it plugged blocks with the way out', async () => {
  const fake = (devices: unknown[], cpus: unknown[] = []): QmpClient => ({
    execute: async (cmd: string) => {
      if (cmd === 'query-memory-devices') return devices;
      if (cmd === 'query-hotpluggable-cpus') return cpus;
      if (cmd === 'query-memory-size-summary') return { 'base-memory': 256 * 1048576, 'plugged-memory': 0 };
      throw new Error(`unexpected ${cmd}`);
    },
  }) as unknown as QmpClient;
  const vmem = (size: number, requested: number) => ({ type: 'virtio-mem', data: { id: 'vmem0', size: size * 1048576, 'requested-size': requested * 1048576, 'max-size': 512 * 1048576 } });
  assert.equal(await liveHotplugBlocker(fake([vmem(0, 0)])), null);
  assert.equal(await liveHotplugBlocker(fake([vmem(128, 128)])),
    '128 MiB of memory is plugged by virtio-mem, which a restore would start with as boot memory, not the layout the state was saved from: set the memory back to the 256 MiB it booted with (and let the guest unplug), or restart the VM first');
  assert.match((await liveHotplugBlocker(fake([vmem(64, 0)])))!, /^64 MiB of memory is plugged by virtio-mem \(0 MiB asked\)/);
  const dimm = { type: 'dimm', data: { id: 'dimm-x', size: 128 * 1048576 } };
  assert.equal(await liveHotplugBlocker(fake([dimm])), '128 MiB of memory was added while it runs, which a restore could not bring back: restart the VM first (it then boots with them)');
});
