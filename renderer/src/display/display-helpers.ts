// Pure helpers of the Display tab (no DOM, no noVNC): screenshot file names, what "Add a display"
// changes, the pointer note, the status line.
import type { DeviceKindName } from '../../../core/common/api.ts';
import { displayCapabilities } from '../../../core/common/display.ts';
import type { VmDefinition } from '../../../core/common/model.ts';
import type { DisplayStatus } from './display-channel.ts';

const pad = (n: number): string => String(n).padStart(2, '0');

/** NAME-YYYYMMDD-HHMMSS.png in local time; characters a file name should not hold become "_". */
export function screenshotFileName(vm: string, at: Date): string {
  const safe = [...vm].map((ch) => (ch.charCodeAt(0) < 32 || '/\\:*?"<>|'.includes(ch) || /\s/.test(ch) ? '_' : ch)).join('')
    .replace(/_+/g, '_').replace(/^\.+/, '_') || 'vm';
  const stamp = `${at.getFullYear()}${pad(at.getMonth() + 1)}${pad(at.getDate())}-${pad(at.getHours())}${pad(at.getMinutes())}${pad(at.getSeconds())}`;
  return `${safe}-${stamp}.png`;
}

/** Base64 (as the API returns PNGs) to bytes. */
export function base64Bytes(b64: string): Uint8Array<ArrayBuffer> {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Linux guests drive virtio-gpu (and the guest can follow the window's size); anything else gets the standard VGA. */
export function videoModelFor(osId: string | undefined): 'virtio-gpu' | 'vga' {
  const id = (osId ?? '').toLowerCase();
  const linux = /linux|debian|ubuntu|fedora|centos|rhel|rocky|alma|opensuse|sles|arch|alpine|gentoo|mint|manjaro|nixos|void|kali|mageia|elementary|popos|silverblue|coreos/.test(id);
  return linux ? 'virtio-gpu' : 'vga';
}

export interface DeviceStep {
  action: 'add' | 'edit';
  kind: DeviceKindName;
  /** For edit: the device id. */
  id?: string;
  device: Record<string, unknown>;
}

/**
 * What "Add a display" does to a VM: a video device shown over VNC (or, when the video device
 * exists with its display off, VNC turned on), and a USB tablet when the VM has no tablet
 * (an absolute pointer follows the viewer's mouse).
 */
export function addDisplaySteps(def: Pick<VmDefinition, 'video' | 'inputs' | 'osId'>): DeviceStep[] {
  const steps: DeviceStep[] = [];
  if (def.video.model === 'none') {
    steps.push({ action: 'add', kind: 'video', device: { model: videoModelFor(def.osId), display: 'vnc' } });
  } else if (def.video.display !== 'vnc') {
    steps.push({ action: 'edit', kind: 'video', id: 'video0', device: { display: 'vnc' } });
  }
  if (!def.inputs.some((i) => i.type === 'tablet')) {
    steps.push({ action: 'add', kind: 'input', device: { type: 'tablet', bus: 'usb' } });
  }
  return steps;
}

/** Whether the VM has a display the tab can show (its definition says VNC). */
export function hasDisplay(def: VmDefinition | undefined): boolean {
  return !!def && displayCapabilities(def).vnc;
}

/** A note about the pointer: a tablet follows the mouse exactly; a relative mouse may lag or drift. */
export function pointerNote(def: Pick<VmDefinition, 'inputs'>): string {
  return def.inputs.some((i) => i.type === 'tablet')
    ? 'The pointer follows the mouse (USB tablet).'
    : 'No tablet: the guest\'s pointer may lag behind the mouse — add a USB tablet in Devices.';
}

/** The status line of the screen. */
export function statusText(status: DisplayStatus, detail: string | undefined): string {
  switch (status) {
    case 'connecting': return 'Connecting…';
    case 'live': return 'Connected';
    case 'reconnecting': return `Reconnecting…${detail ? ` (${detail})` : ''}`;
    case 'waiting-for-vm': return detail && detail !== 'the VM stopped' ? `Display unavailable: ${detail}` : 'Disconnected: the VM stopped';
    default: return '';
  }
}
