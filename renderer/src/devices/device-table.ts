// What each section of the Devices tab shows: its columns and, per device, the cells as text.
// Pure TS (the table component only renders it), built from the definition and device-rows.
import type { DeviceKindName } from '../../../core/common/api.ts';
import { deviceRows, usbHostLabel } from '../../../core/common/device-rows.ts';
import type { DeviceRow } from '../../../core/common/device-rows.ts';
import type { NetworkDefinition, UsbHostDefinition, VmDefinition } from '../../../core/common/model.ts';
import { portForwardsOf } from '../../../core/common/model.ts';
import { devicesOf, isHostKind, kindText, singletonIds } from './device-kinds.ts';
import type { SingletonKind } from './device-kinds.ts';

export interface DeviceTableRow {
  kind: DeviceKindName;
  id: string;
  device: Record<string, unknown>;
  /** How the row's buttons name the device ("Edit disk disk0"). */
  noun: string;
  cells: Record<string, string>;
}

export interface DeviceColumn { key: string; label: string; testid?: string }

export function networkText(n: NetworkDefinition): string {
  switch (n.type) {
    case 'user': return 'user-mode (NAT)';
    case 'passt': return 'passt';
    case 'bridge': return `bridge ${n.bridge}${n.vhost ? ' (vhost-net)' : ''}`;
    case 'tap': return `tap ${n.ifname}${n.vhost ? ' (vhost-net)' : ''}`;
    case 'isolated': return `isolated network ${n.network}`;
    case 'vhost-user': return `vhost-user ${n.socket}${n.server ? ' (QEMU listens)' : ''}`;
  }
  return (n as { type: string }).type;
}

export function portForwardLines(n: NetworkDefinition): string[] {
  return portForwardsOf(n).map((f) => `${f.protocol} ${f.hostAddress || '*'}:${f.hostPort} → guest ${f.guestPort}`);
}

/** What a host device row names on the host: a PCI address, an mdev UUID, vendor:product or bus-port. */
export function hostDeviceName(kind: DeviceKindName, d: Record<string, unknown>): string {
  if (kind === 'hostpci') return String(d.address ?? '');
  if (kind === 'mdev') return String(d.uuid ?? '');
  if (kind === 'usbhost') return usbHostLabel(d as UsbHostDefinition);
  return '';
}

/** Type, mode and detail of a device: device-rows' row (the same as `hangar device list`). */
function rowOf(rows: readonly DeviceRow[], kind: DeviceKindName, id: string, device: Record<string, unknown>): DeviceRow {
  return rows.find((x) => x.kind === kind && x.id === id) ?? { kind, id, type: String(device.model ?? kind), mode: '—', detail: '' };
}

export const diskColumns: DeviceColumn[] = [
  { key: 'id', label: 'ID' }, { key: 'file', label: 'File' }, { key: 'format', label: 'Format' }, { key: 'bus', label: 'Bus' },
  { key: 'mode', label: 'Mode' }, { key: 'cache', label: 'Cache', testid: 'disk-cache-cell' }, { key: 'readOnly', label: 'Read-only' },
];
export const cdromColumns: DeviceColumn[] = [{ key: 'id', label: 'ID' }, { key: 'file', label: 'Image' }, { key: 'bus', label: 'Bus' }, { key: 'mode', label: 'Mode' }];
export const nicColumns: DeviceColumn[] = [
  { key: 'id', label: 'ID' }, { key: 'model', label: 'Model' }, { key: 'mode', label: 'Mode' }, { key: 'mac', label: 'MAC address' },
  { key: 'network', label: 'Network' }, { key: 'forwards', label: 'Port forwards' },
];
export const genericColumns: DeviceColumn[] = [{ key: 'id', label: 'ID' }, { key: 'type', label: 'Type' }, { key: 'mode', label: 'Mode' }, { key: 'detail', label: 'Detail' }];
/** Host devices: what they are on the host comes first (the tab adds the host's name for it). */
export const hostColumns: DeviceColumn[] = [{ key: 'id', label: 'ID' }, { key: 'hostDevice', label: 'Host device' }, { key: 'type', label: 'Type' }, { key: 'mode', label: 'Mode' }, { key: 'detail', label: 'Detail' }];
export const singletonColumns: DeviceColumn[] = [{ key: 'kind', label: 'Kind' }, ...genericColumns.slice(1)];

const nouns: Partial<Record<DeviceKindName, string>> = { disk: 'disk', cdrom: 'CD-ROM drive', nic: 'network interface' };

/** The rows of one section; `kinds` holds one list kind, or the singleton kinds of "Other devices". */
export function tableRows(def: VmDefinition, kinds: readonly DeviceKindName[]): DeviceTableRow[] {
  const rows = deviceRows(def);
  return kinds.flatMap((kind) => devicesOf(def, kind).map(({ id, device }) => {
    const r = rowOf(rows, kind, id, device);
    const d = device;
    const cells: Record<string, string> = { id, kind: kindText[kind].title, type: r.type, mode: r.mode, detail: r.detail };
    if (kind === 'disk') Object.assign(cells, { file: String(d.file), format: String(d.format), bus: String(d.bus), cache: String(d.cache), readOnly: d.readOnly ? 'yes' : 'no' });
    if (kind === 'cdrom') Object.assign(cells, { file: typeof d.file === 'string' ? d.file : '', bus: String(d.bus) });
    if (kind === 'nic') {
      const net = d.network as NetworkDefinition;
      Object.assign(cells, { model: String(d.model), mac: String(d.mac), network: networkText(net), forwards: portForwardLines(net).join('\n') });
    }
    if (isHostKind(kind)) cells.hostDevice = hostDeviceName(kind, d);
    return { kind, id, device, noun: nouns[kind] ?? kindText[kind].noun, cells };
  }));
}

export const singletonKinds = Object.keys(singletonIds) as SingletonKind[];
