// CPU and memory changes of a VM, live where QEMU and the guest allow and saved for the next boot
// in any case: vCPUs added into free slots (device_add of the CPU type query-hotpluggable-cpus
// names) or taken out again (device_del, which the guest must agree to); thread pinning changed on
// the running threads; memory grown by a pc-dimm on its own backend, or grown and shrunk by setting
// the virtio-mem device's requested size (the guest plugs and unplugs blocks of it). What cannot
// happen live says so and applies at the next start.
import { HangarError } from '../../common/errors.ts';
import { parseDefinition } from '../../common/definition.ts';
import type { CpuDefinition, VmDefinition } from '../../common/model.ts';
import { isActive } from '../../common/state.ts';
import { checkCpuMemoryHost } from '../host/cpu-memory-checks.ts';
import { hostCpuNodes } from '../host/host-memory.ts';
import type { QmpClient } from '../qmp/client.ts';
import { memoryBackend, VIRTIO_MEM_ID } from '../qemu/devices/memory.ts';
import { needsSharedMemory } from '../qemu/vm-argv.ts';
import { applyPinning } from './cpu-pinning.ts';
import { hostRootsFromEnv } from './host-device-ops.ts';
import type { VmInstance } from './vm-instance.ts';

export interface CpuMemoryChange {
  applied: 'now' | 'next-boot';
  note?: string;
}

export interface CpuMemoryDeps {
  /** Writes the VM's definition (atomically) and tells clients. */
  save(vm: VmInstance, def: VmDefinition): Promise<void>;
}

interface HotpluggableCpu { type: string; 'vcpus-count': number; props: Record<string, number>; 'qom-path'?: string }

const MIB = 1024 * 1024;

/** A definition with a change, through the one gate (parse + cross-field checks). */
function changed(def: VmDefinition, patch: Partial<VmDefinition>): VmDefinition {
  return parseDefinition({ ...def, ...patch });
}

