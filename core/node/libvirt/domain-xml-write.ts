// Hangar VM definition -> libvirt domain XML (virt-install's role: create on libvirt, export).
// The domain is built as one structured object and serialized by one XMLBuilder, which escapes
// every text and attribute value; Hangar-only parts go into notCarried with the reason.
import { XMLBuilder } from 'fast-xml-parser';
import { topologyGiven, topologyOf } from '../../common/cpu-memory.ts';
import { HangarError } from '../../common/errors.ts';
import type { VmDefinition } from '../../common/model.ts';
import type { XNode } from './domain-xml-common.ts';
import { chardevsXml, controllersXml, displayXml, hostDevicesXml, inputsXml, iothreadCount, nicsXml, sharesXml, smallDevicesXml, storageXml } from './domain-xml-write-devices.ts';
import type { WriteContext } from './domain-xml-write-devices.ts';

export interface DomainXmlOptions {
  /** kvm or qemu (TCG); default: qemu for accel tcg, else kvm. */
  domainType?: 'kvm' | 'qemu';
  /** The QEMU binary (<emulator>); default: libvirt's own choice. */
  emulator?: string;
  /** Where extra serial ports log or listen; default libvirt's qemu state folder. */
  chardevDir?: string;
  /** A file the console's output is also logged to (virtlogd writes it), like Hangar's own serial log. */
  serialLog?: string;
  /** The libvirt at hand takes <backend type='passt'/> (Debian 12's 9.0 refuses it): else passt NICs become slirp. */
  passt?: boolean;
}

export interface DomainXml {
  xml: string;
  /** One plain sentence per part of the definition libvirt's XML cannot carry. */
  notCarried: string[];
}

const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  textNodeName: '#text',
  format: true,
  indentBy: '  ',
  suppressEmptyNode: true,
  processEntities: true,
});

// XML 1.0 cannot carry these characters at all, escaped or not.
// eslint-disable-next-line no-control-regex
const XML_INVALID = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/;

const KIB_PER_MIB = 1024;

function memoryXml(def: VmDefinition, ctx: WriteContext, domain: XNode): void {
  const kib = String(def.memoryMiB * KIB_PER_MIB);
  domain.memory = { '@_unit': 'KiB', '#text': kib };
  domain.currentMemory = { '@_unit': 'KiB', '#text': kib };
  const m = def.memory;
  if (m?.maxMiB !== undefined) {
    // libvirt's memory hotplug needs guest NUMA nodes; virtio-mem is a <memory> device sized by the user.
    if (m.hotplug === 'virtio-mem') ctx.notCarried.push('memory hotplug by virtio-mem: not written (libvirt adds virtio-mem as a <memory> device of a chosen size)');
    else if (!m.numa?.length) ctx.notCarried.push(`memory hotplug up to ${m.maxMiB} MiB: libvirt needs guest NUMA nodes for it; not written`);
    else domain.maxMemory = { '@_slots': String(m.slots ?? 16), '@_unit': 'KiB', '#text': String(m.maxMiB * KIB_PER_MIB) };
  }
  const needsShared = def.disks.some((d) => d.bus === 'vhost-user-blk') || def.nics.some((n) => n.network.type === 'vhost-user') || def.shares.some((s) => s.driver === 'virtiofs');
  const backing: XNode = {};
  if (m?.hugepages) backing.hugepages = { page: { '@_size': m.hugepages === '1G' ? '1048576' : '2048', '@_unit': 'KiB' } };
  if (m && !m.merge) backing.nosharepages = '';
  // vhost-user back ends and virtiofsd map guest memory: memfd, shared (as Hangar's own argv does).
  if (needsShared) Object.assign(backing, { source: { '@_type': 'memfd' }, access: { '@_mode': 'shared' } });
  if (Object.keys(backing).length) domain.memoryBacking = backing;
}

function cpuXml(def: VmDefinition, domain: XNode): void {
  const c = def.cpu;
  const max = c.maxVcpus ?? c.vcpus;
  domain.vcpu = { '@_placement': 'static', ...(max !== c.vcpus ? { '@_current': String(c.vcpus) } : {}), '#text': String(max) };
  const cpu: XNode = c.model === 'host' ? { '@_mode': 'host-passthrough', '@_check': 'none', '@_migratable': 'on' }
    : c.model === 'max' ? { '@_mode': 'maximum', '@_check': 'none', '@_migratable': 'on' }
      : { '@_mode': 'custom', '@_match': 'exact', '@_check': 'none', model: { '@_fallback': 'forbid', '#text': c.model } };
  if (topologyGiven(c)) {
    // libvirt wants every level: QEMU's fill-in rule gives the ones the definition leaves out.
    const t = topologyOf(c);
    cpu.topology = { '@_sockets': String(t.sockets), '@_dies': String(t.dies), '@_cores': String(t.cores), '@_threads': String(t.threads) };
  }
  if (c.features?.length) cpu.feature = c.features.map((f) => ({ '@_policy': f.startsWith('+') ? 'require' : 'disable', '@_name': f.slice(1) }));
  const numa = def.memory?.numa;
  const dist = def.memory?.numaDistances;
  if (numa?.length) {
    cpu.numa = {
      cell: numa.map((n, i) => ({
        '@_id': String(i), '@_cpus': n.cpus, '@_memory': String(n.memoryMiB * KIB_PER_MIB), '@_unit': 'KiB',
        ...(dist?.[i] ? { distances: { sibling: dist[i]!.map((v, j) => ({ '@_id': String(j), '@_value': String(v) })) } } : {}),
      })),
    };
    // Guest nodes placed on host nodes: libvirt's numatune memnode (bind is its "strict").
    const memnode = numa.map((n, i) => (n.hostNodes ? { '@_cellid': String(i), '@_mode': n.policy === 'bind' || n.policy === undefined ? 'strict' : n.policy, '@_nodeset': n.hostNodes } : undefined))
      .filter((x) => x !== undefined);
    if (memnode.length) domain.numatune = { memnode };
  }
  domain.cpu = cpu;
  const p = c.pinning;
  if (p) {
    const tune: XNode = {};
    const pins = (p.vcpus ?? []).map((set, i) => (set ? { '@_vcpu': String(i), '@_cpuset': set } : undefined)).filter((x) => x !== undefined);
    if (pins.length) tune.vcpupin = pins;
    if (p.emulator) tune.emulatorpin = { '@_cpuset': p.emulator };
    const n = iothreadCount(def);
    if (p.iothreads && n) tune.iothreadpin = Array.from({ length: n }, (_, i) => ({ '@_iothread': String(i + 1), '@_cpuset': p.iothreads }));
    if (Object.keys(tune).length) domain.cputune = tune;
  }
}

