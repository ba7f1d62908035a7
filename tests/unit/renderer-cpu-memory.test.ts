// CPU and memory tuning in the renderer (issue 16), in Node: the pinning grid's columns (host CPUs
// by NUMA node and core, threads together) and ticks to and from the core's pinning; the "Edit CPU
// and memory" form to the edit() patch (a cleared setting is null only where the definition has
// it) with its field errors; CPU model choices with the unusable ones disabled; the Host page's
// memory, KSM and huge page words; and the poller that refreshes the Host page only while it shows
// and the window is visible.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CpuModelList, HostCpuMemory } from '../../core/common/api.ts';
import { parseDefinition } from '../../core/common/definition.ts';
import type { VmDefinition } from '../../core/common/model.ts';
import { committedView, hostChangeText, kibText, ksmView, parsePoolCount, poolLabel, poolShortfall } from '../../renderer/src/host/host-memory.ts';
import { ManualTimers, settle } from '../../renderer/src/testing/fake-core.ts';
import {
  changeText, cpuMemoryPatch, cpuModelOptions, formFromDefinition, hotplugText, modelNote, parseFeatures, topologyNote, topologyText, vcpuText,
} from '../../renderer/src/tuning/cpu-memory-form.ts';
import {
  hasIoThreads, hasPins, pinningColumns, pinningRequest, pinningRows, rowSummary, sameSelection, selectionFromPinning, toggle,
} from '../../renderer/src/tuning/pinning.ts';
import type { HostCpu } from '../../renderer/src/tuning/pinning.ts';
import { Poller } from '../../renderer/src/util/poller.ts';

const def = (extra: Record<string, unknown> = {}): VmDefinition => parseDefinition({ id: '0b5a3c52-1f3e-4c1e-9d7e-2a6f3e9b8c10', name: 'vm', memoryMiB: 512, ...extra });

// Two NUMA nodes, two packages; cores with two threads whose numbers are far apart (as Linux numbers SMT siblings).
const cpu = (n: number, pkg: number, core: number, node: number, siblings: number[]): HostCpu => ({ cpu: n, package: pkg, die: 0, core, node, siblings });
const hostCpus: HostCpu[] = [
  cpu(0, 0, 0, 0, [0, 4]), cpu(1, 0, 1, 0, [1, 5]), cpu(2, 1, 0, 1, [2, 6]), cpu(3, 1, 1, 1, [3, 7]),
  cpu(4, 0, 0, 0, [0, 4]), cpu(5, 0, 1, 0, [1, 5]), cpu(6, 1, 0, 1, [2, 6]), cpu(7, 1, 1, 1, [3, 7]),
];

describe('pinning grid', () => {
  it('groups host CPUs by NUMA node and core, the threads of a core side by side', () => {
    const nodes = pinningColumns(hostCpus);
    assert.deepEqual(nodes.map((n) => n.node), [0, 1]);
    assert.deepEqual(nodes[0]!.cores.map((g) => g.cpus), [[0, 4], [1, 5]]);
    assert.deepEqual(nodes[1]!.cores.map((g) => [g.package, g.core, g.cpus]), [[1, 0, [2, 6]], [1, 1, [3, 7]]]);
    assert.deepEqual(nodes.flatMap((n) => n.cpus), [0, 4, 1, 5, 2, 6, 3, 7]);
    assert.deepEqual(pinningColumns([]), []);
  });

  it('has a row per vCPU slot and the emulator; ticks come from and go back to the core\'s pinning', () => {
    const c = def({ cpu: { vcpus: 2, maxVcpus: 3, pinning: { vcpus: ['0-1', null, '4'], emulator: '7' } } }).cpu;
    assert.deepEqual(pinningRows(c), [0, 1, 2, 'emulator']);
    const sel = selectionFromPinning(c);
    assert.deepEqual(sel, { 0: [0, 1], 1: [], 2: [4], emulator: [7] });
    assert.deepEqual(pinningRequest(sel, 3), { vcpus: ['0-1', null, '4'], emulator: '7' });
    // Unticking the last vCPU drops the trailing nulls; nothing ticked anywhere is no pinning.
    let next = toggle(sel, 2, 4, false);
    assert.deepEqual(pinningRequest(next, 3), { vcpus: ['0-1'], emulator: '7' });
    next = toggle(toggle(toggle(next, 0, 0, false), 0, 1, false), 'emulator', 7, false);
    assert.equal(pinningRequest(next, 3), null);
    // Ticks come out as the shortest CPU list.
    assert.deepEqual(pinningRequest(toggle(toggle(toggle({}, 1, 3, true), 1, 2, true), 1, 6, true), 2), { vcpus: [null, '2-3,6'] });
    assert.equal(sameSelection(sel, selectionFromPinning(c)), true);
    // A disk with an I/O thread adds a row for the I/O threads, to and from pinning.iothreads.
    const io = def({ cpu: { vcpus: 1, pinning: { iothreads: '2-3' } } }).cpu;
    assert.deepEqual(pinningRows(io, true), [0, 'emulator', 'iothreads']);
    const ioSel = selectionFromPinning(io, true);
    assert.deepEqual(ioSel, { 0: [], emulator: [], iothreads: [2, 3] });
    assert.deepEqual(pinningRequest(ioSel, 1), { iothreads: '2-3' });
    assert.equal(hasPins({ iothreads: '1' }), true);
    assert.equal(hasIoThreads(def({ cpu: { vcpus: 1 } })), false);
    assert.equal(hasIoThreads(def({ cpu: { vcpus: 1, pinning: { iothreads: '1' } } })), true, 'a pin to clear keeps the row');
    assert.equal(sameSelection(sel, toggle(sel, 1, 0, true)), false);
    assert.equal(rowSummary([]), 'any host CPU');
    assert.equal(rowSummary([0, 1, 2, 5]), 'host CPUs 0-2,5');
    assert.equal(hasPins({}), false);
    assert.equal(hasPins({ vcpus: [null] }), false);
    assert.equal(hasPins({ emulator: '1' }), true);
  });
});

