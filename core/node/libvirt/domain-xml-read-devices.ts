// libvirt's other <devices> (display, consoles, channels, small virtio devices, controllers,
// inputs, shares) -> Hangar's model. Devices libvirt adds on its own and Hangar's machines have
// built in (PCI/SATA/virtio-serial controllers, the PS/2 keyboard and mouse, q35's iTCO
// watchdog, the audio back end) are part of both sides and need no entry.
import { watchdogActions } from '../../common/model.ts';
import { GUEST_AGENT_PORT, VDAGENT_PORT, VIDEO_FROM_LIBVIRT, aliasId, attr, child, childNames, list, text } from './domain-xml-common.ts';
import type { XNode } from './domain-xml-common.ts';
import { deviceIdOf } from './domain-xml-read-storage.ts';

export interface DevicesResult {
  fields: Record<string, unknown>;
  notCarried: string[];
}

/** Elements under <devices> with no Hangar counterpart, and how to say so. */
const UNSUPPORTED: Record<string, string> = {
  redirdev: 'USB redirection (redirdev) is not supported',
  smartcard: 'smartcards are not supported',
  hub: 'USB hubs are not supported',
  parallel: 'parallel ports are not supported',
  shmem: 'shared memory devices (ivshmem) are not supported',
  memory: 'memory modules (DIMMs, virtio-mem, NVDIMM) in the XML are not carried; Hangar adds its own from the memory hotplug settings',
  iommu: 'a virtual IOMMU is not supported',
  panic: 'panic notifiers are not supported',
  crypto: 'virtio-crypto is not supported',
  lease: 'lock manager leases are not supported',
  nvram: 'the sPAPR NVRAM device is not supported',
};
/** Elements handled elsewhere or that every Hangar VM has in its own way. */
const HANDLED = new Set(['disk', 'interface', 'emulator', 'video', 'graphics', 'serial', 'console', 'channel', 'rng', 'memballoon', 'tpm', 'watchdog',
  'sound', 'controller', 'input', 'filesystem', 'vsock', 'hostdev', 'audio']);

function readDisplay(devices: XNode, fields: Record<string, unknown>, notCarried: string[]): void {
  const videos = list(devices.video);
  const video: Record<string, unknown> = { model: 'none', display: 'none', clipboard: false };
  const first = videos[0];
  if (first) {
    const m = child(first, 'model');
    const type = attr(m, 'type') ?? 'vga';
    const model = type === 'cirrus' ? 'vga' : VIDEO_FROM_LIBVIRT[type];
    if (type === 'cirrus') notCarried.push('video: Cirrus becomes standard VGA (Hangar has vga, virtio, qxl and bochs)');
    if (model === undefined) notCarried.push(`video: model ${type} is not supported; the VM has no video adapter`);
    else video.model = model;
    // libvirt sizes video memory in KiB: vram for VGA/bochs, vgamem for qxl (what qxl-vga's vgamem_mb sets).
    const vramAttr = model === 'qxl' ? 'vgamem' : 'vram';
    const vram = attr(m, vramAttr);
    if (vram !== undefined && (model === 'vga' || model === 'qxl' || model === 'bochs')) {
      const mib = Math.round(Number(vram) / 1024);
      if (mib >= 1 && mib <= 512) video.vramMiB = mib;
    }
    if (videos.length > 1) notCarried.push(`video: ${videos.length - 1} further video adapter(s) are not supported (Hangar has one)`);
  }
  const graphics = list(devices.graphics);
  for (const g of graphics) {
    const type = attr(g, 'type') ?? '?';
    if (type === 'vnc') {
      video.display = 'vnc';
      if (attr(g, 'passwd') !== undefined) notCarried.push('VNC password: Hangar\'s display is reached through the core, without a VNC password');
    } else if (type === 'spice') {
      video.display = 'vnc';
      notCarried.push('SPICE graphics: Hangar shows VNC; a VNC display is added instead');
    } else {
      notCarried.push(`graphics type=${type}: not supported`);
    }
  }
  if (graphics.length > 1) notCarried.push('graphics: several displays become one VNC display');
  // A display with no adapter: libvirt adds a default VGA to such domains, so do the same.
  if (video.display === 'vnc' && video.model === 'none' && !first) video.model = 'vga';
  fields.video = video;
}

