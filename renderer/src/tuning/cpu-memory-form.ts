// The CPU and memory settings of a VM's Overview as plain data: the "Edit CPU and memory" form of
// a stopped VM to and from the definition (the patch edit() takes: one level of merge, a null
// takes a setting away), the CPU model choices from QEMU's list (unusable ones disabled with the
// features the accelerator lacks), the live vCPU and memory fields, and what a change did in
// words. Only the syntax of each field is checked here; the cross-field rules (a topology that
// adds up, huge pages that divide the memory, ...) are the core's, whose error names the fix.
import type { CpuMemoryChangeResult, CpuModelList } from '../../../core/common/api.ts';
import { topologyGiven, topologyOf, topologyWords } from '../../../core/common/cpu-memory.ts';
import type { MemoryHotplugMethod, VmDefinition } from '../../../core/common/model.ts';
import { formatMemory } from '../util/format.ts';

export type HugepageChoice = 'none' | '2M' | '1G';

/** What the dialog's fields hold (numbers as typed: a blank optional field means "QEMU's default"). */
export interface CpuMemoryForm {
  model: string;
  /** "+avx2 -svm" or "+avx2,-svm". */
  features: string;
  vcpus: string;
  maxVcpus: string;
  sockets: string;
  dies: string;
  cores: string;
  threads: string;
  memoryMiB: string;
  hugepages: HugepageChoice;
  merge: boolean;
  maxMiB: string;
  slots: string;
  /** How the room up to maxMiB is plugged: DIMMs (grow only) or virtio-mem (grow and shrink). */
  hotplug: MemoryHotplugMethod;
}

export type CpuMemoryField = keyof CpuMemoryForm;

const text = (n: number | undefined): string => (n === undefined ? '' : String(n));