/** Sets the number of vCPUs online: live into (or out of) the free slots of a running VM, saved for the next boot. */
export async function setVcpus(vm: VmInstance, count: number, deps: CpuMemoryDeps): Promise<CpuMemoryChange> {
  const def = changed(vm.definition, { cpu: { ...vm.definition.cpu, vcpus: count } });
  const slots = def.cpu.maxVcpus ?? def.cpu.vcpus;
  if (!isActive(vm.state)) {
    await deps.save(vm, def);
    return { applied: 'next-boot' };
  }
  const running = vm.runningDefinition;
  const runningSlots = running.cpu.maxVcpus ?? running.cpu.vcpus;
  if (count > runningSlots) {
    throw new HangarError('invalid-input', `VM "${vm.name}" runs with ${runningSlots} vCPU slots: ${count} vCPUs need more`,
      `raise the slots while it is stopped (hangar edit ${vm.name} --maxcpus ${count}), then start it again`);
  }
  if (running.machine !== 'q35' && running.machine !== 'pc') {
    await deps.save(vm, def);
    return { applied: 'next-boot', note: `a ${running.machine} machine has no CPU hotplug: ${count} vCPUs at the next start` };
  }
  const qmp = vm.liveQmp('CPU hotplug');
  const cpus = await qmp.execute<HotpluggableCpu[]>('query-hotpluggable-cpus');
  const plugged = cpus.filter((c) => c['qom-path']);
  let note: string | undefined;
  if (count > plugged.length) {
    // QEMU under TCG corrupts its heap and dies plugging any vCPU after the guest released one
    // (seen with 7.2 here, a fresh slot too): refused until the next start rather than lose the guest.
    const released = vm.releasedVcpus();
    if (vm.runningAccel === 'tcg' && released.size) {
      await deps.save(vm, def);
      return { applied: 'next-boot', note: `the guest released ${released.size === 1 ? 'a vCPU' : `${released.size} vCPUs`} in this run, and QEMU under TCG crashes when a vCPU is plugged after that: ${count} vCPUs at the next start` };
    }
    // Lowest slots first (query-hotpluggable-cpus lists the highest first).
    const free = cpus.filter((c) => !c['qom-path']).reverse().slice(0, count - plugged.length);
    for (const c of free) {
      const id = vcpuId(c);
      try {
        await qmp.execute('device_add', { driver: c.type, id, ...c.props });
      } catch (e) {
        throw new HangarError('qmp-error', `QEMU could not add a vCPU to VM "${vm.name}": ${(e as Error).message}`, 'the vCPUs added before this one stay; the definition is unchanged');
      }
    }
  } else if (count < plugged.length) {
    // Only vCPUs plugged after boot have a device to delete (peripheral ids); boot vCPUs stay until the next start.
    const removable = plugged.filter((c) => c['qom-path']!.startsWith('/machine/peripheral/')).reverse().slice(0, plugged.length - count);
    for (const c of removable) await requestUnplug(qmp, c['qom-path']!.split('/').pop()!);
    const unplugIds = removable.map((c) => c['qom-path']!.split('/').pop()!);
    const left = plugged.length - removable.length - count;
    // A willing guest lets go within moments (ACPI eject); a later release is followed by the VM (DEVICE_DELETED).
    const released = removable.length ? await waitForPlugged(qmp, plugged.length - removable.length, UNPLUG_WAIT_MS) : true;
    if (released) for (const id of unplugIds) vm.releasedVcpus().add(id);
    note = removable.length
      ? `${released ? `the guest released ${removable.length} vCPU${removable.length > 1 ? 's' : ''}${vm.runningAccel === 'tcg' ? ' (under TCG no vCPU can be added again until the VM restarts)' : ''}` : `the guest was asked to release ${removable.length} vCPU${removable.length > 1 ? 's' : ''} (it takes them offline when it agrees; until then they stay pending)`}${left > 0 ? `; ${left} boot vCPU${left > 1 ? 's' : ''} go at the next start` : ''}`
      : `vCPUs present at boot cannot be taken out of a running guest: ${count} vCPUs at the next start`;
  }
  await deps.save(vm, def);
  const nowPlugged = await pluggedCount(qmp);
  await vm.setRunningDefinition({ ...running, cpu: { ...running.cpu, vcpus: nowPlugged } });
  if (def.cpu.pinning) await applyPinning(qmp, vm.pid!, def.cpu.pinning);
  await vm.log(`vCPUs set to ${count} (${nowPlugged} plugged now, ${slots} slots)`);
  if (count > (plugged.length)) note = `${count - plugged.length} vCPU${count - plugged.length > 1 ? 's' : ''} added; a Linux guest brings them online with echo 1 > /sys/devices/system/cpu/cpuN/online (or a udev rule)`;
  return note === undefined ? { applied: nowPlugged === count ? 'now' : 'next-boot' } : { applied: nowPlugged === count ? 'now' : 'next-boot', note };
}

/** The device id Hangar gives the vCPU of a slot. */
const vcpuId = (c: HotpluggableCpu): string => `vcpu-${Object.values(c.props).join('-')}`;

/** How long a vCPU removal waits for the guest before answering (it may still agree later). */
const UNPLUG_WAIT_MS = 10_000;

/** The vCPUs QEMU has plugged now. */
export async function pluggedCount(qmp: QmpClient): Promise<number> {
  return (await qmp.execute<HotpluggableCpu[]>('query-hotpluggable-cpus')).filter((c) => c['qom-path']).length;
}

async function waitForPlugged(qmp: QmpClient, want: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await pluggedCount(qmp) <= want) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function requestUnplug(qmp: QmpClient, id: string): Promise<void> {
  try {
    await qmp.execute('device_del', { id });
  } catch (e) {
    throw new HangarError('qmp-error', `QEMU could not start removing vCPU ${id}: ${(e as Error).message}`);
  }
}

