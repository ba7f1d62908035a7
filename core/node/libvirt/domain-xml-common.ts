// Helpers shared by the libvirt domain XML reader and writer: the one XML parser configuration,
// accessors over fast-xml-parser's output, memory units, and the names both sides use.
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { HangarError } from '../../common/errors.ts';

/** fast-xml-parser's shape: attributes under "@_name", text under "#text", children by tag. */
export type XNode = Record<string, unknown>;

export const ATTR = '@_';
export const TEXT = '#text';

/** Child elements that may repeat: always arrays, so one disk and three disks read alike. */
const REPEATED = new Set([
  'domain.os.boot', 'domain.cpu.feature', 'domain.cputune.vcpupin',
  'domain.os.firmware.feature',
  'domain.devices.interface.portForward', 'domain.devices.interface.portForward.range',
]);

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: ATTR,
  textNodeName: TEXT,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  // Character references (&#233;) as XML means them; fast-xml-parser groups them under htmlEntities.
  htmlEntities: true,
  // Every device kind under <devices> repeats (disk, interface, controller, serial, ...).
  isArray: (_name, jpath) => {
    const p = String(jpath);
    return (p.startsWith('domain.devices.') && p.split('.').length === 3) || REPEATED.has(p);
  },
});

/** Parses domain XML; malformed text or another root element is invalid-input naming the problem. */
export function parseDomain(xml: string): XNode {
  if (typeof xml !== 'string' || xml.trim() === '') throw new HangarError('invalid-input', 'the domain XML is empty');
  const valid = XMLValidator.validate(xml);
  if (valid !== true) {
    const { msg, line, col } = valid.err;
    throw new HangarError('invalid-input', `malformed domain XML at line ${line}, column ${col}: ${msg}`, 'check the XML (virsh dumpxml gives a well-formed one)');
  }
  const doc = parser.parse(xml) as XNode;
  const domain = doc.domain;
  if (domain === undefined || typeof domain !== 'object' || domain === null || Array.isArray(domain)) {
    const roots = Object.keys(doc).filter((k) => !k.startsWith('?'));
    throw new HangarError('invalid-input', `not a libvirt domain: the root element is <${roots[0] ?? 'nothing'}>, not <domain>`);
  }
  return domain as XNode;
}

/** An element's child element names (not its attributes or text). */
export function childNames(node: XNode | undefined): string[] {
  return Object.keys(node ?? {}).filter((k) => !k.startsWith(ATTR) && k !== TEXT);
}

/** Any value as a list (absent = none, one = one). */
export function list(v: unknown): XNode[] {
  if (v === undefined || v === null) return [];
  return (Array.isArray(v) ? v : [v]).map((x) => (typeof x === 'object' && x !== null ? x as XNode : { [TEXT]: x === '' ? '' : String(x) }));
}

/** The first child element of that name (as an object, even when it had only text). */
export function child(node: XNode | undefined, name: string): XNode | undefined {
  return node === undefined ? undefined : list(node[name])[0];
}

export function attr(node: XNode | undefined, name: string): string | undefined {
  const v = node?.[ATTR + name];
  return v === undefined ? undefined : String(v);
}

/** An element's text: a bare string value or its #text. */
export function text(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (Array.isArray(v)) return text(v[0]);
  if (typeof v === 'object') {
    const t = (v as XNode)[TEXT];
    return t === undefined ? '' : String(t);
  }
  return String(v);
}

const UNIT_BYTES: Record<string, number> = {
  b: 1, bytes: 1,
  kb: 1000, k: 1024, kib: 1024,
  mb: 1000 ** 2, m: 1024 ** 2, mib: 1024 ** 2,
  gb: 1000 ** 3, g: 1024 ** 3, gib: 1024 ** 3,
  tb: 1000 ** 4, t: 1024 ** 4, tib: 1024 ** 4,
};

/** A libvirt scaled integer (<memory unit='GiB'>4</memory>) in bytes; the default unit is given. */
export function scaledBytes(node: unknown, defaultUnit: string, what: string): number | undefined {
  const t = text(node);
  if (t === undefined) return undefined;
  const unit = (attr(typeof node === 'object' && node !== null && !Array.isArray(node) ? node as XNode : undefined, 'unit') ?? defaultUnit).toLowerCase();
  const factor = UNIT_BYTES[unit];
  if (!/^\d+$/.test(t.trim()) || factor === undefined) throw new HangarError('invalid-input', `${what}: "${t}" ${unit} is not a size libvirt writes (a whole number and a unit such as KiB, MiB, GiB)`);
  return Number(t.trim()) * factor;
}

/** Names Hangar device ids may take (the model's deviceId rule). */
export const DEVICE_ID_RE = /^[a-z][a-z0-9-]{0,30}$/;

/**
 * libvirt keeps user aliases ("ua-" + name) in the persistent XML, so a Hangar device id written
 * as <alias name='ua-disk0'/> comes back unchanged through define and dumpxml.
 */
export const USER_ALIAS_PREFIX = 'ua-';

export function aliasId(dev: XNode): string | undefined {
  const name = attr(child(dev, 'alias'), 'name');
  if (name === undefined || !name.startsWith(USER_ALIAS_PREFIX)) return undefined;
  const id = name.slice(USER_ALIAS_PREFIX.length);
  return DEVICE_ID_RE.test(id) ? id : undefined;
}

/** libvirt disk bus -> Hangar disk bus (virtio is virtio-blk; vhost-user-blk is libvirt's vhostuser source). */
export const DISK_BUS_FROM_LIBVIRT: Record<string, 'virtio-blk' | 'ide' | 'sata' | 'scsi'> = { virtio: 'virtio-blk', ide: 'ide', sata: 'sata', scsi: 'scsi' };

/** libvirt's NIC model names -> Hangar's. */
export const NIC_MODEL_FROM_LIBVIRT: Record<string, 'virtio-net' | 'e1000' | 'rtl8139'> = { virtio: 'virtio-net', e1000: 'e1000', rtl8139: 'rtl8139' };
export const NIC_MODEL_TO_LIBVIRT: Record<string, string> = { 'virtio-net': 'virtio', e1000: 'e1000', rtl8139: 'rtl8139' };

export const VIDEO_FROM_LIBVIRT: Record<string, 'none' | 'vga' | 'virtio-gpu' | 'qxl' | 'bochs'> = { none: 'none', vga: 'vga', virtio: 'virtio-gpu', qxl: 'qxl', bochs: 'bochs' };
export const VIDEO_TO_LIBVIRT: Record<string, string> = { none: 'none', vga: 'vga', 'virtio-gpu': 'virtio', qxl: 'qxl', bochs: 'bochs' };

/** The guest agent's port: libvirt talks to it on its own; Hangar's guest-agent code looks for this name. */
export const GUEST_AGENT_PORT = 'org.qemu.guest_agent.0';
/** The SPICE/vdagent port: qemu-vdagent (Hangar's clipboard) and spicevmc both serve it. */
export const VDAGENT_PORT = 'com.redhat.spice.0';
