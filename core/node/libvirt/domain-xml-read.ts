// libvirt domain XML -> Hangar VM definition (the import direction, and the libvirt driver's
// get()). Everything both sides have is mapped; everything else becomes one sentence in
// notCarried, never silently dropped. The result passes Hangar's own definition gate.
import { randomUUID } from 'node:crypto';
import { parseDefinition } from '../../common/definition.ts';
import { HangarError, isHangarError } from '../../common/errors.ts';
import { MODEL_VERSION, NAME_MAX_LENGTH } from '../../common/model.ts';
import type { VmDefinition } from '../../common/model.ts';
import { attr, child, childNames, list, parseDomain, scaledBytes, text } from './domain-xml-common.ts';
import type { XNode } from './domain-xml-common.ts';
import { readDevices } from './domain-xml-read-devices.ts';
import { readNics } from './domain-xml-read-net.ts';
import { readStorage } from './domain-xml-read-storage.ts';
import type { BootMark } from './domain-xml-read-storage.ts';

export interface DomainImport {
  definition: VmDefinition;
  /** One plain sentence per thing in the XML that Hangar's model cannot hold. */
  notCarried: string[];
}

const MIB = 1024 * 1024;
const UUID_RE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
/** RFC 4122 variant and a version 1-8, what the model's uuid rule accepts. */
const RFC_UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** <features> children that match what Hangar's pc/q35 machines always do. */
const SAME_FEATURES = new Set(['acpi', 'apic', 'pae', 'vmport', 'smm']);

/**
 * Top-level elements read here or with no effect Hangar lacks: metadata (other tools' notes),
 * pm and clock timers (guest power-management and timer tuning Hangar leaves at QEMU's
 * defaults), iothreads (Hangar gives each disk that asks one its own), genid.
 */
const KNOWN_TOP = new Set(['name', 'uuid', 'title', 'description', 'metadata', 'memory', 'currentMemory', 'maxMemory', 'memoryBacking', 'vcpu', 'vcpus',
  'cpu', 'cputune', 'numatune', 'os', 'features', 'clock', 'on_poweroff', 'on_reboot', 'on_crash', 'on_lockfailure', 'pm', 'devices', 'iothreads', 'genid']);

/**
 * What libvirt adds to every domain for its own running of QEMU: a dynamic (or no) security label
 * and the default cgroup partition. Nothing of the guest's.
 */
function libvirtOwn(domain: XNode, k: string): boolean {
  if (k === 'seclabel') return list(domain.seclabel).every((l) => attr(l, 'type') === 'dynamic' || attr(l, 'type') === 'none');
  if (k === 'resource') {
    const r = child(domain, 'resource');
    return childNames(r).every((c) => c === 'partition') && (text(r?.partition) ?? '/machine') === '/machine';
  }
  return false;
}

function readName(domain: XNode, notCarried: string[]): string {
  const name = text(domain.name)?.trim();
  if (!name) throw new HangarError('invalid-input', 'the domain XML has no <name>');
  if (name.length <= NAME_MAX_LENGTH) return name;
  notCarried.push(`name: shortened to ${NAME_MAX_LENGTH} characters (Hangar's limit)`);
  return name.slice(0, NAME_MAX_LENGTH).trimEnd();
}

