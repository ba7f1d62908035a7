// Hangar devices -> libvirt <devices> children, as structured objects for the one XML builder
// in domain-xml-write.ts (attributes under "@_", text under "#text"; nothing here escapes).
// Hangar device ids travel as libvirt user aliases (ua-<id>) so they come back on import.
import type { NicDefinition, VmDefinition } from '../../common/model.ts';
import { usbControllerOf } from '../qemu/vm-argv.ts';
import { NIC_MODEL_TO_LIBVIRT, USER_ALIAS_PREFIX, VDAGENT_PORT, VIDEO_TO_LIBVIRT } from './domain-xml-common.ts';
import type { XNode } from './domain-xml-common.ts';

export interface WriteContext {
  def: VmDefinition;
  /** Folder for serial-port logs and sockets (libvirt needs a path for each). */
  chardevDir: string;
  /** Where the console's output is logged as well. */
  serialLog?: string;
  /** Whether to write passt NICs as libvirt's passt back end (else slirp user networking). */
  passt: boolean;
  notCarried: string[];
}

const alias = (id: string): XNode => ({ '@_name': USER_ALIAS_PREFIX + id });

/** Guest device names in libvirt's own scheme (vda ... vdz, vdaa ...): only an ordering hint to libvirt. */
function devName(prefix: string, index: number): string {
  let s = '';
  for (let n = index + 1; n > 0; n = Math.floor((n - 1) / 26)) s = String.fromCharCode(97 + ((n - 1) % 26)) + s;
  return prefix + s;
}

export function storageXml(ctx: WriteContext): XNode[] {
  const { def } = ctx;
  const counters: Record<string, number> = { vd: 0, sd: 0, hd: 0 };
  const next = (bus: string): string => {
    const prefix = bus === 'virtio' ? 'vd' : bus === 'ide' ? 'hd' : 'sd';
    return devName(prefix, counters[prefix]!++);
  };
  let iothread = 0;
  const out: XNode[] = [];
  for (const d of def.disks) {
    if (d.format === 'vhdx') {
      // libvirt's format list (storagecommon.rng) has vpc but no vhdx: define refuses it.
      ctx.notCarried.push(`disk ${d.id}: libvirt has no VHDX image format; not written (convert it with qemu-img convert -O qcow2)`);
      continue;
    }
    let bus: string = d.bus === 'virtio-blk' ? 'virtio' : d.bus;
    if (d.bus === 'vhost-user-blk') {
      // Hangar serves it with its own qemu-storage-daemon; libvirt would need one running already.
      bus = 'virtio';
      ctx.notCarried.push(`disk ${d.id}: vhost-user-blk is served by Hangar's own qemu-storage-daemon; written as a virtio disk on the same image`);
    }
    out.push({
      '@_type': 'file', '@_device': 'disk',
      driver: {
        '@_name': 'qemu', '@_type': d.format, '@_cache': d.cache,
        ...(d.aio ? { '@_io': d.aio } : {}),
        ...(d.discard ? { '@_discard': 'unmap' } : {}),
        ...(d.iothread && bus === 'virtio' ? { '@_iothread': String(++iothread) } : {}),
      },
      source: { '@_file': d.file },
      target: { '@_dev': next(bus), '@_bus': bus },
      ...(d.readOnly ? { readonly: '' } : {}),
      alias: alias(d.id),
    });
  }
  for (const c of def.cdroms) {
    if (c.role === 'cloud-init') ctx.notCarried.push(`CD-ROM ${c.id}: the cloud-init seed is built by the Hangar core at start; ${c.file ? 'written as a plain CD-ROM with the last seed' : 'written as an empty drive'}`);
    out.push({
      '@_type': 'file', '@_device': 'cdrom',
      driver: { '@_name': 'qemu', '@_type': 'raw' },
      ...(c.file ? { source: { '@_file': c.file } } : {}),
      target: { '@_dev': next(c.bus), '@_bus': c.bus },
      readonly: '',
      alias: alias(c.id),
    });
  }
  return out;
}

/** How many I/O threads the disks ask for (libvirt numbers them from 1). */
export function iothreadCount(def: VmDefinition): number {
  return def.disks.filter((d) => d.iothread && (d.bus === 'virtio-blk' || d.bus === 'vhost-user-blk')).length;
}