function readChardevs(devices: XNode, fields: Record<string, unknown>, taken: Set<string>, notCarried: string[]): void {
  const serials = list(devices.serial);
  const consoles = list(devices.console);
  const portOf = (s: XNode, i: number): number => Number(attr(child(s, 'target'), 'port') ?? i);
  const consoleSerial = serials.find((s, i) => portOf(s, i) === 0);
  // A console on ttyS0 with no <serial> (hand-written XML) is the same UART.
  const consoleOnSerial = consoles.some((c) => (attr(child(c, 'target'), 'type') ?? 'serial') === 'serial');
  fields.serial = { enabled: consoleSerial !== undefined || consoleOnSerial };
  for (const c of consoles) {
    const t = attr(child(c, 'target'), 'type') ?? 'serial';
    if (t !== 'serial') notCarried.push(`console type=${t}: only the serial console is supported`);
  }
  const ports: Record<string, unknown>[] = [];
  serials.forEach((s, i) => {
    const port = portOf(s, i);
    if (port === 0) return;
    const type = attr(s, 'type') ?? 'pty';
    const label = `serial port ${port}`;
    if (type === 'file') ports.push({ id: deviceIdOf(s, `serial${port}`, taken, false), output: 'log' });
    else if (type === 'unix' || type === 'pty') {
      ports.push({ id: deviceIdOf(s, `serial${port}`, taken, false), output: 'socket' });
      if (type === 'pty') notCarried.push(`${label}: a pty becomes a unix socket in the VM's runtime folder`);
    } else notCarried.push(`${label}: type=${type} is not supported (Hangar logs to a file or serves a unix socket)`);
  });
  fields.serialPorts = ports;

  const channels: Record<string, unknown>[] = [];
  let clipboard = false;
  for (const ch of list(devices.channel)) {
    const type = attr(ch, 'type') ?? '?';
    const target = child(ch, 'target');
    const name = attr(target, 'name');
    if (attr(target, 'type') !== 'virtio' || name === undefined) {
      notCarried.push(`channel ${attr(target, 'type') ?? '?'}${name ? ` ${name}` : ''}: only virtio-serial channels are supported`);
      continue;
    }
    if ((type === 'qemu-vdagent' || type === 'spicevmc') && name === VDAGENT_PORT) {
      // Both serve the guest's spice-vdagent on the same port: Hangar's clipboard is the qemu-vdagent one.
      clipboard = true;
      if (type === 'spicevmc') notCarried.push(`channel spicevmc (${name}): becomes Hangar's clipboard sharing through qemu-vdagent on the same port`);
      continue;
    }
    if (type !== 'unix' && type !== 'pty') {
      notCarried.push(`channel ${name}: type=${type} is not supported`);
      continue;
    }
    channels.push({ id: deviceIdOf(ch, name === GUEST_AGENT_PORT ? 'agent' : `chan${channels.length}`, taken, false), name });
  }
  fields.channels = channels;
  if (clipboard && fields.video !== undefined) (fields.video as Record<string, unknown>).clipboard = true;
}

