// `hangar device add|edit NAME KIND SPEC`: a device written QEMU-style ("HEAD,key=value,...") into
// the fields of its definition. One table per kind says which keys exist and what they hold; the
// core validates the values (the same schema as everywhere).
import { resolve } from 'node:path';
import type { DeviceKindName } from '../../common/api.ts';
import { deviceKinds } from '../../common/api.ts';
import { HangarError } from '../../common/errors.ts';
import { parseSize } from '../store/qemu-img.ts';
import { parseNic, splitSpec } from './create-args.ts';

/** lower: ids written in hex (USB ids, UUIDs), kept lower case as the definition wants; pci: a PCI address (0000: added when left out). */
type FieldType = 'string' | 'path' | 'bool' | 'int' | 'lower' | 'pci';
interface KindSpec {
  /** The field the bare first word fills (e.g. a disk's file), if any. */
  head?: string;
  /** Fills fields from the bare first word when one word holds more than one field (usbhost 046d:c52b). */
  parseHead?: (text: string) => Record<string, unknown>;
  keys: Record<string, [field: string, type: FieldType]>;
  example: string;
}

/** usbhost's first word: vendor:product (046d:c52b), or a sysfs port name BUS-PORT (1-1.4) as `hangar host usb` lists it. */
function usbHostHead(text: string): Record<string, unknown> {
  const ids = /^([0-9a-fA-F]{4}):([0-9a-fA-F]{4})$/.exec(text);
  if (ids) return { vendorId: ids[1]!.toLowerCase(), productId: ids[2]!.toLowerCase() };
  const port = /^(\d+)-([\d.]+)$/.exec(text);
  if (port) return { hostbus: parseInt(port[1]!, 10), hostport: port[2]! };
  throw new HangarError('invalid-input', `usbhost: "${text}" is neither VENDOR:PRODUCT (e.g. 046d:c52b) nor BUS-PORT (e.g. 1-1.4)`,
    'see hangar host usb for the devices and ports; or give bus=N,port=P');
}

const kinds: Record<Exclude<DeviceKindName, 'nic'>, KindSpec> = {
  disk: {
    head: 'file',
    keys: {
      id: ['id', 'string'], file: ['file', 'path'], format: ['format', 'string'], bus: ['bus', 'string'], cache: ['cache', 'string'],
      aio: ['aio', 'string'], discard: ['discard', 'bool'], readonly: ['readOnly', 'bool'], iothread: ['iothread', 'bool'],
    },
    example: 'disk size=8G,bus=virtio-blk,cache=none  |  disk /path/image.qcow2,bus=scsi',
  },
  cdrom: { head: 'file', keys: { id: ['id', 'string'], file: ['file', 'path'], bus: ['bus', 'string'] }, example: 'cdrom /path/install.iso,bus=sata' },
  input: { head: 'type', keys: { id: ['id', 'string'], type: ['type', 'string'], bus: ['bus', 'string'] }, example: 'input tablet,bus=usb' },
  share: {
    head: 'source',
    keys: { id: ['id', 'string'], source: ['source', 'path'], tag: ['tag', 'string'], readonly: ['readOnly', 'bool'], driver: ['driver', 'string'], security: ['securityModel', 'string'] },
    example: 'share /srv/data,tag=data[,driver=virtiofs][,readonly=on]',
  },
  channel: { head: 'name', keys: { id: ['id', 'string'], name: ['name', 'string'] }, example: 'channel org.qemu.guest_agent.0' },
  serial: { head: 'output', keys: { id: ['id', 'string'], output: ['output', 'string'] }, example: 'serial log  |  serial socket' },
  rng: { head: 'source', keys: { source: ['source', 'string'] }, example: 'rng urandom' },
  balloon: { keys: { 'free-page-reporting': ['freePageReporting', 'bool'], 'deflate-on-oom': ['deflateOnOom', 'bool'] }, example: 'balloon free-page-reporting=on' },
  video: { head: 'model', keys: { model: ['model', 'string'], vram: ['vramMiB', 'int'], display: ['display', 'string'], clipboard: ['clipboard', 'bool'] }, example: 'video virtio-gpu  |  video vga,vram=16,display=vnc,clipboard=on' },
  sound: { head: 'model', keys: { model: ['model', 'string'] }, example: 'sound hda' },
  watchdog: { head: 'action', keys: { model: ['model', 'string'], action: ['action', 'string'] }, example: 'watchdog action=poweroff' },
  usb: { head: 'model', keys: { model: ['model', 'string'] }, example: 'usb qemu-xhci' },
  vsock: { keys: { cid: ['cid', 'int'] }, example: 'vsock cid=3' },
  tpm: { head: 'model', keys: { model: ['model', 'string'] }, example: 'tpm tpm-crb' },
  hostpci: {
    head: 'address',
    keys: { id: ['id', 'string'], address: ['address', 'pci'], managed: ['managed', 'bool'], rom: ['rom', 'bool'] },
    example: 'hostpci 0000:03:10.0[,managed=off][,rom=off]',
  },
  mdev: {
    head: 'uuid',
    keys: { id: ['id', 'string'], uuid: ['uuid', 'lower'], parent: ['parent', 'pci'], type: ['type', 'string'] },
    example: 'mdev 8e2f3a1c-5b6d-4e7f-9a0b-1c2d3e4f5a6b[,parent=0000:00:02.0,type=i915-GVTg_V5_4]',
  },
  usbhost: {
    parseHead: usbHostHead,
    keys: { id: ['id', 'string'], vendor: ['vendorId', 'lower'], product: ['productId', 'lower'], bus: ['hostbus', 'int'], port: ['hostport', 'string'] },
    example: 'usbhost 046d:c52b  |  usbhost bus=1,port=1.4',
  },
};