describe('Edit CPU and memory form', () => {
  it('fills from the definition and sends back what was changed, nulls only for settings the definition has', () => {
    const d = def({ cpu: { model: 'max', vcpus: 2, features: ['-svm'], sockets: 1, cores: 2 }, memory: { hugepages: '2M', maxMiB: 1024 } });
    const form = formFromDefinition(d);
    assert.deepEqual(form, {
      model: 'max', features: '-svm', vcpus: '2', maxVcpus: '', sockets: '1', dies: '', cores: '2', threads: '',
      memoryMiB: '512', hugepages: '2M', merge: true, maxMiB: '1024', slots: '', hotplug: 'dimm',
    });
    const r = cpuMemoryPatch({ ...form, features: '', sockets: '', cores: '', hugepages: 'none', maxMiB: '', merge: false }, d);
    assert.ok(r.ok);
    assert.deepEqual(r.patch, {
      cpu: { model: 'max', vcpus: 2, features: null, sockets: null, cores: null },
      memory: { hugepages: null, merge: false, maxMiB: null },
    });
    // A definition without memory settings gets none for the defaults, and no nulls.
    const plain = def();
    const p2 = cpuMemoryPatch({ ...formFromDefinition(plain), maxVcpus: '4', threads: 2 as unknown as string, memoryMiB: 1024 as unknown as string }, plain);
    assert.ok(p2.ok);
    assert.deepEqual(p2.patch, { cpu: { model: 'max', vcpus: 1, maxVcpus: 4, threads: 2 }, memoryMiB: 1024 });
    const p3 = cpuMemoryPatch({ ...formFromDefinition(plain), hugepages: '1G', merge: false }, plain);
    assert.ok(p3.ok);
    assert.deepEqual(p3.patch.memory, { hugepages: '1G', merge: false });
  });

  it('memory hotplug by DIMMs or virtio-mem: the method goes with a maximum, virtio-mem without slots; the Overview line says which', () => {
    const plain = def();
    const vm = cpuMemoryPatch({ ...formFromDefinition(plain), maxMiB: '1536', slots: '2', hotplug: 'virtio-mem' }, plain);
    assert.ok(vm.ok);
    assert.deepEqual(vm.patch.memory, { maxMiB: 1536, hotplug: 'virtio-mem' }, 'slots are DIMM slots: not sent with virtio-mem');
    const d = def({ memory: { maxMiB: 1536, hotplug: 'virtio-mem' } });
    assert.equal(formFromDefinition(d).hotplug, 'virtio-mem');
    // Back to DIMMs, or no maximum at all: the method goes (null) with it.
    for (const change of [{ hotplug: 'dimm' as const }, { maxMiB: '' }]) {
      const r = cpuMemoryPatch({ ...formFromDefinition(d), ...change }, d);
      assert.ok(r.ok);
      assert.equal(r.patch.memory!.hotplug, null, JSON.stringify(change));
    }
    assert.equal(hotplugText(d), 'up to 1.5 GiB by virtio-mem (grows and shrinks live)');
    assert.equal(hotplugText(def({ memory: { maxMiB: 2048, slots: 2 } })), 'up to 2 GiB (2 DIMM slots)');
    assert.equal(hotplugText(plain), 'none: memory cannot grow while the VM runs');
    assert.equal(hotplugText(def({ memoryMiB: 1536, memory: { maxMiB: 1536, hotplug: 'virtio-mem' } })), 'none left: the memory is at its hotplug maximum of 1.5 GiB');
  });

  it('refuses unreadable fields beside them; the cross-field rules are left to the core', () => {
    const d = def();
    const r = cpuMemoryPatch({ ...formFromDefinition(d), vcpus: '0', cores: 'two', features: '+avx2 svm', memoryMiB: '', slots: '300' }, d);
    assert.ok(!r.ok);
    assert.deepEqual(Object.keys(r.errors).sort(), ['cores', 'features', 'memoryMiB', 'slots', 'vcpus']);
    assert.match(r.errors.features!, /"svm" is not a feature flag/);
    assert.equal(r.errors.memoryMiB, 'give the memory in MiB');
    // 1 socket × 3 cores for 2 vCPUs goes to the core (whose message names the fix); the note says it does not add up.
    const bad = { ...formFromDefinition(def({ cpu: { vcpus: 2 } })), sockets: '1', cores: '3' };
    assert.ok(cpuMemoryPatch(bad, def({ cpu: { vcpus: 2 } })).ok);
    assert.equal(topologyNote(bad), 'sockets × dies × cores × threads = 1 × 1 × 3 × 1 = 3, but the VM has 2 vCPU slots: the product must equal it');
    assert.equal(topologyNote({ ...bad, maxVcpus: '4', cores: '2', threads: '2' }), 'sockets × dies × cores × threads = 1 × 1 × 2 × 2 = 4, the 4 vCPU slots');
    // A blank is filled in as QEMU does (sockets from the slots left).
    assert.equal(topologyNote({ ...bad, sockets: '', cores: '', threads: '2', maxVcpus: '4' }), 'sockets × dies × cores × threads = 2 × 1 × 1 × 2 = 4, the 4 vCPU slots');
    assert.equal(topologyNote({ ...bad, cores: 'x' }), '');
    assert.deepEqual(parseFeatures('+avx2, -svm'), { ok: true, value: ['+avx2', '-svm'] });
  });

  it('CPU models: host needs KVM, models TCG cannot give are disabled with what they lack (the current one stays)', () => {
    const list: CpuModelList = {
      accel: 'tcg',
      models: [
        { name: 'Nehalem', unavailable: [], deprecated: false },
        { name: 'Skylake-Client', unavailable: ['pcid', 'x2apic'], deprecated: false },
        { name: 'Opteron_G1', unavailable: [], deprecated: true, aliasOf: 'Opteron_G1-v1' },
        { name: 'max', unavailable: [], deprecated: false },
      ],
    };
    const opts = cpuModelOptions(list, 'max');
    assert.deepEqual(opts.map((o) => [o.value, o.disabled]), [['host', true], ['max', false], ['Nehalem', false], ['Skylake-Client', true], ['Opteron_G1', false]]);
    assert.equal(opts.find((o) => o.value === 'Skylake-Client')!.label, 'Skylake-Client — not usable: lacks pcid, x2apic');
    assert.equal(opts.find((o) => o.value === 'Opteron_G1')!.label, 'Opteron_G1 (alias of Opteron_G1-v1, deprecated)');
    assert.equal(cpuModelOptions(list, 'Skylake-Client').find((o) => o.value === 'Skylake-Client')!.disabled, false);
    assert.equal(cpuModelOptions(list, 'Pentium9000')[0]!.label, 'Pentium9000 — QEMU has no such model');
    assert.equal(cpuModelOptions({ accel: 'kvm', models: [] }, 'max')[0]!.disabled, false);
    // Before QEMU's list arrives: host, max and the current model.
    assert.deepEqual(cpuModelOptions(null, 'Nehalem').map((o) => o.value), ['Nehalem', 'host', 'max']);
    assert.match(modelNote(list, 'Skylake-Client'), /TCG cannot give pcid, x2apic: take them off with the flags -pcid -x2apic/);
    assert.equal(modelNote(list, 'Nehalem'), 'Usable with TCG.');
  });

  it('says what a live change did, and the vCPUs and topology in words', () => {
    assert.equal(changeText('2 vCPUs', { applied: 'now', note: '1 vCPU added' }), '2 vCPUs: applied now — 1 vCPU added');
    assert.equal(changeText('512 MiB of memory', { applied: 'next-boot' }), '512 MiB of memory: saved; applies at the next start');
    assert.equal(vcpuText({ vcpus: 1, maxVcpus: 4 }), '1 of 4 vCPU slots plugged');
    assert.equal(vcpuText({ vcpus: 2 }), '2 vCPUs (no spare slots for hotplug)');
    assert.equal(topologyText(def({ cpu: { vcpus: 4, sockets: 1, cores: 2, threads: 2 } }).cpu), '1 socket × 2 cores × 2 threads');
    assert.equal(topologyText(def({ cpu: { vcpus: 2 } }).cpu), '2 sockets × 1 core × 1 thread (QEMU’s default)');
  });
});