function nicXml(n: NicDefinition, ctx: WriteContext): XNode | undefined {
  const net = n.network;
  const common = { mac: { '@_address': n.mac }, model: { '@_type': NIC_MODEL_TO_LIBVIRT[n.model] }, alias: alias(n.id) };
  // vhost is a virtio-net data path: libvirt's <driver name> only means something there.
  const driver = (vhost: boolean): XNode => (n.model === 'virtio-net' ? { driver: { '@_name': vhost ? 'vhost' : 'qemu' } } : {});
  switch (net.type) {
    case 'user':
      if (net.portForwards.length) ctx.notCarried.push(`NIC ${n.id}: libvirt's slirp user networking has no port forwards (use passt): ${net.portForwards.length} forward(s) not written`);
      if (net.tftp || net.bootfile) ctx.notCarried.push(`NIC ${n.id}: the built-in TFTP server / boot file of user networking is not written`);
      return { '@_type': 'user', ...common };
    case 'passt':
      if (!ctx.passt) {
        ctx.notCarried.push(`NIC ${n.id}: this libvirt has no passt back end; written as libvirt user networking (slirp)${net.portForwards.length ? ` without its ${net.portForwards.length} port forward(s)` : ''}`);
        return { '@_type': 'user', ...common };
      }
      return {
        '@_type': 'user', ...common, backend: { '@_type': 'passt' },
        portForward: net.portForwards.map((f) => ({ '@_proto': f.protocol, ...(f.hostAddress ? { '@_address': f.hostAddress } : {}), range: { '@_start': String(f.hostPort), '@_to': String(f.guestPort) } })),
      };
    case 'bridge':
      return { '@_type': 'bridge', ...common, source: { '@_bridge': net.bridge }, ...driver(net.vhost) };
    case 'tap':
      return { '@_type': 'ethernet', ...common, target: { '@_dev': net.ifname, '@_managed': 'no' }, ...driver(net.vhost) };
    case 'vhost-user':
      return { '@_type': 'vhostuser', ...common, source: { '@_type': 'unix', '@_path': net.socket, '@_mode': net.server ? 'server' : 'client' } };
    case 'isolated':
      ctx.notCarried.push(`NIC ${n.id}: the isolated network '${net.network}' is Hangar's own (multicast on the host's loopback); not written`);
      return undefined;
  }
  return undefined;
}

export function nicsXml(ctx: WriteContext): XNode[] {
  return ctx.def.nics.map((n) => nicXml(n, ctx)).filter((x): x is XNode => x !== undefined);
}

export function sharesXml(ctx: WriteContext): XNode[] {
  return ctx.def.shares.map((s) => (s.driver === 'virtiofs'
    ? { '@_type': 'mount', '@_accessmode': 'passthrough', driver: { '@_type': 'virtiofs' }, source: { '@_dir': s.source }, target: { '@_dir': s.tag }, alias: alias(s.id) }
    : {
      '@_type': 'mount', '@_accessmode': s.securityModel === 'mapped-xattr' ? 'mapped' : s.securityModel === 'none' ? 'squash' : 'passthrough',
      source: { '@_dir': s.source }, target: { '@_dir': s.tag }, ...(s.readOnly ? { readonly: '' } : {}), alias: alias(s.id),
    }));
}

export function controllersXml(ctx: WriteContext): XNode[] {
  const { def } = ctx;
  const out: XNode[] = [];
  const usb = usbControllerOf(def);
  // Written even when absent (model none): libvirt would otherwise add a default USB controller.
  if (!usb) out.push({ '@_type': 'usb', '@_model': 'none' });
  else if (usb.model === 'qemu-xhci') out.push({ '@_type': 'usb', '@_index': '0', '@_model': 'qemu-xhci' });
  else {
    out.push({ '@_type': 'usb', '@_index': '0', '@_model': 'ich9-ehci1' });
    for (const n of [1, 2, 3]) out.push({ '@_type': 'usb', '@_index': '0', '@_model': `ich9-uhci${n}`, master: { '@_startport': String((n - 1) * 2) } });
  }
  if ([...def.disks, ...def.cdroms].some((d) => d.bus === 'scsi')) out.push({ '@_type': 'scsi', '@_index': '0', '@_model': 'virtio-scsi' });
  return out;
}

export function inputsXml(ctx: WriteContext): XNode[] {
  return ctx.def.inputs.map((i) => ({ '@_type': i.type, '@_bus': i.bus, alias: alias(i.id) }));
}

export function displayXml(ctx: WriteContext): { graphics: XNode[]; video: XNode[]; channels: XNode[] } {
  const v = ctx.def.video;
  const model: XNode = { '@_type': VIDEO_TO_LIBVIRT[v.model] };
  if (v.vramMiB !== undefined && (v.model === 'vga' || v.model === 'bochs')) model['@_vram'] = String(v.vramMiB * 1024);
  if (v.vramMiB !== undefined && v.model === 'qxl') model['@_vgamem'] = String(v.vramMiB * 1024);
  if (v.model !== 'none') model['@_primary'] = 'yes';
  // Hangar serves VNC on a private socket through its core; under libvirt it is loopback TCP (virsh domdisplay).
  const graphics = v.display === 'vnc' ? [{ '@_type': 'vnc', '@_autoport': 'yes', listen: { '@_type': 'address', '@_address': '127.0.0.1' } }] : [];
  const channels = v.clipboard
    ? [{ '@_type': 'qemu-vdagent', source: { clipboard: { '@_copypaste': 'yes' } }, target: { '@_type': 'virtio', '@_name': VDAGENT_PORT } }]
    : [];
  // model none is written out: with a display and no adapter, libvirt would add a VGA of its own.
  return { graphics, video: [{ model }], channels };
}