export function parseDeviceKind(word: string | undefined): DeviceKindName {
  if (!word || !(deviceKinds as readonly string[]).includes(word)) {
    throw new HangarError('invalid-input', `${word ? `"${word}" is not a device kind` : 'which kind of device?'} (kinds: ${deviceKinds.join(', ')})`, 'e.g. hangar device add web disk size=8G');
  }
  return word as DeviceKindName;
}

function value(kind: string, key: string, type: FieldType, text: string): unknown {
  // An empty path clears the field (null): e.g. cdrom file= ejects the medium.
  if (type === 'path') return text === '' ? null : resolve(text);
  if (type === 'bool') {
    if (['on', 'yes', 'true'].includes(text)) return true;
    if (['off', 'no', 'false'].includes(text)) return false;
    throw new HangarError('invalid-input', `${kind} ${key}=${text}: expected on or off`);
  }
  if (type === 'int') {
    if (!/^\d+$/.test(text)) throw new HangarError('invalid-input', `${kind} ${key}=${text}: expected a whole number`);
    return parseInt(text, 10);
  }
  if (type === 'lower') return text.toLowerCase();
  // 03:10.0 is domain 0000's device, as lspci writes it.
  if (type === 'pci') return /^[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$/.test(text) ? `0000:${text.toLowerCase()}` : text.toLowerCase();
  return text;
}

export interface ParsedDevice {
  fields: Record<string, unknown>;
  /** disk size=...: make a new image of this size. */
  newDiskBytes?: number;
}

/** The SPEC of `device add` (a whole device) or `device edit` (only the given fields). */
export async function parseDeviceSpec(kind: DeviceKindName, spec: string, forEdit: boolean): Promise<ParsedDevice> {
  if (kind === 'nic') return { fields: await parseNicSpec(spec, forEdit) };
  const k = kinds[kind];
  const split = splitSpec(spec);
  let { head } = split;
  const { opts } = split;
  // "model=ac97" alone is a key, not a head value (a path with "=" in it is written file=PATH).
  const eq = head.indexOf('=');
  if (/^[a-z-]+=/.test(head)) {
    opts[head.slice(0, eq)] = head.slice(eq + 1);
    head = '';
  }
  const fields: Record<string, unknown> = {};
  const out: ParsedDevice = { fields };
  if (head) {
    if (k.parseHead) Object.assign(fields, k.parseHead(head));
    else if (!k.head) throw new HangarError('invalid-input', `${kind}: "${head}" is not key=value`, `e.g. hangar device add NAME ${k.example}`);
    else fields[k.head] = value(kind, k.head, k.keys[k.head]?.[1] ?? 'string', head);
  }
  for (const [key, text] of Object.entries(opts)) {
    if (kind === 'disk' && key === 'size') {
      if (forEdit) throw new HangarError('invalid-input', 'disk size= only makes a new disk', 'grow a disk with hangar device resize NAME DISK SIZE');
      out.newDiskBytes = parseSize(text);
      continue;
    }
    const entry = k.keys[key];
    if (!entry) throw new HangarError('invalid-input', `${kind}: unknown option "${key}"`, `known: ${[...Object.keys(k.keys), ...(kind === 'disk' ? ['size'] : [])].join(', ')}; e.g. ${k.example}`);
    fields[entry[0]] = value(kind, key, entry[1], text);
  }
  return out;
}

/** A NIC: the back end as --nic writes it (user, passt, bridge,br=.. ...), or, to edit, just model=/mac=. */
async function parseNicSpec(spec: string, forEdit: boolean): Promise<Record<string, unknown>> {
  const split = splitSpec(spec);
  let { head } = split;
  const { opts } = split;
  if (/^(model|mac)=/.test(head)) {
    const eq = head.indexOf('=');
    opts[head.slice(0, eq)] = head.slice(eq + 1);
    head = '';
  }
  if (forEdit && !head) {
    const fields: Record<string, unknown> = {};
    for (const [key, text] of Object.entries(opts)) {
      if (key === 'model') fields.model = text;
      else if (key === 'mac') fields.mac = text.toLowerCase();
      else throw new HangarError('invalid-input', `nic: unknown option "${key}" without a back end`, 'give model= or mac=, or a whole back end: user,hostfwd=tcp::2222-:22 | bridge,br=br0 | ...');
    }
    return fields;
  }
  const nic = await parseNic(spec, 0);
  // parseNic names NICs by position; here the core picks a free id unless one was given.
  if (opts.id === undefined) delete nic.id;
  return nic;
}