function readSmallDevices(devices: XNode, fields: Record<string, unknown>, notCarried: string[]): void {
  const rngs = list(devices.rng);
  for (const [i, r] of rngs.entries()) {
    const backend = child(r, 'backend');
    const bm = attr(backend, 'model');
    if (attr(r, 'model') !== 'virtio' || (bm !== 'random' && bm !== 'builtin')) {
      notCarried.push(`rng: ${bm === 'egd' ? 'an EGD back end' : `model ${attr(r, 'model') ?? '?'} / back end ${bm ?? '?'}`} is not supported`);
      continue;
    }
    if (i > 0) { notCarried.push('rng: a second virtio-rng is not supported'); continue; }
    // builtin is QEMU's getrandom(), which draws on the same pool as /dev/urandom.
    fields.rng = { source: bm === 'random' && text(backend) === '/dev/random' ? 'random' : 'urandom' };
  }
  const balloon = list(devices.memballoon)[0];
  if (balloon && attr(balloon, 'model') === 'virtio') {
    fields.balloon = { freePageReporting: attr(balloon, 'freePageReporting') === 'on', deflateOnOom: attr(balloon, 'autodeflate') === 'on' };
  } else if (balloon && attr(balloon, 'model') !== 'none') notCarried.push(`balloon model ${attr(balloon, 'model') ?? '?'}: not supported`);

  const tpm = list(devices.tpm)[0];
  if (tpm) {
    const backend = child(tpm, 'backend');
    const model = attr(tpm, 'model') ?? 'tpm-tis';
    if (attr(backend, 'type') !== 'emulator') notCarried.push(`TPM: the ${attr(backend, 'type') ?? '?'} back end is not supported (Hangar emulates a TPM 2.0 with swtpm)`);
    else if (model !== 'tpm-crb' && model !== 'tpm-tis') notCarried.push(`TPM: model ${model} is not supported`);
    else {
      fields.tpm = { model };
      if (attr(backend, 'version') === '1.2') notCarried.push('TPM: version 1.2 becomes a TPM 2.0 (Hangar emulates TPM 2.0)');
      // The TPM's state (keys, sealed secrets) lives in libvirt's swtpm folder, not in the XML.
      notCarried.push('TPM: its state (keys, measurements) stays in libvirt\'s swtpm folder; the VM starts with a new TPM');
    }
  }
  for (const w of list(devices.watchdog)) {
    const model = attr(w, 'model');
    const action = attr(w, 'action') ?? 'reset';
    if (model === 'itco') continue; // q35's built-in TCO watchdog, which Hangar's q35 has too.
    if (model !== 'i6300esb') { notCarried.push(`watchdog ${model ?? '?'}: not supported (Hangar has i6300esb)`); continue; }
    const known = (watchdogActions as readonly string[]).includes(action);
    if (!known) notCarried.push(`watchdog action ${action}: not supported; the guest is reset`);
    fields.watchdog = { model: 'i6300esb', action: known ? action : 'reset' };
  }
  const sounds = list(devices.sound);
  for (const s of sounds) {
    const model = attr(s, 'model') ?? '?';
    if ((model === 'ich6' || model === 'ich9' || model === 'ac97') && fields.sound === undefined) fields.sound = { model: model === 'ac97' ? 'ac97' : 'hda' };
    else notCarried.push(`sound card ${model}: not supported (Hangar has one HDA or AC97 card)`);
  }
  const vsock = list(devices.vsock)[0];
  if (vsock) {
    const cid = child(vsock, 'cid');
    const address = Number(attr(cid, 'address'));
    if (attr(cid, 'auto') === 'yes' || !(address >= 3)) notCarried.push('vsock: an automatic CID is not supported; set one in Hangar (3 or more)');
    else fields.vsock = { cid: address };
  }
}

function readControllersInputs(devices: XNode, fields: Record<string, unknown>, taken: Set<string>, notCarried: string[]): void {
  for (const c of list(devices.controller)) {
    const type = attr(c, 'type');
    const model = attr(c, 'model');
    if (type === 'usb') {
      if (model === 'none') continue;
      if (model === 'qemu-xhci' || model === 'nec-xhci') fields.usb = { model: 'qemu-xhci' };
      else if (model?.startsWith('ich9-')) fields.usb = { model: 'ich9-ehci' };
      else if (model === undefined || model === 'piix3-uhci' || model === 'piix4-uhci') {
        // libvirt's default on pc: USB 1.1 UHCI; ich9-ehci keeps UHCI companions for such guests.
        fields.usb = { model: 'ich9-ehci' };
        notCarried.push(`USB controller ${model ?? 'piix3-uhci (libvirt\'s default)'}: becomes ich9-ehci with UHCI companions`);
      } else {
        fields.usb = { model: 'qemu-xhci' };
        notCarried.push(`USB controller ${model}: becomes qemu-xhci`);
      }
    } else if (type === 'scsi' && model !== undefined && model !== 'virtio-scsi') {
      notCarried.push(`SCSI controller ${model}: Hangar's SCSI disks sit on virtio-scsi`);
    } else if (type === 'ccid' || type === 'fdc' || type === 'xenbus') {
      notCarried.push(`${type} controller: not supported`);
    }
  }
  const inputs: Record<string, unknown>[] = [];
  for (const i of list(devices.input)) {
    const type = attr(i, 'type') ?? '?';
    const bus = attr(i, 'bus') ?? 'ps2';
    if (type === 'passthrough' || type === 'evdev') { notCarried.push(`input ${type}: host input devices are not supported`); continue; }
    if (type !== 'tablet' && type !== 'keyboard' && type !== 'mouse') { notCarried.push(`input ${type}: not supported`); continue; }
    if (bus !== 'usb' && bus !== 'virtio' && bus !== 'ps2') { notCarried.push(`input ${type} on bus ${bus}: not supported`); continue; }
    // libvirt lists the machine's own PS/2 keyboard and mouse; Hangar's machines have them built in.
    // Only the ones Hangar wrote (a user alias) are entries of its own.
    if (bus === 'ps2' && aliasId(i) === undefined) continue;
    inputs.push({ id: deviceIdOf(i, `${type}${inputs.filter((x) => x.type === type).length}`, taken, false), type, bus });
  }
  fields.inputs = inputs;
}