/** Changes the pinning: checked against the host, applied to the running threads, saved. */
export async function setPinning(vm: VmInstance, pinning: CpuDefinition['pinning'] | null, deps: CpuMemoryDeps): Promise<CpuMemoryChange> {
  const cpu: CpuDefinition = { ...vm.definition.cpu };
  if (pinning) cpu.pinning = pinning;
  else delete cpu.pinning;
  const def = changed(vm.definition, { cpu });
  await checkCpuMemoryHost(def, hostRootsFromEnv().sysRoot);
  if (!isActive(vm.state)) {
    await deps.save(vm, def);
    return { applied: 'next-boot' };
  }
  const qmp = vm.liveQmp('pinning');
  // Unpinned means every online host CPU again.
  const online = (await hostCpuNodes(hostRootsFromEnv().sysRoot)).cpus;
  const everywhere = online.length ? `0-${Math.max(...online)}` : undefined;
  const effective = {
    emulator: pinning?.emulator ?? everywhere,
    iothreads: pinning?.iothreads ?? pinning?.emulator ?? everywhere,
    vcpus: Array.from({ length: vm.runningDefinition.cpu.maxVcpus ?? vm.runningDefinition.cpu.vcpus }, (_, i) => pinning?.vcpus?.[i] ?? everywhere ?? null),
  };
  await applyPinning(qmp, vm.pid!, effective);
  await deps.save(vm, def);
  const { pinning: _old, ...runningCpu } = vm.runningDefinition.cpu;
  await vm.setRunningDefinition({ ...vm.runningDefinition, cpu: pinning ? { ...runningCpu, pinning } : runningCpu });
  await vm.log(pinning ? 'CPU pinning changed live' : 'CPU pinning removed live');
  return { applied: 'now' };
}

/** Sets the guest's memory: grown live by a pc-dimm (up to the maximum), saved for the next boot. */
export async function resizeMemory(vm: VmInstance, mib: number, deps: CpuMemoryDeps): Promise<CpuMemoryChange> {
  const cur = vm.definition;
  if (cur.memory?.numa?.length) {
    throw new HangarError('invalid-input', `VM "${vm.name}" has NUMA nodes: its memory is set per node`,
      `change the nodes' memory while it is stopped (hangar edit ${vm.name} --memory ${mib} --numa ...)`);
  }
  const running = vm.runningDefinition;
  const max = running.memory?.maxMiB;
  if (isActive(vm.state) && mib > running.memoryMiB && (max === undefined || mib > max)) {
    throw new HangarError('invalid-input', `VM "${vm.name}" runs with ${max === undefined ? 'no room for memory hotplug' : `a hotplug maximum of ${max} MiB`}: it cannot grow to ${mib} MiB now`,
      `set a maximum while it is stopped (hangar edit ${vm.name} --maxmem ${Math.max(mib, running.memoryMiB * 2)}M), then grow it live; or stop it and set ${mib} MiB`);
  }
  const def = changed(cur, { memoryMiB: mib });
  if (!isActive(vm.state)) {
    await deps.save(vm, def);
    return { applied: 'next-boot' };
  }
  if (mib === running.memoryMiB) {
    await deps.save(vm, def);
    return { applied: 'now' };
  }
  if (running.memory?.hotplug === 'virtio-mem') return resizeVirtioMem(vm, mib, def, deps);
  if (mib < running.memoryMiB) {
    await deps.save(vm, def);
    return { applied: 'next-boot', note: `memory cannot be taken from a running guest here: ${mib} MiB at the next start (the balloon can lend memory back meanwhile)` };
  }
  const qmp = vm.liveQmp('memory hotplug');
  const add = mib - running.memoryMiB;
  const n = Date.now().toString(36);
  // The same kind of backend as the boot memory: huge pages, KSM merging, shared for vhost-user back ends.
  const backend = memoryBackend(`dimm-mem-${n}`, add, running, needsSharedMemory(running));
  await qmp.execute('object-add', Object.fromEntries(Object.entries(backend).filter(([, v]) => v !== undefined)));
  try {
    await qmp.execute('device_add', { driver: 'pc-dimm', id: `dimm-${n}`, memdev: `dimm-mem-${n}` });
  } catch (e) {
    await qmp.execute('object-del', { id: `dimm-mem-${n}` }).catch(() => {});
    throw new HangarError('qmp-error', `QEMU could not add ${add} MiB to VM "${vm.name}": ${(e as Error).message}`,
      'the hotplug slots may all be used (each grow takes one): restart the VM to fold the added memory into its boot memory');
  }
  await deps.save(vm, def);
  await vm.setRunningDefinition({ ...running, memoryMiB: mib });
  await vm.log(`memory grown to ${mib} MiB (a ${add} MiB DIMM)`);
  return { applied: 'now', note: `${add} MiB added as a DIMM; a Linux guest brings it online by itself when memhp_default_state=online (else echo online > /sys/devices/system/memory/memoryN/state)` };
}

