// Device operations on a definition as plain data: add, edit or remove one device of a kind, and
// the device differences between two definitions (what a running VM does not have yet). Pure TS,
// shared by the core, the CLI and the UI. The result is re-validated by parseDefinition.
import type { DeviceKindName, PendingChange } from './api.ts';
import { cpuMemoryPending } from './cpu-memory.ts';
import { HangarError } from './errors.ts';
import type { VmDefinition } from './model.ts';

type Raw = Record<string, unknown>;

/** Kinds holding many devices, each with an id, and the definition field holding them. */
export const listKindFields = {
  disk: 'disks', cdrom: 'cdroms', nic: 'nics', input: 'inputs', share: 'shares', channel: 'channels', serial: 'serialPorts',
  hostpci: 'hostPci', mdev: 'mdevs', usbhost: 'hostUsb',
} as const satisfies Partial<Record<DeviceKindName, keyof VmDefinition>>;
export type ListKind = keyof typeof listKindFields;

/** One-per-VM kinds, with the fixed id they go by. */
export const singletonIds = {
  rng: 'rng0', balloon: 'balloon0', video: 'video0', sound: 'sound0', watchdog: 'watchdog0', usb: 'usb0', vsock: 'vsock0', tpm: 'tpm0',
} as const satisfies Partial<Record<DeviceKindName, string>>;
export type SingletonKind = keyof typeof singletonIds;

/** The prefix of ids the core picks, e.g. disk1, net2. Serial ports start at 1: serial0 is the console. */
const idPrefix: Record<ListKind, string> = { disk: 'disk', cdrom: 'cd', nic: 'net', input: 'input', share: 'share', channel: 'channel', serial: 'serial', hostpci: 'hostpci', mdev: 'mdev', usbhost: 'usbhost' };

export function isListKind(kind: DeviceKindName): kind is ListKind {
  return Object.hasOwn(listKindFields, kind);
}

function listOf(def: Raw, kind: ListKind): Raw[] {
  const v = def[listKindFields[kind]];
  return Array.isArray(v) ? (v as Raw[]) : [];
}

/** Ids already taken by any device of the definition (QEMU ids share one namespace). */
function takenIds(def: Raw): Set<string> {
  const ids = new Set<string>(['serial0', ...Object.values(singletonIds)]);
  for (const kind of Object.keys(listKindFields) as ListKind[]) for (const d of listOf(def, kind)) if (typeof d.id === 'string') ids.add(d.id);
  return ids;
}

export function nextDeviceId(def: Raw, kind: ListKind): string {
  const taken = takenIds(def);
  let n = kind === 'serial' ? 1 : 0;
  while (taken.has(`${idPrefix[kind]}${n}`)) n++;
  return `${idPrefix[kind]}${n}`;
}

/** A singleton is present when its field is set (video: a model other than none). */
function singletonPresent(def: Raw, kind: SingletonKind): boolean {
  const v = def[kind] as Raw | undefined;
  if (!v) return false;
  return kind !== 'video' || (v.model !== undefined && v.model !== 'none');
}

function kindWord(kind: DeviceKindName): string {
  return kind === 'nic' ? 'NIC' : kind === 'cdrom' ? 'CD-ROM' : kind === 'serial' ? 'serial port' : kind === 'hostpci' ? 'PCI host device'
    : kind === 'mdev' ? 'mediated device' : kind === 'usbhost' ? 'USB host device' : kind;
}

function notFound(def: Raw, kind: DeviceKindName, id: string): HangarError {
  if (isListKind(kind)) {
    const ids = listOf(def, kind).map((d) => d.id).join(', ');
    return new HangarError('not-found', `VM "${String(def.name)}" has no ${kindWord(kind)} "${id}"`, ids ? `its ${kindWord(kind)}s: ${ids}` : `it has no ${kindWord(kind)}s; add one first`);
  }
  return new HangarError('not-found', `VM "${String(def.name)}" has no ${kindWord(kind)} device`, `add one first (hangar device add ${String(def.name)} ${kind})`);
}

/** The definition with one device added; the id is the device's own or the next free one. */
export function withDeviceAdded(def: Raw, kind: DeviceKindName, device: Raw): { definition: Raw; id: string } {
  if (isListKind(kind)) {
    const id = typeof device.id === 'string' && device.id ? device.id : nextDeviceId(def, kind);
    if (takenIds(def).has(id)) {
      throw new HangarError('already-exists', `VM "${String(def.name)}" already has a device with id "${id}"`, 'choose another id, or leave it out and Hangar picks one');
    }
    return { definition: { ...def, [listKindFields[kind]]: [...listOf(def, kind), { ...device, id }] }, id };
  }
  if (singletonPresent(def, kind)) {
    throw new HangarError('already-exists', `VM "${String(def.name)}" already has a ${kindWord(kind)} device (a VM has one)`, `edit it instead (hangar device edit ${String(def.name)} ${kind} ${singletonIds[kind]} ...)`);
  }
  const { id: _ignored, ...fields } = device;
  return { definition: { ...def, [kind]: fields }, id: singletonIds[kind] };
}