function readUuid(domain: XNode, notCarried: string[]): string {
  const raw = text(domain.uuid)?.trim().toLowerCase();
  if (raw !== undefined && UUID_RE.test(raw)) {
    const h = raw.replaceAll('-', '');
    const uuid = `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    if (RFC_UUID_RE.test(uuid)) return uuid;
  }
  const fresh = randomUUID();
  notCarried.push(raw === undefined ? `uuid: none in the XML; the VM gets ${fresh}` : `uuid ${raw}: not an RFC 4122 UUID; the VM gets ${fresh}`);
  return fresh;
}

function readMemory(domain: XNode, raw: Record<string, unknown>, notCarried: string[]): void {
  const bytes = scaledBytes(domain.memory, 'KiB', 'memory');
  if (bytes === undefined) throw new HangarError('invalid-input', 'the domain XML has no <memory>');
  const mib = Math.ceil(bytes / MIB);
  if (bytes % MIB !== 0) notCarried.push(`memory: ${bytes / 1024} KiB is rounded up to ${mib} MiB`);
  raw.memoryMiB = mib;
  const current = scaledBytes(domain.currentMemory, 'KiB', 'currentMemory');
  if (current !== undefined && Math.ceil(current / MIB) < mib) {
    notCarried.push(`currentMemory ${Math.ceil(current / MIB)} MiB (a balloon target below memory): Hangar boots with the full ${mib} MiB`);
  }
  const tuning: Record<string, unknown> = {};
  const maxMem = child(domain, 'maxMemory');
  if (maxMem) {
    tuning.maxMiB = Math.floor((scaledBytes(maxMem, 'KiB', 'maxMemory') ?? 0) / MIB);
    const slots = Number(attr(maxMem, 'slots'));
    if (slots >= 1) tuning.slots = slots;
  }
  const backing = child(domain, 'memoryBacking');
  if (backing) {
    const hp = child(backing, 'hugepages');
    if (hp) {
      const page = child(hp, 'page');
      const size = page ? scaledBytes({ '#text': attr(page, 'size'), '@_unit': attr(page, 'unit') ?? 'KiB' }, 'KiB', 'hugepage size') : 2 * MIB;
      if (size === 2 * MIB) tuning.hugepages = '2M';
      else if (size === 1024 * MIB) tuning.hugepages = '1G';
      else notCarried.push(`huge pages of ${size! / 1024} KiB: Hangar has 2M and 1G pages`);
    }
    if (child(backing, 'nosharepages') !== undefined) tuning.merge = false;
  }
  const cells = list(child(child(domain, 'cpu'), 'numa')?.cell);
  if (cells.length) {
    const memnodes = list(child(domain, 'numatune')?.memnode);
    tuning.numa = cells.map((c, i) => {
      const node: Record<string, unknown> = { cpus: attr(c, 'cpus'), memoryMiB: Math.floor((scaledBytes({ '#text': attr(c, 'memory'), '@_unit': attr(c, 'unit') ?? 'KiB' }, 'KiB', 'NUMA cell memory') ?? 0) / MIB) };
      const mn = memnodes.find((m) => Number(attr(m, 'cellid')) === Number(attr(c, 'id') ?? i));
      if (mn && attr(mn, 'nodeset')) {
        const mode = attr(mn, 'mode') ?? 'strict';
        node.hostNodes = attr(mn, 'nodeset');
        node.policy = mode === 'strict' ? 'bind' : mode === 'restrictive' ? 'bind' : mode;
        if (mode === 'restrictive') notCarried.push(`NUMA cell ${i}: mode restrictive becomes bind`);
      }
      return node;
    });
    const distances = cells.map((c) => list(child(c, 'distances')?.sibling));
    if (distances.some((d) => d.length)) {
      tuning.numaDistances = distances.map((d, i) => cells.map((_, j) => Number(attr(d.find((s) => Number(attr(s, 'id')) === j), 'value') ?? (i === j ? 10 : 20))));
    }
  }
  const numatune = child(domain, 'numatune');
  if (numatune && child(numatune, 'memory')) notCarried.push(`numatune memory ${attr(child(numatune, 'memory'), 'mode') ?? 'strict'} ${attr(child(numatune, 'memory'), 'nodeset') ?? ''}: only per-node placement (memnode) is carried`.replace(' :', ':'));
  if (numatune && !cells.length && child(numatune, 'memnode')) notCarried.push('numatune memnode: no guest NUMA cells to place');
  if (Object.keys(tuning).length) raw.memory = tuning;
}

function readCpu(domain: XNode, raw: Record<string, unknown>, notCarried: string[]): void {
  const vcpuNode = child(domain, 'vcpu');
  const max = Number(text(domain.vcpu) ?? 1);
  const current = Number(attr(vcpuNode, 'current') ?? max);
  const cpu: Record<string, unknown> = { model: 'max', vcpus: current };
  if (max !== current) cpu.maxVcpus = max;
  const c = child(domain, 'cpu');
  const mode = attr(c, 'mode') ?? 'custom';
  if (mode === 'host-passthrough') cpu.model = 'host';
  else if (mode === 'host-model') {
    cpu.model = 'host';
    notCarried.push('CPU mode host-model: becomes host-passthrough (Hangar\'s "host" model)');
  } else if (mode === 'maximum') cpu.model = 'max';
  else {
    const model = text(c?.model);
    // No <cpu> model: libvirt leaves QEMU's default CPU (qemu64); Hangar's default is max.
    if (model) cpu.model = model;
    else if (c !== undefined) notCarried.push('CPU: no model named; Hangar uses max');
  }
  const features: string[] = [];
  for (const f of list(c?.feature)) {
    const policy = attr(f, 'policy') ?? 'require';
    const name = attr(f, 'name');
    if (!name) continue;
    if (policy === 'require' || policy === 'force') features.push(`+${name}`);
    else if (policy === 'disable' || policy === 'forbid') features.push(`-${name}`);
    else notCarried.push(`CPU feature ${name} (policy ${policy}): only required or disabled features are carried`);
  }
  if (features.length) cpu.features = features;
  const topo = child(c, 'topology');
  if (topo) for (const k of ['sockets', 'dies', 'cores', 'threads']) {
    const v = attr(topo, k);
    if (v !== undefined) cpu[k] = Number(v);
  }
  const tune = child(domain, 'cputune');
  if (tune) {
    const pins: (string | null)[] = [];
    for (const p of list(tune.vcpupin)) pins[Number(attr(p, 'vcpu'))] = attr(p, 'cpuset') ?? null;
    const pinning: Record<string, unknown> = {};
    if (pins.length) pinning.vcpus = Array.from(pins, (p) => p ?? null);
    const emulator = attr(child(tune, 'emulatorpin'), 'cpuset');
    if (emulator) pinning.emulator = emulator;
    const io = list(tune.iothreadpin).map((p) => attr(p, 'cpuset'));
    if (io.length && io.every((s) => s === io[0])) pinning.iothreads = io[0];
    if (Object.keys(pinning).length) cpu.pinning = pinning;
    for (const k of childNames(tune)) {
      if (!['vcpupin', 'emulatorpin', 'iothreadpin'].includes(k)) notCarried.push(`CPU tuning ${k}: not supported`);
    }
  }
  // Passing the host CPU through needs KVM: a TCG domain with it could not start under libvirt either.
  if (cpu.model === 'host' && attr(domain, 'type') === 'qemu') {
    cpu.model = 'max';
    notCarried.push('CPU host-passthrough in a TCG (type qemu) domain: becomes max, since only KVM can pass the host CPU through');
  }
  raw.cpu = cpu;
}

function readOs(domain: XNode, raw: Record<string, unknown>, notCarried: string[]): BootMark['kind'][] | undefined {
  const os = child(domain, 'os');
  const type = child(os, 'type');
  const arch = attr(type, 'arch') ?? 'x86_64';
  if (arch !== 'x86_64') notCarried.push(`architecture ${arch}: Hangar runs x86_64 guests`);
  const machine = attr(type, 'machine') ?? 'pc';
  raw.machine = /q35/.test(machine) ? 'q35' : /microvm/.test(machine) ? 'microvm' : 'pc';
  if (!/^(pc|q35|microvm)$|^pc-(q35|i440fx)-|^pc$/.test(machine)) notCarried.push(`machine type ${machine}: becomes ${raw.machine as string}`);
  if (text(type) && text(type) !== 'hvm') notCarried.push(`OS type ${text(type)!}: Hangar runs full (hvm) guests`);

  const loader = child(os, 'loader');
  const features = list(child(os, 'firmware')?.feature);
  const fwFeature = (n: string): boolean => features.some((f) => attr(f, 'name') === n && attr(f, 'enabled') === 'yes');
  const efi = attr(os, 'firmware') === 'efi' || (loader !== undefined && attr(loader, 'type') === 'pflash');
  if (efi) {
    const secure = fwFeature('secure-boot') || attr(loader, 'secure') === 'yes';
    raw.firmware = secure ? 'uefi-secure' : 'uefi';
    if (loader !== undefined && text(loader)) notCarried.push(`UEFI loader ${text(loader)!}: Hangar picks its OVMF build from the firmware descriptors`);
    const nvram = child(os, 'nvram');
    if (nvram !== undefined && text(nvram)) notCarried.push(`UEFI variables ${text(nvram)!}: the VM starts with fresh variables from the firmware's template (boot entries kept there are not carried)`);
  } else if (loader !== undefined) notCarried.push(`firmware loader ${text(loader) ?? '?'} (type ${attr(loader, 'type') ?? 'rom'}): Hangar boots SeaBIOS`);

  const kernel = text(os?.kernel);
  if (kernel) {
    raw.boot = { kernel: { kernel, ...(text(os?.initrd) ? { initrd: text(os?.initrd) } : {}), append: text(os?.cmdline) ?? '' } };
  }
  if (text(os?.dtb)) notCarried.push('device tree (dtb): not supported');
  const order: BootMark['kind'][] = [];
  for (const b of list(os?.boot)) {
    const dev = attr(b, 'dev');
    const kind = dev === 'hd' ? 'disk' : dev === 'cdrom' ? 'cdrom' : dev === 'network' ? 'network' : undefined;
    if (kind === undefined) notCarried.push(`boot device ${dev ?? '?'}: not supported`);
    else if (!order.includes(kind)) order.push(kind);
  }
  if (child(os, 'bootmenu') && attr(child(os, 'bootmenu'), 'enable') === 'yes') notCarried.push('boot menu: not supported');
  return list(os?.boot).length ? order : undefined;
}

