// `hangar device list|resize`: a VM's virtual hardware, each device with its I/O virtualization
// mode (from the one advice table), and growing disks offline or online.
import type { CoreApi } from '../../common/api.ts';
import { deviceChoices, ioModeInfo } from '../../common/device-advice.ts';
import type { DeviceKind } from '../../common/device-advice.ts';
import { HangarError } from '../../common/errors.ts';
import type { VmDefinition } from '../../common/model.ts';
import { formatBytes } from '../store/import-disk.ts';
import { parseSize } from '../store/qemu-img.ts';

export const DEVICE_USAGE = `Usage:
  hangar device list NAME [--json]          every device of the VM with its mode (emulated, paravirtual ...)
  hangar device resize NAME DISK SIZE       grow a disk (e.g. 20G): offline with qemu-img, online with
                                            block_resize while the VM runs; never shrinks
`;

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

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

export async function deviceCommand(sub: string | undefined, positionals: string[], values: Record<string, unknown>,
  withCore: <T>(fn: (api: CoreApi) => Promise<T>) => Promise<T>, print: (s: string) => void): Promise<number> {
  if (!sub || values.help || sub === 'help' || sub === '--help') {
    print(DEVICE_USAGE);
    return sub ? 0 : 2;
  }
  if (sub === 'list') {
    if (positionals.length !== 1) throw new HangarError('invalid-input', 'expected one VM name', 'hangar device list NAME');
    const info = await withCore((api) => api.get(positionals[0]!));
    if (!info.definition) throw new HangarError('invalid-state', `VM "${info.name}" has no readable definition: ${info.reason ?? 'broken'}`, 'fix or delete its definition file');
    const rows = deviceRows(info.definition);
    if (values.json) print(JSON.stringify(rows, null, 2));
    else print(table([['KIND', 'ID', 'TYPE', 'MODE', 'DETAIL'], ...rows.map((r) => [r.kind, r.id, r.type, r.mode, r.detail])]));
    return 0;
  }
  if (sub === 'resize') {
    if (positionals.length !== 3) throw new HangarError('invalid-input', 'expected NAME DISK SIZE', 'e.g. hangar device resize web disk0 20G');
    const [name, disk, size] = positionals as [string, string, string];
    const r = await withCore((api) => api.resizeDisk(name, disk, parseSize(size)));
    if (values.json) print(JSON.stringify(r));
    else print(`Disk ${disk} of "${name}": ${formatBytes(r.oldBytes)} -> ${formatBytes(r.newBytes)}${r.online ? ' (online: the guest sees the new size now; grow its partition and file system inside)' : ''}`);
    return 0;
  }
  throw new HangarError('invalid-input', `unknown subcommand "device ${sub}"`, 'use `hangar device list NAME` or `hangar device resize NAME DISK SIZE`');
}