describe('Host page: memory, KSM and huge pages', () => {
  const host: HostCpuMemory = {
    cpus: hostCpus, nodes: [{ id: 0, cpus: [0, 1], memTotalKiB: 8 * 1048576, memFreeKiB: 1048576 }],
    hugepages: [{ size: '2M', pageKiB: 2048, total: 64, free: 60, reserved: 4, surplus: 0 }],
    ksm: { available: true, running: true, pagesShared: 100, pagesSharing: 2560, pagesUnshared: 7, fullScans: 3, savedBytes: 2560 * 4096 },
    memTotalKiB: 8 * 1048576, memAvailableKiB: 6 * 1048576 + 512 * 1024,
    committed: { totalMiB: 10240, vms: [{ name: 'a', memoryMiB: 2048, merge: true, balloon: { targetMiB: 1024, actualMiB: 1536, freePageReporting: true } }, { name: 'b', memoryMiB: 8192, hugepages: '2M', merge: false }] },
  };

  it('committed guest memory against the host\'s, largest guest first', () => {
    const v = committedView(host);
    assert.equal(v.percent, 125);
    assert.match(v.text, /^10 GiB committed to 2 running VMs: 125% of the host's 8 GiB \(overcommitted/);
    assert.deepEqual(v.vms, [{ name: 'b', text: '8 GiB on 2M huge pages, KSM merging off' }, { name: 'a', text: '2 GiB; balloon target 1 GiB, the guest has 1.5 GiB, free page reporting on' }]);
    assert.equal(committedView({ memTotalKiB: 1048576 }).text, 'No VM runs: 0% of the host\'s 1 GiB committed');
    assert.equal(kibText(host.memAvailableKiB), '6.5 GiB');
  });

  it('KSM, pools and host changes in words; the pool size is checked before it is sent', () => {
    assert.deepEqual(ksmView(host.ksm), { available: true, running: true, state: 'running', sharing: '2560 pages share 100 (7 unshared)', saved: '10 MiB', scans: '3' });
    assert.equal(ksmView({ available: false }).available, false);
    assert.equal(poolLabel(host.hugepages[0]!), '2 MiB pages');
    assert.deepEqual(parsePoolCount('12'), { ok: true, value: 12 });
    assert.equal(parsePoolCount('-1').ok, false);
    assert.equal(parsePoolCount('').ok, false);
    assert.equal(hostChangeText('KSM on', { commands: ['echo 1 > /sys/kernel/mm/ksm/run'], via: 'root' }), 'KSM on (as root)');
    assert.equal(hostChangeText('KSM on', { commands: [], via: 'root' }), 'KSM on: it already was, nothing to change');
    assert.match(poolShortfall(100, { total: 40, size: '2M' }), /^The kernel gave 40 of the 100 pages .*hugepagesz=2M hugepages=100/);
    assert.equal(poolShortfall(40, { total: 40, size: '2M' }), '');
  });
});

describe('Poller', () => {
  it('runs while watched and the page is visible, every interval after the last run ended; never twice at once', async () => {
    const timers = new ManualTimers();
    let runs = 0;
    let gate: (() => void) | null = null;
    const p = new Poller(async () => { runs++; await new Promise<void>((r) => { gate = r; }); }, 3000, timers);
    assert.equal(runs, 0, 'nothing before a view watches');
    const stop = p.watch();
    assert.equal(runs, 1, 'at once');
    await timers.advance(10_000);
    assert.equal(runs, 1, 'the slow run is not doubled');
    gate!();
    await settle();
    assert.deepEqual(timers.delays(), [3000]);
    await timers.advance(3000);
    assert.equal(runs, 2);
    gate!();
    await settle();
    // Hidden: no timer, nothing runs; visible again: at once.
    p.setPageVisible(false);
    assert.equal(timers.count, 0);
    await timers.advance(30_000);
    assert.equal(runs, 2);
    p.setPageVisible(true);
    assert.equal(runs, 3);
    gate!();
    await settle();
    // The last view gone: stopped.
    stop();
    stop();
    assert.equal(timers.count, 0);
    await timers.advance(30_000);
    assert.equal(runs, 3);
    p.setPageVisible(false);
    p.setPageVisible(true);
    assert.equal(runs, 3, 'visible without a view runs nothing');
  });
});