/** A memory device as query-memory-devices lists it (pc-dimm, virtio-mem). */
interface MemoryDevice { type: string; data: { id?: string; size?: number; 'requested-size'?: number; 'max-size'?: number; 'block-size'?: number } }

/** The virtio-mem device's sizes in bytes (size: what the guest has plugged), or undefined. */
async function virtioMemSizes(qmp: QmpClient): Promise<{ size: number; requested: number; max: number; block: number } | undefined> {
  const devs = await qmp.execute<MemoryDevice[]>('query-memory-devices');
  const d = devs.find((x) => x.type === 'virtio-mem' && x.data.id === VIRTIO_MEM_ID)?.data;
  return d && { size: d.size ?? 0, requested: d['requested-size'] ?? 0, max: d['max-size'] ?? 0, block: d['block-size'] ?? 2 * MIB };
}

/** How long a virtio-mem resize waits for the guest to plug or unplug before answering. */
const VIRTIO_MEM_WAIT_MS = 10_000;

/**
 * virtio-mem: the device's requested size becomes (target - boot memory), up or down; the guest
 * plugs or unplugs blocks until its size reaches it (waited for a bounded time, then reported as
 * still going). Below the boot memory only what was plugged comes back now, the rest at the next
 * start. The boot memory is QEMU's own base-memory (query-memory-size-summary).
 */