/** patch over cur; a null in the patch removes that field (e.g. a CD-ROM's file: eject). */
function merged(cur: Raw, patch: Raw): Raw {
  const out: Raw = { ...cur };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = v;
  }
  return out;
}

export function withDeviceEdited(def: Raw, kind: DeviceKindName, id: string, patch: Raw): Raw {
  if (patch.id !== undefined && patch.id !== id) throw new HangarError('invalid-input', `a device's id cannot change ("${id}" to "${String(patch.id)}")`, 'remove the device and add it again under the new id');
  if (isListKind(kind)) {
    const list = listOf(def, kind);
    const i = list.findIndex((d) => d.id === id);
    if (i < 0) throw notFound(def, kind, id);
    const next = [...list];
    next[i] = { ...merged(list[i]!, patch), id };
    return { ...def, [listKindFields[kind]]: next };
  }
  if (id !== singletonIds[kind] || !singletonPresent(def, kind)) throw notFound(def, kind, id);
  const { id: _ignored, ...fields } = patch;
  return { ...def, [kind]: merged(def[kind] as Raw, fields) };
}

export function withDeviceRemoved(def: Raw, kind: DeviceKindName, id: string): { definition: Raw; removed: Raw } {
  if (isListKind(kind)) {
    const list = listOf(def, kind);
    const removed = list.find((d) => d.id === id);
    if (!removed) throw notFound(def, kind, id);
    return { definition: { ...def, [listKindFields[kind]]: list.filter((d) => d !== removed) }, removed };
  }
  if (id !== singletonIds[kind] || !singletonPresent(def, kind)) throw notFound(def, kind, id);
  const removed = def[kind] as Raw;
  const next: Raw = { ...def };
  if (kind === 'video') next.video = { model: 'none' };
  else delete next[kind];
  return { definition: next, removed };
}

/** The device of a kind by id, or undefined. */
export function findDevice(def: VmDefinition, kind: DeviceKindName, id: string): Raw | undefined {
  const raw = def as unknown as Raw;
  if (isListKind(kind)) return listOf(raw, kind).find((d) => d.id === id);
  return id === singletonIds[kind] && singletonPresent(raw, kind) ? (raw[kind] as Raw) : undefined;
}

/** JSON with sorted keys, so two equal devices compare equal whatever their key order. */
function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().filter((k) => (v as Raw)[k] !== undefined).map((k) => `${JSON.stringify(k)}:${stable((v as Raw)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

function typeOf(d: Raw): string {
  const type = d.bus ?? d.model ?? d.driver ?? d.name ?? d.type ?? d.output;
  return typeof type === 'string' ? ` (${type})` : '';
}

/**
 * What the saved definition changes against the one a VM runs: devices to add, remove or
 * change at the next start, and the CPU and memory settings saved for it.
 */
export function pendingChanges(running: VmDefinition, saved: VmDefinition): PendingChange[] {
  const out: PendingChange[] = [];
  const r = running as unknown as Raw;
  const s = saved as unknown as Raw;
  for (const kind of Object.keys(listKindFields) as ListKind[]) {
    const before = new Map(listOf(r, kind).map((d) => [d.id as string, d]));
    const after = new Map(listOf(s, kind).map((d) => [d.id as string, d]));
    for (const [id, d] of after) {
      const old = before.get(id);
      if (!old) out.push({ kind, id, change: 'add', summary: `${kindWord(kind)} ${id}${typeOf(d)} will be added` });
      else if (stable(old) !== stable(d)) out.push({ kind, id, change: 'edit', summary: `${kindWord(kind)} ${id} will change` });
    }
    for (const [id, d] of before) if (!after.has(id)) out.push({ kind, id, change: 'remove', summary: `${kindWord(kind)} ${id}${typeOf(d)} will be removed` });
  }
  for (const kind of Object.keys(singletonIds) as SingletonKind[]) {
    const id = singletonIds[kind];
    const had = singletonPresent(r, kind);
    const has = singletonPresent(s, kind);
    if (has && !had) out.push({ kind, id, change: 'add', summary: `${kindWord(kind)} ${id}${typeOf(s[kind] as Raw)} will be added` });
    else if (had && !has) out.push({ kind, id, change: 'remove', summary: `${kindWord(kind)} ${id} will be removed` });
    else if (had && has && stable(r[kind]) !== stable(s[kind])) out.push({ kind, id, change: 'edit', summary: `${kindWord(kind)} ${id} will change` });
  }
  const tuning = cpuMemoryPending(running, saved);
  if (tuning.cpu.length) out.push({ kind: 'cpu', id: 'cpu', change: 'edit', summary: `CPU: ${tuning.cpu.join('; ')}` });
  if (tuning.memory.length) out.push({ kind: 'memory', id: 'memory', change: 'edit', summary: `memory: ${tuning.memory.join('; ')}` });
  return out;
}