function readMisc(domain: XNode, raw: Record<string, unknown>, notCarried: string[]): void {
  const features = child(domain, 'features');
  for (const k of childNames(features)) {
    if (SAME_FEATURES.has(k)) continue;
    notCarried.push(`feature ${k}: not supported`);
  }
  const offset = attr(child(domain, 'clock'), 'offset') ?? 'utc';
  if (offset !== 'utc') notCarried.push(`clock offset ${offset}: Hangar guests' clock runs in UTC`);
  const actions: [string, string][] = [['on_poweroff', 'destroy'], ['on_reboot', 'restart'], ['on_crash', 'destroy']];
  for (const [el, usual] of actions) {
    const v = text(domain[el]);
    if (v !== undefined && v !== usual) notCarried.push(`${el} ${v}: Hangar does ${usual === 'destroy' ? 'stop the VM' : 'restart the guest'} (libvirt's ${usual})`);
  }
  for (const k of childNames(domain)) {
    if (KNOWN_TOP.has(k) || libvirtOwn(domain, k)) continue;
    notCarried.push(`<${k}>: not supported`);
  }
  if (attr(domain, 'type') === 'qemu') raw.accel = 'tcg';
  else if (attr(domain, 'type') === 'kvm') raw.accel = 'kvm';
  else notCarried.push(`domain type ${attr(domain, 'type') ?? '?'}: Hangar runs QEMU (kvm or tcg)`);
}