function readShares(devices: XNode, fields: Record<string, unknown>, taken: Set<string>, notCarried: string[]): void {
  const shares: Record<string, unknown>[] = [];
  for (const fs of list(devices.filesystem)) {
    const dir = attr(child(fs, 'source'), 'dir');
    const tag = attr(child(fs, 'target'), 'dir');
    const driver = attr(child(fs, 'driver'), 'type') ?? 'path';
    const label = `shared folder ${tag ?? '?'}`;
    if ((attr(fs, 'type') ?? 'mount') !== 'mount' || dir === undefined || tag === undefined) { notCarried.push(`${label}: only host folders (type=mount) are supported`); continue; }
    const id = deviceIdOf(fs, `share${shares.length}`, taken, false);
    const readOnly = child(fs, 'readonly') !== undefined;
    if (driver === 'virtiofs') { shares.push({ id, driver: 'virtiofs', source: dir, tag, readOnly }); continue; }
    const mode = attr(fs, 'accessmode') ?? 'passthrough';
    const securityModel = mode === 'mapped' ? 'mapped-xattr' : mode === 'squash' ? 'none' : 'passthrough';
    shares.push({ id, driver: 'virtio-9p', source: dir, tag, readOnly, securityModel });
  }
  fields.shares = shares;
}

function readHostDevices(devices: XNode, fields: Record<string, unknown>, taken: Set<string>, notCarried: string[]): void {
  const hostPci: Record<string, unknown>[] = [];
  const mdevs: Record<string, unknown>[] = [];
  const hostUsb: Record<string, unknown>[] = [];
  const hex = (v: string | undefined, width: number): string => Number(v ?? 0).toString(16).padStart(width, '0');
  for (const h of list(devices.hostdev)) {
    const type = attr(h, 'type');
    const source = child(h, 'source');
    if (attr(h, 'mode') === 'subsystem' && type === 'pci') {
      const a = child(source, 'address');
      const address = `${hex(attr(a, 'domain'), 4)}:${hex(attr(a, 'bus'), 2)}:${hex(attr(a, 'slot'), 2)}.${Number(attr(a, 'function') ?? 0)}`;
      hostPci.push({ id: deviceIdOf(h, `hostpci${hostPci.length}`, taken, false), address, managed: attr(h, 'managed') === 'yes', rom: attr(child(h, 'rom'), 'bar') !== 'off' });
    } else if (attr(h, 'mode') === 'subsystem' && type === 'mdev') {
      mdevs.push({ id: deviceIdOf(h, `mdev${mdevs.length}`, taken, false), uuid: attr(child(source, 'address'), 'uuid')?.toLowerCase() });
    } else if (attr(h, 'mode') === 'subsystem' && type === 'usb' && child(source, 'vendor') && child(source, 'product')) {
      hostUsb.push({ id: deviceIdOf(h, `usbhost${hostUsb.length}`, taken, false), vendorId: hex(attr(child(source, 'vendor'), 'id'), 4), productId: hex(attr(child(source, 'product'), 'id'), 4) });
    } else {
      notCarried.push(`host device ${type ?? '?'}${type === 'usb' ? ' picked by bus and device number' : ''}: not supported`);
    }
  }
  Object.assign(fields, { hostPci, mdevs, hostUsb });
}

export function readDevices(devices: XNode, taken: Set<string>): DevicesResult {
  const fields: Record<string, unknown> = {};
  const notCarried: string[] = [];
  readDisplay(devices, fields, notCarried);
  readChardevs(devices, fields, taken, notCarried);
  readSmallDevices(devices, fields, notCarried);
  readControllersInputs(devices, fields, taken, notCarried);
  readShares(devices, fields, taken, notCarried);
  readHostDevices(devices, fields, taken, notCarried);
  for (const name of childNames(devices)) {
    if (HANDLED.has(name)) continue;
    const n = list(devices[name]).length;
    notCarried.push(`${name}${n > 1 ? ` (${n})` : ''}: ${UNSUPPORTED[name] ?? 'not supported'}`);
  }
  return { fields, notCarried };
}