export function formFromDefinition(def: VmDefinition): CpuMemoryForm {
  const { cpu } = def;
  const mem = def.memory;
  return {
    model: cpu.model,
    features: (cpu.features ?? []).join(' '),
    vcpus: String(cpu.vcpus),
    maxVcpus: text(cpu.maxVcpus),
    sockets: text(cpu.sockets),
    dies: text(cpu.dies),
    cores: text(cpu.cores),
    threads: text(cpu.threads),
    memoryMiB: String(def.memoryMiB),
    hugepages: mem?.hugepages ?? 'none',
    merge: mem?.merge !== false,
    maxMiB: text(mem?.maxMiB),
    slots: text(mem?.slots),
    hotplug: mem?.hotplug ?? 'dimm',
  };
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/** A whole number typed in a field (number inputs hand numbers back through v-model, so both arrive). */
export function parseWhole(input: string | number, what: string, min: number, max: number): Parsed<number> {
  const t = String(input).trim();
  if (!/^\d+$/.test(t)) return { ok: false, error: `${what} is a whole number from ${min} to ${max}` };
  const n = Number(t);
  if (n < min || n > max) return { ok: false, error: `${what} is a whole number from ${min} to ${max}` };
  return { ok: true, value: n };
}

const FEATURE_RE = /^[+-][a-z0-9][a-z0-9._-]*$/;

/** Feature flags typed as "+avx2 -svm" or "+avx2,-svm". */
export function parseFeatures(input: string): Parsed<string[]> {
  const list = input.split(/[\s,]+/).filter(Boolean);
  const bad = list.find((f) => !FEATURE_RE.test(f));
  if (bad !== undefined) return { ok: false, error: `"${bad}" is not a feature flag: write +name to add one or -name to take one off, e.g. +avx2 -svm` };
  if (list.length > 64) return { ok: false, error: 'at most 64 feature flags' };
  return { ok: true, value: list };
}

export const MAX_VCPUS = 288;
export const MAX_MEMORY_MIB = 4 * 1024 * 1024;

export type CpuMemoryPatch = { cpu: Record<string, unknown>; memory?: Record<string, unknown>; memoryMiB?: number };

/**
 * The edit() patch for the form, or the fields' errors. A setting cleared in the form is sent as
 * null only when the definition has it (edit merges one level: null removes that key).
 */
export function cpuMemoryPatch(form: CpuMemoryForm, def: VmDefinition): { ok: true; patch: CpuMemoryPatch } | { ok: false; errors: Partial<Record<CpuMemoryField, string>> } {
  const errors: Partial<Record<CpuMemoryField, string>> = {};
  const num = (field: CpuMemoryField, what: string, min: number, max: number, required: boolean): number | null | undefined => {
    const t = String(form[field]).trim();
    if (!t) {
      if (required) errors[field] = `give ${what}`;
      return null;
    }
    const r = parseWhole(t, what, min, max);
    if (!r.ok) {
      errors[field] = r.error;
      return undefined;
    }
    return r.value;
  };
  const model = form.model.trim();
  if (!/^[A-Za-z0-9._-]+$/.test(model)) errors.model = 'pick a CPU model';
  const features = parseFeatures(form.features);
  if (!features.ok) errors.features = features.error;
  const vcpus = num('vcpus', 'the vCPU count', 1, MAX_VCPUS, true);
  const maxVcpus = num('maxVcpus', 'the vCPU slots', 1, MAX_VCPUS, false);
  const sockets = num('sockets', 'sockets', 1, MAX_VCPUS, false);
  const dies = num('dies', 'dies', 1, MAX_VCPUS, false);
  const cores = num('cores', 'cores', 1, MAX_VCPUS, false);
  const threads = num('threads', 'threads', 1, MAX_VCPUS, false);
  const memoryMiB = num('memoryMiB', 'the memory in MiB', 16, MAX_MEMORY_MIB, true);
  const maxMiB = num('maxMiB', 'the hotplug maximum in MiB', 16, MAX_MEMORY_MIB, false);
  const slots = num('slots', 'the hotplug slots', 1, 256, false);
  if (Object.keys(errors).length) return { ok: false, errors };

  const cpu: Record<string, unknown> = { model, vcpus };
  const curCpu = def.cpu as Record<string, unknown>;
  const set = (target: Record<string, unknown>, cur: Record<string, unknown> | undefined, key: string, v: unknown): void => {
    if (v !== null) target[key] = v;
    else if (cur?.[key] !== undefined) target[key] = null;
  };
  set(cpu, curCpu, 'features', features.ok && features.value.length ? features.value : null);
  set(cpu, curCpu, 'maxVcpus', maxVcpus ?? null);
  set(cpu, curCpu, 'sockets', sockets ?? null);
  set(cpu, curCpu, 'dies', dies ?? null);
  set(cpu, curCpu, 'cores', cores ?? null);
  set(cpu, curCpu, 'threads', threads ?? null);

  const curMem = def.memory as Record<string, unknown> | undefined;
  const memory: Record<string, unknown> = {};
  set(memory, curMem, 'hugepages', form.hugepages === 'none' ? null : form.hugepages);
  // Merging on is the default: a definition without memory settings needs none for it.
  if (curMem || !form.merge) memory.merge = form.merge;
  set(memory, curMem, 'maxMiB', maxMiB ?? null);
  // virtio-mem has no DIMM slots; without a maximum there is no hotplug method either.
  const virtioMem = form.hotplug === 'virtio-mem' && maxMiB !== null;
  set(memory, curMem, 'slots', virtioMem ? null : slots ?? null);
  set(memory, curMem, 'hotplug', virtioMem ? 'virtio-mem' : null);

  const patch: CpuMemoryPatch = { cpu };
  if (Object.keys(memory).length) patch.memory = memory;
  if (memoryMiB !== def.memoryMiB) patch.memoryMiB = memoryMiB!;
  return { ok: true, patch };
}

/**
 * The topology the form's numbers make, as QEMU fills in a blank (sockets first, then cores), and
 * whether it matches the vCPU slots; '' while a number is not readable. Information only: the core decides.
 */
export function topologyNote(form: CpuMemoryForm): string {
  const opt = (t: string): number | undefined | null => {
    const s = String(t).trim();
    if (!s) return undefined;
    return /^\d+$/.test(s) && Number(s) > 0 ? Number(s) : null;
  };
  const vcpus = opt(form.vcpus);
  const fields = { maxVcpus: opt(form.maxVcpus), sockets: opt(form.sockets), dies: opt(form.dies), cores: opt(form.cores), threads: opt(form.threads) };
  if (!vcpus || Object.values(fields).includes(null)) return '';
  const cpu = { model: 'max', vcpus, ...Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) };
  const t = topologyOf(cpu as VmDefinition['cpu']);
  const product = t.sockets * t.dies * t.cores * t.threads;
  const sum = `sockets × dies × cores × threads = ${t.sockets} × ${t.dies} × ${t.cores} × ${t.threads} = ${product}`;
  return product === t.maxVcpus
    ? `${sum}, the ${t.maxVcpus} vCPU slot${t.maxVcpus === 1 ? '' : 's'}`
    : `${sum}, but the VM has ${t.maxVcpus} vCPU slot${t.maxVcpus === 1 ? '' : 's'}: the product must equal it`;
}

export interface ModelOption {
  value: string;
  label: string;
  disabled: boolean;
  /** Why it cannot be picked (or what it lacks). */
  reason?: string;
}

/**
 * The CPU model choices: host (KVM only), max, then QEMU's named models, each disabled when the
 * accelerator cannot give all of its features (the current model stays pickable: flags that take
 * the missing features off make it usable). A model QEMU does not list is kept, marked.
 */
