// What a VM's screen can do, derived from its definition alone (the renderer, the CLI and the
// core ask the same question). The VNC server runs only for a VM with a video device and display
// vnc; the shared clipboard needs the qemu-vdagent channel on top.
import type { VmDefinition } from './model.ts';

export interface DisplayCapabilities {
  /** The VM runs a VNC server the core can carry to viewers. */
  vnc: boolean;
  /** Why there is no screen (when vnc is false), and the fix. */
  reason?: string;
  fix?: string;
  /** Host <-> guest clipboard through qemu-vdagent. */
  clipboard: boolean;
  /** Why there is no shared clipboard (when clipboard is false). */
  clipboardReason?: string;
  /** The guest's resolution follows the viewer's window (virtio-gpu reports it to the guest driver). */
  resize: boolean;
}

type DisplayDef = Pick<VmDefinition, 'video' | 'machine'>;

export function displayCapabilities(def: DisplayDef): DisplayCapabilities {
  const { video } = def;
  if (video.model === 'none') {
    return {
      vnc: false, clipboard: false, resize: false,
      reason: 'this VM has no video device: it is headless and uses the serial console',
      fix: 'add a display (a video device and a USB tablet), then restart the VM',
    };
  }
  if (video.display === 'none') {
    return {
      vnc: false, clipboard: false, resize: false,
      reason: 'this VM has a video device but its display is set to none',
      fix: 'set the display to VNC in Devices > Video (or `hangar device edit NAME video video0 display=vnc`), then restart the VM',
    };
  }
  const caps: DisplayCapabilities = { vnc: true, clipboard: video.clipboard, resize: video.model === 'virtio-gpu' };
  if (!video.clipboard) {
    caps.clipboardReason = 'clipboard sharing is off for this VM: turn it on in Devices > Video (clipboard), restart the VM, and run spice-vdagent in the guest';
  }
  return caps;
}

/**
 * Why the shared clipboard keeps QEMU from writing the RAM and device state (managed save,
 * snapshots with memory), or null: QEMU registers a migration blocker for its qemu-vdagent
 * channel before 10.1 ("The vdagent chardev doesn't yet support migration").
 */
export function clipboardBlocksRamState(def: Pick<VmDefinition, 'video' | 'machine' | 'name'>, qemu?: { major: number; minor: number }): string | null {
  if (!displayCapabilities(def).clipboard) return null;
  if (qemu && (qemu.major > 10 || (qemu.major === 10 && qemu.minor >= 1))) return null;
  return `its shared clipboard (QEMU's qemu-vdagent channel) cannot be saved by QEMU ${qemu ? `${qemu.major}.${qemu.minor}` : 'before 10.1'}: `
    + `turn the clipboard off in Devices > Video (or \`hangar device edit ${def.name} video video0 clipboard=off\`) and restart the VM, or take a disk-only snapshot`;
}

/** QEMU key names (qcodes) for the Send keys menu; `hangar send-key` takes any qcode. */
export const SEND_KEY_COMBOS: ReadonlyArray<{ label: string; keys: string[] }> = [
  { label: 'Ctrl+Alt+Del', keys: ['ctrl', 'alt', 'delete'] },
  { label: 'Ctrl+Alt+Backspace', keys: ['ctrl', 'alt', 'backspace'] },
  ...Array.from({ length: 12 }, (_, i) => ({ label: `Ctrl+Alt+F${i + 1}`, keys: ['ctrl', 'alt', `f${i + 1}`] })),
  { label: 'PrintScreen', keys: ['print'] },
  { label: 'SysRq', keys: ['alt', 'sysrq'] },
];

/** Parses `ctrl-alt-delete` (or `ctrl+alt+delete`) into qcodes; null when a part is not a plausible key name. */
export function parseKeyCombo(text: string): string[] | null {
  const parts = text.trim().toLowerCase().split(/[-+]/).filter(Boolean);
  if (!parts.length || parts.length > 8) return null;
  return parts.every((p) => /^[a-z0-9_]{1,20}$/.test(p)) ? parts : null;
}

/**
 * A new VM's display when its request names none: kernel-boot VMs stay headless (serial first);
 * VMs that boot firmware (ISO, disk image, network, empty) get the video device the OS drives,
 * the VNC display, the shared clipboard and a USB tablet (an absolute pointer that follows the
 * viewer's mouse). Every entry point (CLI, wizard, API, definition files) goes through this.
 */
export function withDisplayDefaults(raw: Record<string, unknown>, video: 'virtio-gpu' | 'vga'): Record<string, unknown> {
  if (raw.video !== undefined) return raw;
  const boot = raw.boot as { kernel?: unknown } | undefined;
  if (boot?.kernel || raw.machine === 'microvm') return raw; // microvm: no PCI bus for a video adapter
  const inputs = Array.isArray(raw.inputs) ? [...(raw.inputs as Array<Record<string, unknown>>)] : [];
  if (!inputs.some((i) => i.type === 'tablet')) {
    let n = 0;
    while (inputs.some((i) => i.id === `input${n}`)) n++;
    inputs.push({ id: `input${n}`, type: 'tablet', bus: 'usb' });
  }
  return { ...raw, video: { model: video, display: 'vnc', clipboard: true }, inputs };
}