async function resizeVirtioMem(vm: VmInstance, mib: number, def: VmDefinition, deps: CpuMemoryDeps): Promise<CpuMemoryChange> {
  const running = vm.runningDefinition;
  const qmp = vm.liveQmp('memory hotplug');
  const dev = await virtioMemSizes(qmp);
  if (!dev) {
    // Started at its maximum: no room, so no device.
    await deps.save(vm, def);
    return { applied: 'next-boot', note: `the running VM has no virtio-mem room (it started at its hotplug maximum): ${mib} MiB at the next start` };
  }
  const base = (await qmp.execute<{ 'base-memory': number }>('query-memory-size-summary'))['base-memory'] / MIB;
  const want = Math.max(0, mib - base) * MIB;
  if (want % dev.block) {
    throw new HangarError('invalid-input', `VM "${vm.name}" plugs memory by virtio-mem in ${dev.block / MIB} MiB blocks above its ${base} MiB boot memory: ${mib} MiB is not on a block`,
      `use a multiple of ${dev.block / MIB} MiB, e.g. ${base + Math.round((mib - base) * MIB / dev.block) * dev.block / MIB} MiB`);
  }
  const growing = want > dev.size;
  try {
    await qmp.execute('qom-set', { path: `/machine/peripheral/${VIRTIO_MEM_ID}`, property: 'requested-size', value: want });
  } catch (e) {
    throw new HangarError('qmp-error', `QEMU could not set the virtio-mem size of VM "${vm.name}": ${(e as Error).message}`, 'the definition is unchanged');
  }
  const deadline = Date.now() + VIRTIO_MEM_WAIT_MS;
  let now = dev;
  while (now.size !== want && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    now = (await virtioMemSizes(qmp)) ?? now;
  }
  const reached = base + now.size / MIB;
  const live = Math.max(mib, base);
  await deps.save(vm, def);
  await vm.setRunningDefinition({ ...running, memoryMiB: live });
  await vm.log(`memory set to ${live} MiB by virtio-mem (${now.size / MIB} of ${want / MIB} MiB plugged above the ${base} MiB boot memory)`);
  const where = now.size === want
    ? `the guest has ${reached} MiB now (${base} MiB at boot + ${now.size / MIB} MiB plugged by virtio-mem)`
    : `the guest is still ${growing ? 'plugging' : 'unplugging'}: ${reached} MiB so far (${now.size / MIB} of ${want / MIB} MiB plugged above the ${base} MiB boot memory)${growing ? '; a guest without the virtio_mem driver (Linux 5.8+) never plugs' : '; Linux takes back only memory it can move out of the way, and keeps trying'}`;
  if (mib < base) {
    const down = now.size === want ? `the guest is down to the ${base} MiB it booted with now` : `the guest is still unplugging toward the ${base} MiB it booted with (${reached} MiB so far)`;
    return { applied: 'next-boot', note: `virtio-mem gives back only what it plugged: ${down}; ${mib} MiB at the next start` };
  }
  return { applied: 'now', note: where };
}

/**
 * Why the running VM's RAM state cannot be saved or snapshotted now, or null: vCPUs or DIMMs
 * plugged while it runs are not in the command line a restore would start QEMU with; nor is
 * memory plugged by virtio-mem (a restore boots with it as boot memory, a different layout).
 * An idle virtio-mem device is on the command line and its state restores with the rest.
 */
export async function liveHotplugBlocker(qmp: QmpClient): Promise<string | null> {
  const devs = await qmp.execute<MemoryDevice[]>('query-memory-devices').catch(() => []);
  const dimms = devs.filter((d) => d.type !== 'virtio-mem');
  const vmem = devs.find((d) => d.type === 'virtio-mem');
  const cpus = await qmp.execute<HotpluggableCpu[]>('query-hotpluggable-cpus').catch(() => []);
  const hotCpus = cpus.filter((c) => c['qom-path']?.startsWith('/machine/peripheral/')).length;
  const dimmMiB = dimms.reduce((a, d) => a + (d.data.size ?? 0), 0) / MIB;
  const vmemSize = (vmem?.data.size ?? 0) / MIB;
  const vmemAsked = (vmem?.data['requested-size'] ?? 0) / MIB;
  if (!dimms.length && !hotCpus && !vmemSize && !vmemAsked) return null;
  const what = [hotCpus ? `${hotCpus} vCPU${hotCpus > 1 ? 's' : ''}` : '', dimms.length ? `${dimmMiB} MiB of memory` : ''].filter(Boolean).join(' and ');
  let vmemText = '';
  if (vmemSize || vmemAsked) {
    const base = await qmp.execute<{ 'base-memory': number }>('query-memory-size-summary').then((r) => `${r['base-memory'] / MIB} MiB`, () => 'boot memory');
    vmemText = `${vmemSize} MiB of memory is plugged by virtio-mem${vmemAsked !== vmemSize ? ` (${vmemAsked} MiB asked)` : ''}, which a restore would start with as boot memory, not the layout the state was saved from: `
      + `set the memory back to the ${base} it booted with (and let the guest unplug), or restart the VM first`;
  }
  if (!what) return vmemText;
  return `${what} ${hotCpus + dimms.length > 1 ? 'were' : 'was'} added while it runs, which a restore could not bring back: restart the VM first (it then boots with them)${vmemText ? `; and ${vmemText}` : ''}`;
}
