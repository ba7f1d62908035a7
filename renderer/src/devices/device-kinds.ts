// The device kinds as the Devices tab shows them: list kinds (many devices, each with an id)
// and singletons (one per VM, fixed id). A new kind (issue 6: host PCI/USB assignment) is one
// entry here, one editor component, one form in device-forms.ts.
import type { DeviceKindName, PendingChange } from '../../../core/common/api.ts';
import { isListKind, listKindFields, singletonIds } from '../../../core/common/device-edit.ts';
import type { VmDefinition } from '../../../core/common/model.ts';

// Which kinds are lists and the singletons' fixed ids: the core's own table.
export { isListKind, listKindFields as listKinds, singletonIds } from '../../../core/common/device-edit.ts';
export type { ListKind, SingletonKind } from '../../../core/common/device-edit.ts';

/** Headings and nouns ("Add disk", "Remove network interface nic0?"). */
export const kindText: Record<DeviceKindName, { title: string; noun: string }> = {
  disk: { title: 'Disks', noun: 'disk' },
  cdrom: { title: 'CD-ROMs', noun: 'CD-ROM drive' },
  nic: { title: 'Network interfaces', noun: 'network interface' },
  input: { title: 'Input devices', noun: 'input device' },
  share: { title: 'Shared folders', noun: 'shared folder' },
  channel: { title: 'Channels (virtio-serial)', noun: 'channel' },
  serial: { title: 'Serial ports', noun: 'serial port' },
  video: { title: 'Video', noun: 'video adapter' },
  sound: { title: 'Sound', noun: 'sound card' },
  rng: { title: 'Random number generator', noun: 'RNG' },
  balloon: { title: 'Memory balloon', noun: 'memory balloon' },
  watchdog: { title: 'Watchdog', noun: 'watchdog' },
  usb: { title: 'USB controller', noun: 'USB controller' },
  vsock: { title: 'vsock', noun: 'vsock device' },
  tpm: { title: 'TPM', noun: 'TPM' },
  hostpci: { title: 'PCI host devices', noun: 'PCI host device' },
  mdev: { title: 'Mediated devices', noun: 'mediated device' },
  usbhost: { title: 'USB host devices', noun: 'USB host device' },
};

/** The host device kinds (issue 6): assigned from the host, their editors pick from hostDevices(). */
export const hostKinds = ['hostpci', 'mdev', 'usbhost'] as const satisfies readonly DeviceKindName[];
export type HostKind = (typeof hostKinds)[number];
export const isHostKind = (k: DeviceKindName): k is HostKind => (hostKinds as readonly string[]).includes(k);

/** The order of the sections on the tab. */
export const sectionOrder: readonly DeviceKindName[] = ['disk', 'cdrom', 'nic', 'input', 'video', 'sound', 'usb', 'share', 'channel', 'serial', 'hostpci', 'mdev', 'usbhost', 'rng', 'balloon', 'watchdog', 'vsock', 'tpm'];

/** The devices of one kind in a definition, each with its id (a singleton that is absent: none). */
export function devicesOf(def: VmDefinition, kind: DeviceKindName): Array<{ id: string; device: Record<string, unknown> }> {
  if (isListKind(kind)) return (def[listKindFields[kind]] as Array<{ id: string } & Record<string, unknown>>).map((d) => ({ id: d.id, device: d }));
  const id = singletonIds[kind];
  const d = def[kind] as Record<string, unknown> | undefined;
  // No video is model "none" in the definition.
  if (!d || (kind === 'video' && d.model === 'none')) return [];
  return [{ id, device: d }];
}

/** A singleton kind can be added only when absent; list kinds always. */
export function canAdd(def: VmDefinition, kind: DeviceKindName): boolean {
  return isListKind(kind) || devicesOf(def, kind).length === 0;
}

export function pendingFor(pending: readonly PendingChange[] | undefined, kind: DeviceKindName, id: string): PendingChange | undefined {
  return pending?.find((p) => p.kind === kind && p.id === id);
}
