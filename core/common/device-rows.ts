// Every device of a VM as one row (kind, id, type, I/O virtualization mode, detail): what
// `hangar device list` prints and the Devices tab shows. Pure TS.
import { deviceChoices, ioModeInfo } from './device-advice.ts';
import type { DeviceKind } from './device-advice.ts';
import type { HostPciDefinition, MdevDefinition, NicDefinition, UsbHostDefinition, VmDefinition } from './model.ts';

export interface DeviceRow {
  kind: string;
  id: string;
  /** The bus, model or back end. */
  type: string;
  mode: string;
  detail: string;
}

function modeOf(kind: DeviceKind, choice: string): string {
  const c = deviceChoices.find((d) => d.kind === kind && d.id === choice);
  return c ? ioModeInfo[c.mode].label : '—';
}

/** The advice table's choice a NIC is: its model, or the back end when that sets the mode. */
function nicChoice(n: NicDefinition): string {
  const net = n.network;
  if (net.type === 'passt') return 'passt';
  if (net.type === 'vhost-user') return 'vhost-user-net';
  if ((net.type === 'bridge' || net.type === 'tap') && net.vhost) return 'vhost-net';
  if (net.type === 'tap' && n.model === 'virtio-net') return 'tap';
  return n.model;
}

function nicWhere(n: NicDefinition): string {
  const net = n.network;
  switch (net.type) {
    case 'user': return 'user-mode NAT';
    case 'passt': return 'passt';
    case 'bridge': return `bridge ${net.bridge}${net.vhost ? ', vhost-net' : ''}`;
    case 'isolated': return `isolated network ${net.network}`;
    case 'tap': return `tap ${net.ifname}${net.vhost ? ', vhost-net' : ''}`;
    case 'vhost-user': return `vhost-user socket ${net.socket}${net.server ? ' (QEMU listens)' : ''}`;
  }
}

function hostPciDetail(p: HostPciDefinition): string {
  return `${p.address}, ${p.managed ? 'managed (bound to vfio-pci at start, given back at stop)' : 'unmanaged (must already be on vfio-pci)'}${p.rom ? '' : ', ROM off'}`;
}

function mdevDetail(m: MdevDefinition): string {
  return [m.uuid, m.parent ? `parent ${m.parent}` : '', m.type ? `type ${m.type}` : ''].filter(Boolean).join(', ');
}

/** A host USB device as a definition picks it: "046d:c52b", "bus 1 port 1.4", or both ("... on ..."). */
export function usbHostLabel(u: UsbHostDefinition): string {
  const byId = u.vendorId !== undefined && u.productId !== undefined ? `${u.vendorId}:${u.productId}` : '';
  const byPort = u.hostbus !== undefined && u.hostport !== undefined ? `bus ${u.hostbus} port ${u.hostport}` : '';
  return [byId, byPort].filter(Boolean).join(' on ');
}

/** Whether the VM has a device on USB (a USB input or a host USB device): it then gets qemu-xhci unless it names a controller. */
function usesUsb(d: VmDefinition): boolean {
  return d.inputs.some((i) => i.bus === 'usb') || d.hostUsb.length > 0;
}

export function deviceRows(d: VmDefinition): DeviceRow[] {
  const rows: DeviceRow[] = [];
  for (const k of d.disks) rows.push({ kind: 'disk', id: k.id, type: k.bus, mode: modeOf('disk', k.bus), detail: `${k.file} (${k.format}, cache ${k.cache}${k.aio ? `, aio ${k.aio}` : ''}${k.discard ? ', discard' : ''}${k.iothread ? ', iothread' : ''}${k.readOnly ? ', read-only' : ''})` });
  for (const c of d.cdroms) rows.push({ kind: 'cdrom', id: c.id, type: c.bus, mode: modeOf('disk', c.bus), detail: c.file ?? '(empty)' });
  for (const n of d.nics) rows.push({ kind: 'nic', id: n.id, type: n.model, mode: modeOf('nic', nicChoice(n)), detail: `${n.mac}, ${nicWhere(n)}` });
  if (d.video.model !== 'none') rows.push({ kind: 'video', id: 'video0', type: d.video.model, mode: modeOf('video', d.video.model), detail: d.video.vramMiB ? `${d.video.vramMiB} MiB` : '' });
  for (const i of d.inputs) rows.push({ kind: 'input', id: i.id, type: `${i.type} (${i.bus})`, mode: modeOf('input', i.bus), detail: '' });
  if (d.sound) rows.push({ kind: 'sound', id: 'sound0', type: d.sound.model, mode: modeOf('sound', d.sound.model), detail: '' });
  if (d.watchdog) rows.push({ kind: 'watchdog', id: 'watchdog0', type: d.watchdog.model, mode: modeOf('watchdog', d.watchdog.model), detail: `on expiry: ${d.watchdog.action}` });
  if (d.rng) rows.push({ kind: 'rng', id: 'rng0', type: 'virtio-rng', mode: modeOf('rng', 'virtio-rng'), detail: `/dev/${d.rng.source}` });
  if (d.balloon) rows.push({ kind: 'balloon', id: 'balloon0', type: 'virtio-balloon', mode: modeOf('balloon', 'virtio-balloon'), detail: d.balloon.freePageReporting ? 'free page reporting' : '' });
  for (const u of d.hostUsb) rows.push({ kind: 'usbhost', id: u.id, type: 'usb-host', mode: modeOf('hostdev', 'usb-host'), detail: usbHostLabel(u) });
  const usb = d.usb?.model ?? (usesUsb(d) ? 'qemu-xhci' : undefined);
  if (usb) rows.push({ kind: 'usb', id: 'usb0', type: usb, mode: modeOf('usb', usb), detail: d.usb ? '' : 'added for the USB devices' });
  for (const s of d.shares) rows.push({ kind: 'share', id: s.id, type: s.driver, mode: modeOf('share', s.driver), detail: `${s.source} as "${s.tag}"${s.readOnly ? ', read-only' : ''}${s.driver === 'virtiofs' ? ', served by virtiofsd' : ''}` });
  for (const c of d.channels) rows.push({ kind: 'channel', id: c.id, type: 'virtio-serial', mode: modeOf('channel', 'virtio-serial'), detail: `port "${c.name}" on a unix socket` });
  if (d.vsock) rows.push({ kind: 'vsock', id: 'vsock0', type: 'vhost-vsock', mode: modeOf('vsock', 'vhost-vsock'), detail: `guest CID ${d.vsock.cid}` });
  for (const p of d.hostPci) rows.push({ kind: 'hostpci', id: p.id, type: 'vfio-pci', mode: modeOf('hostdev', 'vfio-pci'), detail: hostPciDetail(p) });
  for (const m of d.mdevs) rows.push({ kind: 'mdev', id: m.id, type: 'vfio-pci (mdev)', mode: modeOf('hostdev', 'mdev'), detail: mdevDetail(m) });
  if (d.tpm) rows.push({ kind: 'tpm', id: 'tpm0', type: d.tpm.model, mode: 'Emulated', detail: 'swtpm' });
  if (d.serial.enabled) rows.push({ kind: 'serial', id: 'serial0', type: 'isa-serial', mode: 'Emulated', detail: 'the console' });
  d.serialPorts.forEach((p, i) => rows.push({ kind: 'serial', id: p.id, type: 'isa-serial', mode: modeOf('serial', 'isa-serial'), detail: `ttyS${i + 1}, ${p.output === 'log' ? `logs/${p.id}.log` : 'a unix socket'}` }));
  return rows;
}
