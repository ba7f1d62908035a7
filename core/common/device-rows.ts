// Every device of a VM as one row (kind, id, type, I/O virtualization mode, detail): what
// `hangar device list` prints and the Devices tab shows. Pure TS.
import { deviceChoices, ioModeInfo } from './device-advice.ts';
import type { DeviceKind } from './device-advice.ts';
import type { VmDefinition } from './model.ts';

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

export function deviceRows(d: VmDefinition): DeviceRow[] {
  const rows: DeviceRow[] = [];
  for (const k of d.disks) rows.push({ kind: 'disk', id: k.id, type: k.bus, mode: modeOf('disk', k.bus), detail: `${k.file} (${k.format}, cache ${k.cache}${k.aio ? `, aio ${k.aio}` : ''}${k.discard ? ', discard' : ''}${k.iothread ? ', iothread' : ''}${k.readOnly ? ', read-only' : ''})` });
  for (const c of d.cdroms) rows.push({ kind: 'cdrom', id: c.id, type: c.bus, mode: modeOf('disk', c.bus), detail: c.file ?? '(empty)' });
  for (const n of d.nics) {
    const back = n.network.type === 'passt' ? 'passt' : n.model;
    const where = n.network.type === 'user' ? 'user-mode NAT' : n.network.type === 'bridge' ? `bridge ${n.network.bridge}` : n.network.type === 'isolated' ? `isolated network ${n.network.network}` : 'passt';
    rows.push({ kind: 'nic', id: n.id, type: n.model, mode: modeOf('nic', back), detail: `${n.mac}, ${where}` });
  }
  if (d.video.model !== 'none') rows.push({ kind: 'video', id: 'video0', type: d.video.model, mode: modeOf('video', d.video.model), detail: d.video.vramMiB ? `${d.video.vramMiB} MiB` : '' });
  for (const i of d.inputs) rows.push({ kind: 'input', id: i.id, type: `${i.type} (${i.bus})`, mode: modeOf('input', i.bus), detail: '' });
  if (d.sound) rows.push({ kind: 'sound', id: 'sound0', type: d.sound.model, mode: modeOf('sound', d.sound.model), detail: '' });
  if (d.watchdog) rows.push({ kind: 'watchdog', id: 'watchdog0', type: d.watchdog.model, mode: modeOf('watchdog', d.watchdog.model), detail: `on expiry: ${d.watchdog.action}` });
  if (d.rng) rows.push({ kind: 'rng', id: 'rng0', type: 'virtio-rng', mode: modeOf('rng', 'virtio-rng'), detail: `/dev/${d.rng.source}` });
  if (d.balloon) rows.push({ kind: 'balloon', id: 'balloon0', type: 'virtio-balloon', mode: modeOf('balloon', 'virtio-balloon'), detail: d.balloon.freePageReporting ? 'free page reporting' : '' });
  const usb = d.usb?.model ?? (d.inputs.some((i) => i.bus === 'usb') ? 'qemu-xhci' : undefined);
  if (usb) rows.push({ kind: 'usb', id: 'usb0', type: usb, mode: modeOf('usb', usb), detail: d.usb ? '' : 'added for the USB devices' });
  for (const s of d.shares) rows.push({ kind: 'share', id: s.id, type: 'virtio-9p', mode: modeOf('share', 'virtio-9p'), detail: `${s.source} as "${s.tag}"${s.readOnly ? ', read-only' : ''}` });
  if (d.tpm) rows.push({ kind: 'tpm', id: 'tpm0', type: d.tpm.model, mode: 'Emulated', detail: 'swtpm' });
  if (d.serial.enabled) rows.push({ kind: 'serial', id: 'serial0', type: 'isa-serial', mode: 'Emulated', detail: 'the console' });
  return rows;
}