/** The boot order: <os><boot dev>, else the devices' <boot order>, else libvirt's default (the disk). */
function bootOrder(osOrder: BootMark['kind'][] | undefined, marks: BootMark[]): BootMark['kind'][] {
  if (osOrder !== undefined) return osOrder;
  if (!marks.length) return ['disk'];
  const out: BootMark['kind'][] = [];
  for (const m of [...marks].sort((a, b) => a.order - b.order)) if (!out.includes(m.kind)) out.push(m.kind);
  return out;
}

export function readDomainXml(xml: string): DomainImport {
  const domain = parseDomain(xml);
  const notCarried: string[] = [];
  const raw: Record<string, unknown> = { version: MODEL_VERSION };
  raw.name = readName(domain, notCarried);
  raw.id = readUuid(domain, notCarried);
  const description = text(domain.description) ?? '';
  const title = text(domain.title) ?? '';
  // Hangar has one description: a title goes first, on its own line.
  raw.description = [title, description].filter(Boolean).join('\n\n').slice(0, 4096);
  readMisc(domain, raw, notCarried);
  const osOrder = readOs(domain, raw, notCarried);
  readCpu(domain, raw, notCarried);
  readMemory(domain, raw, notCarried);

  const devices = child(domain, 'devices') ?? {};
  const taken = new Set<string>();
  const storage = readStorage(devices, taken);
  const net = readNics(devices, taken);
  const rest = readDevices(devices, taken);
  Object.assign(raw, { disks: storage.disks, cdroms: storage.cdroms, nics: net.nics }, rest.fields);
  notCarried.push(...storage.notCarried, ...net.notCarried, ...rest.notCarried);
  const boot = (raw.boot ?? {}) as Record<string, unknown>;
  raw.boot = { ...boot, order: bootOrder(osOrder, [...storage.boot, ...net.boot]) };
  if (attr(domain, 'autostart') !== undefined) raw.autostart = attr(domain, 'autostart') === 'yes';
  try {
    return { definition: parseDefinition(raw), notCarried };
  } catch (e) {
    if (isHangarError(e)) throw new HangarError('invalid-input', `domain "${raw.name as string}" cannot become a Hangar VM: ${e.message}`, e.hint);
    throw e;
  }
}