export function chardevsXml(ctx: WriteContext): { serial: XNode[]; console: XNode[]; channel: XNode[] } {
  const { def } = ctx;
  const serial: XNode[] = [];
  const consoles: XNode[] = [];
  if (def.serial.enabled) {
    // A pty: what `virsh console` attaches to.
    serial.push({
      '@_type': 'pty', ...(ctx.serialLog ? { log: { '@_file': ctx.serialLog, '@_append': 'on' } } : {}),
      target: { '@_type': 'isa-serial', '@_port': '0', model: { '@_name': 'isa-serial' } },
    });
    consoles.push({ '@_type': 'pty', target: { '@_type': 'serial', '@_port': '0' } });
  }
  def.serialPorts.forEach((p, i) => {
    const base = `${ctx.chardevDir}/${def.id}-${p.id}`;
    const target = { '@_type': 'isa-serial', '@_port': String(i + 1), model: { '@_name': 'isa-serial' } };
    serial.push(p.output === 'log'
      ? { '@_type': 'file', source: { '@_path': `${base}.log` }, target, alias: alias(p.id) }
      : { '@_type': 'unix', source: { '@_mode': 'bind', '@_path': `${base}.sock` }, target, alias: alias(p.id) });
  });
  const channel = def.channels.map((c) => ({
    // No path: libvirt puts the socket in its channel folder (and talks to the guest agent itself).
    '@_type': 'unix', source: { '@_mode': 'bind' }, target: { '@_type': 'virtio', '@_name': c.name }, alias: alias(c.id),
  }));
  return { serial, console: consoles, channel };
}

export function smallDevicesXml(ctx: WriteContext): XNode {
  const { def } = ctx;
  const out: XNode = {};
  if (def.sound) {
    out.sound = [{ '@_model': def.sound.model === 'ac97' ? 'ac97' : def.machine === 'q35' ? 'ich9' : 'ich6', ...(def.sound.model === 'hda' ? { codec: { '@_type': 'duplex' } } : {}) }];
    // Hangar's sound cards play into QEMU's "none" audio back end.
    out.audio = [{ '@_id': '1', '@_type': 'none' }];
  }
  if (def.watchdog) out.watchdog = [{ '@_model': def.watchdog.model, '@_action': def.watchdog.action }];
  if (def.rng) out.rng = [{ '@_model': 'virtio', backend: { '@_model': 'random', '#text': `/dev/${def.rng.source}` } }];
  if (def.tpm) out.tpm = [{ '@_model': def.tpm.model, backend: { '@_type': 'emulator', '@_version': '2.0' } }];
  // Written even when absent (model none): libvirt would otherwise add a balloon of its own.
  out.memballoon = [def.balloon
    ? { '@_model': 'virtio', ...(def.balloon.deflateOnOom ? { '@_autodeflate': 'on' } : {}), ...(def.balloon.freePageReporting ? { '@_freePageReporting': 'on' } : {}) }
    : { '@_model': 'none' }];
  if (def.vsock) out.vsock = [{ '@_model': 'virtio', cid: { '@_auto': 'no', '@_address': String(def.vsock.cid) } }];
  return out;
}

export function hostDevicesXml(ctx: WriteContext): XNode[] {
  const { def } = ctx;
  const out: XNode[] = [];
  for (const p of def.hostPci) {
    const m = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/.exec(p.address)!;
    out.push({
      '@_mode': 'subsystem', '@_type': 'pci', '@_managed': p.managed ? 'yes' : 'no',
      source: { address: { '@_domain': `0x${m[1]}`, '@_bus': `0x${m[2]}`, '@_slot': `0x${m[3]}`, '@_function': `0x${m[4]}` } },
      ...(p.rom ? {} : { rom: { '@_bar': 'off' } }),
      alias: alias(p.id),
    });
  }
  for (const m of def.mdevs) {
    if (m.parent || m.type) ctx.notCarried.push(`mediated device ${m.id}: its parent and type (to create it again at start) are Hangar's; libvirt expects the instance to exist`);
    out.push({ '@_mode': 'subsystem', '@_type': 'mdev', '@_model': 'vfio-pci', source: { address: { '@_uuid': m.uuid } }, alias: alias(m.id) });
  }
  for (const u of def.hostUsb) {
    if (u.vendorId === undefined || u.productId === undefined) {
      ctx.notCarried.push(`USB host device ${u.id}: picked by bus ${u.hostbus ?? '?'} port ${u.hostport ?? '?'}; libvirt picks USB devices by vendor:product or bus/device number`);
      continue;
    }
    out.push({ '@_mode': 'subsystem', '@_type': 'usb', '@_managed': 'yes', source: { vendor: { '@_id': `0x${u.vendorId}` }, product: { '@_id': `0x${u.productId}` } }, alias: alias(u.id) });
  }
  return out;
}