export function cpuModelOptions(list: CpuModelList | null, current: string): ModelOption[] {
  const tcg = list?.accel === 'tcg';
  const opts: ModelOption[] = [
    tcg
      ? { value: 'host', label: 'host — not usable here: passing the host CPU through needs KVM', disabled: current !== 'host', reason: 'passing the host CPU through needs KVM, and VMs run under TCG here' }
      : { value: 'host', label: 'host — the host CPU passed through (KVM)', disabled: false },
    { value: 'max', label: `max — every feature ${list ? list.accel.toUpperCase() : 'the accelerator'} can give`, disabled: false },
  ];
  for (const m of list?.models ?? []) {
    if (m.name === 'host' || m.name === 'max') continue;
    const extra = [m.aliasOf ? `alias of ${m.aliasOf}` : '', m.deprecated ? 'deprecated' : ''].filter(Boolean).join(', ');
    const name = extra ? `${m.name} (${extra})` : m.name;
    if (m.unavailable.length) {
      const reason = `${list!.accel.toUpperCase()} cannot give ${m.unavailable.join(', ')}`;
      opts.push({ value: m.name, label: `${name} — not usable: lacks ${m.unavailable.join(', ')}`, disabled: m.name !== current, reason });
    } else {
      opts.push({ value: m.name, label: name, disabled: false });
    }
  }
  // The current model is always there (while QEMU's list is read, or when QEMU does not know it).
  if (!opts.some((o) => o.value === current)) {
    opts.unshift(list
      ? { value: current, label: `${current} — QEMU has no such model`, disabled: false, reason: 'QEMU has no CPU model by this name' }
      : { value: current, label: current, disabled: false });
  }
  return opts;
}

/** The note under the model select for the chosen model. */
export function modelNote(list: CpuModelList | null, model: string): string {
  if (!list) return 'Reading QEMU’s CPU models…';
  if (model === 'host') return list.accel === 'tcg' ? 'Not usable here: passing the host CPU through needs KVM, and VMs run under TCG.' : 'The host CPU as it is (host-passthrough): fastest, but the guest may not move to another CPU type.';
  if (model === 'max') return `Every CPU feature ${list.accel.toUpperCase()} can give.`;
  const m = list.models.find((x) => x.name === model);
  if (!m) return 'QEMU has no CPU model by this name: the VM will not start with it.';
  if (!m.unavailable.length) return `Usable with ${list.accel.toUpperCase()}.`;
  return `${list.accel.toUpperCase()} cannot give ${m.unavailable.join(', ')}: take them off with the flags ${m.unavailable.map((f) => `-${f}`).join(' ')}, or pick another model.`;
}

/** The accelerator to ask QEMU about for a VM (auto: the core answers with the one VMs get here). */
export function modelAccel(def: Pick<VmDefinition, 'accel'>): 'kvm' | 'tcg' | undefined {
  return def.accel === 'auto' ? undefined : def.accel;
}

/** The Overview's hotplug line: how far memory can grow, and by what. */
export function hotplugText(def: Pick<VmDefinition, 'memoryMiB' | 'memory'>): string {
  const m = def.memory;
  if (m?.maxMiB === undefined) return 'none: memory cannot grow while the VM runs';
  if (m.maxMiB <= def.memoryMiB) return `none left: the memory is at its hotplug maximum of ${formatMemory(m.maxMiB)}`;
  const max = formatMemory(m.maxMiB);
  return m.hotplug === 'virtio-mem' ? `up to ${max} by virtio-mem (grows and shrinks live)` : `up to ${max} (${m.slots ?? 4} DIMM slots)`;
}

/** What a live CPU or memory change did, in words. */
export function changeText(what: string, r: Pick<CpuMemoryChangeResult, 'applied' | 'note'>): string {
  const when = r.applied === 'now' ? 'applied now' : 'saved; applies at the next start';
  return `${what}: ${when}${r.note ? ` — ${r.note}` : ''}`;
}

/** "1 of 4 vCPU slots plugged" or "2 vCPUs". */
export function vcpuText(cpu: Pick<VmDefinition['cpu'], 'vcpus' | 'maxVcpus'>): string {
  const slots = cpu.maxVcpus ?? cpu.vcpus;
  if (slots > cpu.vcpus) return `${cpu.vcpus} of ${slots} vCPU slots plugged`;
  return `${cpu.vcpus} vCPU${cpu.vcpus === 1 ? '' : 's'} (no spare slots for hotplug)`;
}

/** "1 socket × 2 cores × 2 threads" as QEMU builds it. */
export function topologyText(cpu: VmDefinition['cpu']): string {
  return topologyWords(cpu) + (topologyGiven(cpu) ? '' : ' (QEMU’s default)');
}