function osXml(def: VmDefinition, domain: XNode): void {
  const os: XNode = {};
  if (def.firmware !== 'bios') os['@_firmware'] = 'efi';
  os.type = { '@_arch': 'x86_64', '@_machine': def.machine, '#text': 'hvm' };
  if (def.firmware === 'uefi-secure') os.firmware = { feature: [{ '@_enabled': 'yes', '@_name': 'enrolled-keys' }, { '@_enabled': 'yes', '@_name': 'secure-boot' }] };
  const k = def.boot.kernel;
  if (k) {
    os.kernel = k.kernel;
    if (k.initrd) os.initrd = k.initrd;
    if (k.append) os.cmdline = k.append;
  }
  const dev = { disk: 'hd', cdrom: 'cdrom', network: 'network' } as const;
  os.boot = def.boot.order.map((b) => ({ '@_dev': dev[b] }));
  domain.os = os;
  const features: XNode = { acpi: '', apic: '' };
  // Secure Boot firmware needs SMM (Hangar turns it on for every Secure Boot q35 start).
  if (def.firmware === 'uefi-secure') features.smm = { '@_state': 'on' };
  domain.features = features;
}

function hangarOnly(def: VmDefinition, ctx: WriteContext): void {
  if (def.cloudInit) ctx.notCarried.push('cloud-init settings: Hangar builds the NoCloud seed itself; libvirt has no equivalent');
}

export function writeDomainXml(def: VmDefinition, opts: DomainXmlOptions = {}): DomainXml {
  if (def.machine === 'microvm') {
    // libvirt's PCI address assignment needs a PCI bus, which a microvm lacks: define fails.
    throw new HangarError('unsupported', `VM "${def.name}" is a microvm, which libvirt cannot define (it has no PCI bus)`, 'use machine q35 to run it under libvirt');
  }
  const notCarried: string[] = [];
  const ctx: WriteContext = { def, chardevDir: opts.chardevDir ?? '/var/lib/libvirt/qemu', passt: opts.passt ?? false, ...(opts.serialLog ? { serialLog: opts.serialLog } : {}), notCarried };
  const type = opts.domainType ?? (def.accel === 'tcg' ? 'qemu' : 'kvm');
  const domain: XNode = { '@_type': type, name: def.name, uuid: def.id };
  if (def.description) domain.description = def.description;
  memoryXml(def, ctx, domain);
  cpuXml(def, domain);
  const iothreads = iothreadCount(def);
  if (iothreads) domain.iothreads = String(iothreads);
  osXml(def, domain);
  domain.clock = { '@_offset': 'utc' };
  Object.assign(domain, { on_poweroff: 'destroy', on_reboot: 'restart', on_crash: 'destroy' });
  const display = displayXml(ctx);
  const chardevs = chardevsXml(ctx);
  const devices: XNode = {
    ...(opts.emulator ? { emulator: opts.emulator } : {}),
    disk: storageXml(ctx),
    controller: controllersXml(ctx),
    filesystem: sharesXml(ctx),
    interface: nicsXml(ctx),
    serial: chardevs.serial,
    console: chardevs.console,
    channel: [...chardevs.channel, ...display.channels],
    input: inputsXml(ctx),
    graphics: display.graphics,
    video: display.video,
    hostdev: hostDevicesXml(ctx),
    ...smallDevicesXml(ctx),
  };
  for (const [k, v] of Object.entries(devices)) if (Array.isArray(v) && v.length === 0) delete devices[k];
  domain.devices = devices;
  hangarOnly(def, ctx);
  let xml = builder.build({ domain }) as string;
  if (XML_INVALID.test(xml)) {
    notCarried.push('characters XML cannot hold (control characters) were replaced by U+FFFD');
    xml = xml.replace(new RegExp(XML_INVALID.source, 'g'), '\ufffd');
  }
  return { xml, notCarried };
}
