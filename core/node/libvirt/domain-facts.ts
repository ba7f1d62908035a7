// The few facts the runtime driver needs from a domain's XML (which flags undefine needs, which
// files a delete may remove). The full XML -> VmDefinition mapping is domain-xml-read.ts.
import { XMLParser } from 'fast-xml-parser';

export interface DomainDiskSource {
  /** disk, cdrom, floppy, lun */
  device: string;
  /** file, block, volume, network, dir ... */
  type: string;
  target?: string;
  /** type=file */
  file?: string;
  /** type=block */
  dev?: string;
  /** type=volume */
  pool?: string;
  volume?: string;
  readonly: boolean;
  shareable: boolean;
}

export interface DomainFacts {
  name: string;
  uuid: string;
  /** UEFI variables store: undefine needs --nvram (or --keep-nvram). */
  hasNvram: boolean;
  /** An emulated TPM with state on the host (swtpm). */
  hasTpmState: boolean;
  disks: DomainDiskSource[];
}

type Node = Record<string, unknown>;

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  parseAttributeValue: false,
  parseTagValue: false,
  isArray: (name) => name === 'disk' || name === 'tpm',
});

function obj(v: unknown): Node | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? v as Node : undefined;
}

function str(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  const o = obj(v);
  return o && typeof o['#text'] === 'string' ? o['#text'] : undefined;
}

export function readDomainFacts(xml: string): DomainFacts {
  const root = obj(obj(parser.parse(xml))?.domain);
  if (!root) throw new Error('not a libvirt domain XML (no <domain> element)');
  const os = obj(root.os) ?? {};
  const devices = obj(root.devices) ?? {};
  const loader = obj(os.loader);
  const hasNvram = os.nvram !== undefined || os['@_firmware'] === 'efi' || loader?.['@_type'] === 'pflash';
  const tpms = (devices.tpm as unknown[] | undefined) ?? [];
  const hasTpmState = tpms.some((t) => obj(obj(t)?.backend)?.['@_type'] === 'emulator');
  const disks: DomainDiskSource[] = [];
  for (const d of (devices.disk as unknown[] | undefined) ?? []) {
    const disk = obj(d);
    if (!disk) continue;
    const source = obj(disk.source) ?? {};
    const target = obj(disk.target)?.['@_dev'];
    const entry: DomainDiskSource = {
      device: String(disk['@_device'] ?? 'disk'),
      type: String(disk['@_type'] ?? 'file'),
      readonly: disk.readonly !== undefined,
      shareable: disk.shareable !== undefined,
    };
    if (typeof target === 'string') entry.target = target;
    if (typeof source['@_file'] === 'string') entry.file = source['@_file'];
    if (typeof source['@_dev'] === 'string') entry.dev = source['@_dev'];
    if (typeof source['@_pool'] === 'string') entry.pool = source['@_pool'];
    if (typeof source['@_volume'] === 'string') entry.volume = source['@_volume'];
    disks.push(entry);
  }
  return { name: str(root.name) ?? '', uuid: str(root.uuid) ?? '', hasNvram, hasTpmState, disks };
}
