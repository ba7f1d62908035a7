// One form per device kind: what the editor shows (strings as typed, booleans), made from a
// device or from defaults, and turned back into the device (or patch) the core takes, with an
// error per field. Checked with the model's own schemas, so the UI refuses what the core would.
import type { AddDeviceOptions, DeviceChange, DeviceKindName } from '../../../core/common/api.ts';
import {
  balloonSchema, cdromSchema, channelSchema, diskSchema, hostPciSchema, inputSchema, mdevSchema, nicSchema, rngSchema, serialPortSchema, shareSchema,
  soundSchema, tpmSchema, usbHostSchema, usbSchema, videoSchema, vsockSchema, watchdogSchema,
} from '../../../core/common/model.ts';
import type {
  CacheMode, CdromBus, DiskBus, NicModel, VmDefinition,
} from '../../../core/common/model.ts';
import { parsePortForwards } from '../../../core/common/new-vm.ts';
import type { NicBackend, NicDataPath } from './choice-options.ts';

type Enum<T extends { shape: Record<string, unknown> }, F extends keyof T['shape']> = T['shape'][F] extends { options: readonly (infer O)[] } ? O : never;
type Unwrap<S> = S extends { unwrap(): infer I } ? Unwrap<I> : S;
type Opts<S> = Unwrap<S> extends { options: readonly (infer O)[] } ? O : never;

export interface DiskForm {
  /** Add only: make a new image, or use a file that exists. */
  source: 'new' | 'existing';
  sizeGiB: string;
  format: 'qcow2' | 'raw';
  file: string;
  bus: DiskBus;
  cache: CacheMode;
  /** '' = QEMU's default (threads). */
  aio: '' | Opts<typeof diskSchema.shape.aio>;
  discard: boolean;
  readOnly: boolean;
  iothread: boolean;
}
export interface CdromForm { bus: CdromBus; file: string }
export interface NicForm {
  model: NicModel;
  backend: NicBackend;
  mac: string;
  bridge: string;
  ifname: string;
  network: string;
  socket: string;
  server: boolean;
  dataPath: NicDataPath;
  /** user/passt: one forward a line, tcp::2222-:22. */
  forwards: string;
}
export interface InputForm { type: Enum<typeof inputSchema, 'type'>; bus: Opts<typeof inputSchema.shape.bus> }
export interface ShareForm { driver: Opts<typeof shareSchema.shape.driver>; source: string; tag: string; readOnly: boolean; securityModel: Opts<typeof shareSchema.shape.securityModel> }
export interface ChannelForm { name: string }
export interface SerialForm { output: Opts<typeof serialPortSchema.shape.output> }
/** display: how the screen is shown (VNC into the Display tab, or no viewer); clipboard: qemu-vdagent text sharing. */
export interface VideoForm { model: Opts<typeof videoSchema.shape.model>; vramMiB: string; display: Opts<typeof videoSchema.shape.display>; clipboard: boolean }
export interface SoundForm { model: Opts<typeof soundSchema.shape.model> }
export interface RngForm { source: Opts<typeof rngSchema.shape.source> }
export interface BalloonForm { freePageReporting: boolean; deflateOnOom: boolean }
export interface WatchdogForm { action: Opts<typeof watchdogSchema.shape.action> }
export interface UsbForm { model: Opts<typeof usbSchema.shape.model> }
export interface VsockForm { cid: string }
export interface TpmForm { model: Opts<typeof tpmSchema.shape.model> }
/** A host PCI device or SR-IOV VF (VFIO): its address, managed (Hangar binds it to vfio-pci at start), its option ROM shown. */
export interface HostPciForm { address: string; managed: boolean; rom: boolean }
/** An existing mdev instance (made on the Host page); parent and type are kept so the core can make it again. */
export interface MdevForm { uuid: string; parent: string; type: string }
/**
 * A host USB device: picked from the host's list (matched by vendor:product, which follows the
 * device to any port, or by bus + port, whatever is plugged in there), or vendor:product typed.
 */
export interface UsbHostForm {
  source: 'host' | 'manual';
  /** The picked device's sysfs name ("1-1.2"). */
  device: string;
  match: 'id' | 'port';
  /** Filled from the picked device. */
  vendorId: string;
  productId: string;
  hostbus: string;
  hostport: string;
  /** Typed "046d:c52b". */
  manual: string;
}

export interface DeviceForms {
  disk: DiskForm; cdrom: CdromForm; nic: NicForm; input: InputForm; share: ShareForm; channel: ChannelForm; serial: SerialForm;
  video: VideoForm; sound: SoundForm; rng: RngForm; balloon: BalloonForm; watchdog: WatchdogForm; usb: UsbForm; vsock: VsockForm; tpm: TpmForm;
  hostpci: HostPciForm; mdev: MdevForm; usbhost: UsbHostForm;
}

export type FieldErrors = Record<string, string>;
export type EditorMode = 'add' | 'edit';

export type DeviceRequest =
  | { ok: true; device: Record<string, unknown>; opts?: AddDeviceOptions }
  | { ok: false; errors: FieldErrors };

export function randomMac(): string {
  const b = crypto.getRandomValues(new Uint8Array(3));
  return `52:54:00:${[...b].map((x) => x.toString(16).padStart(2, '0')).join(':')}`;
}

/** The next free vsock context id (3 is the first a guest may have). */
const DEFAULT_CID = 3;

export function blankForm<K extends DeviceKindName>(kind: K, def?: VmDefinition): DeviceForms[K] {
  const forms: { [P in DeviceKindName]: () => DeviceForms[P] } = {
    disk: () => ({ source: 'new', sizeGiB: '1', format: 'qcow2', file: '', bus: 'virtio-blk', cache: 'writeback', aio: '', discard: false, readOnly: false, iothread: false }),
    cdrom: () => ({ bus: def?.machine === 'q35' ? 'sata' : 'ide', file: '' }),
    nic: () => ({ model: 'virtio-net', backend: 'user', mac: randomMac(), bridge: '', ifname: '', network: '', socket: '', server: false, dataPath: 'qemu', forwards: '' }),
    input: () => ({ type: 'tablet', bus: 'usb' }),
    share: () => ({ driver: 'virtio-9p', source: '', tag: '', readOnly: false, securityModel: 'mapped-xattr' }),
    channel: () => ({ name: 'org.qemu.guest_agent.0' }),
    serial: () => ({ output: 'log' }),
    video: () => ({ model: 'vga', vramMiB: '', display: 'vnc', clipboard: false }),
    sound: () => ({ model: 'hda' }),
    rng: () => ({ source: 'urandom' }),
    balloon: () => ({ freePageReporting: true, deflateOnOom: false }),
    watchdog: () => ({ action: 'reset' }),
    usb: () => ({ model: 'qemu-xhci' }),
    vsock: () => ({ cid: String(DEFAULT_CID) }),
    tpm: () => ({ model: 'tpm-crb' }),
    hostpci: () => ({ address: '', managed: true, rom: true }),
    mdev: () => ({ uuid: '', parent: '', type: '' }),
    usbhost: () => ({ source: 'host', device: '', match: 'id', vendorId: '', productId: '', hostbus: '', hostport: '', manual: '' }),
  };
  return forms[kind]();
}

const str = (v: unknown): string => (typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v));

export function formatForwards(forwards: ReadonlyArray<{ protocol: string; hostAddress: string; hostPort: number; guestPort: number }>): string {
  return forwards.map((f) => `${f.protocol}:${f.hostAddress === '127.0.0.1' ? '' : f.hostAddress}:${f.hostPort}-:${f.guestPort}`).join('\n');
}

/** The form for a device as the definition has it. */
export function formFromDevice<K extends DeviceKindName>(kind: K, device: Record<string, unknown>): DeviceForms[K] {
  const f = { ...blankForm(kind), ...device } as Record<string, unknown>;
  if (kind === 'disk') {
    f.source = 'existing';
    f.aio = str(device.aio);
  } else if (kind === 'cdrom') {
    f.file = str(device.file);
  } else if (kind === 'nic') {
    const net = (device.network ?? { type: 'user' }) as Record<string, unknown>;
    f.backend = net.type;
    f.bridge = str(net.bridge);
    f.ifname = str(net.ifname);
    f.network = str(net.network);
    f.socket = str(net.socket);
    f.server = net.server === true;
    f.dataPath = net.vhost === true ? 'vhost' : 'qemu';
    f.forwards = Array.isArray(net.portForwards) ? formatForwards(net.portForwards as never) : '';
  } else if (kind === 'video') {
    f.vramMiB = str(device.vramMiB);
    f.display = device.display === 'none' ? 'none' : 'vnc';
    f.clipboard = device.clipboard === true;
  } else if (kind === 'vsock') {
    f.cid = str(device.cid);
  } else if (kind === 'mdev') {
    f.parent = str(device.parent);
    f.type = str(device.type);
  } else if (kind === 'usbhost') {
    // By bus + port: the device at that port on the host's list; by ids: typed (it may be unplugged now).
    const byPort = device.hostbus !== undefined && device.hostport !== undefined;
    f.source = byPort ? 'host' : 'manual';
    f.match = byPort ? 'port' : 'id';
    f.device = byPort ? `${str(device.hostbus)}-${str(device.hostport)}` : '';
    f.vendorId = str(device.vendorId);
    f.productId = str(device.productId);
    f.hostbus = str(device.hostbus);
    f.hostport = str(device.hostport);
    f.manual = device.vendorId !== undefined && device.productId !== undefined ? `${str(device.vendorId)}:${str(device.productId)}` : '';
  }
  return f as unknown as DeviceForms[K];
}

/** A zod result's issues as field errors: the first segment of the path names the field (network.* by its own name). */
function schemaErrors(result: { success: boolean; error?: { issues: ReadonlyArray<{ path: PropertyKey[]; message: string }> } }, rename: Record<string, string> = {}): FieldErrors {
  const errors: FieldErrors = {};
  if (result.success || !result.error) return errors;
  for (const issue of result.error.issues) {
    const path = issue.path.map(String);
    const key = path[0] === 'network' ? (path[1] ?? 'backend') : (path[0] ?? 'form');
    const field = rename[key] ?? key;
    errors[field] ??= issue.message;
  }
  return errors;
}

const MAX_DISK_GIB = 64 * 1024;

/** A typed number: v-model on a number input hands numbers back, so both forms arrive. */
function wholeNumber(text: string | number): number | null {
  const t = String(text).trim();
  return /^\d+$/.test(t) ? Number(t) : null;
}

type Checked = { device: Record<string, unknown>; errors: FieldErrors; opts?: AddDeviceOptions };
type Builder<K extends DeviceKindName> = (form: DeviceForms[K], mode: EditorMode) => Checked;

interface Schema { safeParse(v: unknown): Parameters<typeof schemaErrors>[0] }

/** Validates a device against its schema; the id (the core chooses it on add) and a new disk's file are stand-ins. */
function check(schema: Schema, device: Record<string, unknown>, standIns: Record<string, unknown> = {}): FieldErrors {
  return schemaErrors(schema.safeParse({ id: 'dev0', ...standIns, ...device }));
}

const builders: { [K in DeviceKindName]: Builder<K> } = {
  disk(f, mode) {
    const errors: FieldErrors = {};
    const device: Record<string, unknown> = { bus: f.bus, cache: f.cache, discard: f.discard, readOnly: f.readOnly, iothread: f.iothread };
    if (f.aio) device.aio = f.aio;
    let opts: AddDeviceOptions | undefined;
    if (mode === 'add' && f.source === 'new') {
      const gib = wholeNumber(f.sizeGiB);
      if (gib === null || gib < 1) errors.sizeGiB = 'the size is a whole number of GiB, at least 1';
      else if (gib > MAX_DISK_GIB) errors.sizeGiB = `at most ${MAX_DISK_GIB} GiB`;
      else opts = { newDiskBytes: gib * 1024 ** 3, newDiskFormat: f.format };
      device.format = f.format;
    } else if (mode === 'add') {
      device.file = f.file.trim();
      if (!f.file.trim()) errors.file = 'the path of an existing disk image is required';
    }
    if (device.aio === 'native' && f.cache !== 'none' && f.cache !== 'directsync') errors.aio = 'native AIO needs cache "none" or "directsync" (O_DIRECT)';
    if (f.iothread && f.bus !== 'virtio-blk') errors.iothread = 'an I/O thread is for virtio-blk disks only';
    if (f.discard && f.readOnly) errors.discard = 'a read-only disk cannot discard';
    const schemaErr = check(diskSchema, device, mode === 'add' && f.source === 'existing' ? {} : { file: '/new-image' });
    return { device, errors: { ...schemaErr, ...errors }, ...(opts ? { opts } : {}) };
  },
  cdrom(f) {
    const device: Record<string, unknown> = { bus: f.bus };
    if (f.file.trim()) device.file = f.file.trim();
    return { device, errors: check(cdromSchema, device) };
  },
  nic(f) {
    const errors: FieldErrors = {};
    let network: Record<string, unknown>;
    switch (f.backend) {
      case 'user':
      case 'passt': {
        const p = parsePortForwards(f.forwards);
        if (p.error) errors.forwards = p.error;
        network = { type: f.backend, portForwards: p.forwards };
        break;
      }
      case 'bridge': network = { type: 'bridge', bridge: f.bridge.trim(), vhost: f.dataPath === 'vhost' }; break;
      case 'tap': network = { type: 'tap', ifname: f.ifname.trim(), vhost: f.dataPath === 'vhost' }; break;
      case 'isolated': network = { type: 'isolated', network: f.network.trim() }; break;
      case 'vhost-user': network = { type: 'vhost-user', socket: f.socket.trim(), server: f.server }; break;
    }
    if ((f.backend === 'bridge' || f.backend === 'tap') && f.dataPath === 'vhost' && f.model !== 'virtio-net') errors.dataPath = 'vhost-net serves virtio-net only';
    if (f.backend === 'vhost-user' && f.model !== 'virtio-net') errors.model = 'vhost-user needs the virtio-net model';
    const device = { model: f.model, mac: f.mac.trim().toLowerCase(), network };
    return { device, errors: { ...check(nicSchema, device), ...errors } };
  },
  input(f) {
    const device = { type: f.type, bus: f.bus };
    return { device, errors: check(inputSchema, device) };
  },
  share(f) {
    const device = { driver: f.driver, source: f.source.trim(), tag: f.tag.trim(), readOnly: f.readOnly, securityModel: f.securityModel };
    return { device, errors: check(shareSchema, device) };
  },
  channel(f) {
    const device = { name: f.name.trim() };
    return { device, errors: check(channelSchema, device) };
  },
  serial(f) {
    const device = { output: f.output };
    return { device, errors: check(serialPortSchema, device) };
  },
  video(f) {
    const device: Record<string, unknown> = { model: f.model, display: f.display, clipboard: f.display === 'vnc' && f.clipboard };
    const errors: FieldErrors = {};
    if (String(f.vramMiB).trim()) {
      const n = wholeNumber(f.vramMiB);
      if (n === null) errors.vramMiB = 'video memory is a whole number of MiB';
      else device.vramMiB = n;
    }
    return { device, errors: { ...schemaErrors(videoSchema.safeParse(device)), ...errors } };
  },
  sound: (f) => ({ device: { model: f.model }, errors: schemaErrors(soundSchema.safeParse({ model: f.model })) }),
  rng: (f) => ({ device: { source: f.source }, errors: schemaErrors(rngSchema.safeParse({ source: f.source })) }),
  balloon(f) {
    const device = { freePageReporting: f.freePageReporting, deflateOnOom: f.deflateOnOom };
    return { device, errors: schemaErrors(balloonSchema.safeParse(device)) };
  },
  watchdog: (f) => ({ device: { model: 'i6300esb', action: f.action }, errors: schemaErrors(watchdogSchema.safeParse({ action: f.action })) }),
  usb: (f) => ({ device: { model: f.model }, errors: schemaErrors(usbSchema.safeParse({ model: f.model })) }),
  vsock(f) {
    const n = wholeNumber(f.cid);
    if (n === null) return { device: {}, errors: { cid: 'the context id is a whole number, 3 or more' } };
    const device = { cid: n };
    return { device, errors: schemaErrors(vsockSchema.safeParse(device)) };
  },
  tpm: (f) => ({ device: { model: f.model }, errors: schemaErrors(tpmSchema.safeParse({ model: f.model })) }),
  hostpci(f) {
    const device = { address: f.address.trim(), managed: f.managed, rom: f.rom };
    if (!device.address) return { device, errors: { address: 'choose a host PCI device' } };
    return { device, errors: check(hostPciSchema, device) };
  },
  mdev(f) {
    const device: Record<string, unknown> = { uuid: f.uuid.trim() };
    if (f.parent.trim()) device.parent = f.parent.trim();
    if (f.type.trim()) device.type = f.type.trim();
    if (!device.uuid) return { device, errors: { uuid: 'choose a mediated device instance (create one on the Host page first)' } };
    return { device, errors: check(mdevSchema, device) };
  },
  usbhost(f): Checked {
    if (f.source === 'manual') {
      const m = /^\s*([0-9a-fA-F]{4}):([0-9a-fA-F]{4})\s*$/.exec(f.manual);
      if (!m) return { device: {}, errors: { manual: 'type the vendor and product ids as vendor:product, 4 hex digits each (e.g. 046d:c52b, as lsusb shows them)' } };
      const device = { vendorId: m[1]!.toLowerCase(), productId: m[2]!.toLowerCase() };
      return { device, errors: check(usbHostSchema, device) };
    }
    if (!f.device) return { device: {}, errors: { device: 'choose a USB device of this host' } };
    if (f.match === 'id') {
      if (!f.vendorId || !f.productId) return { device: {}, errors: { match: 'this device reports no vendor and product ids: match it by bus and port' } };
      const device = { vendorId: f.vendorId, productId: f.productId };
      return { device, errors: check(usbHostSchema, device) };
    }
    const bus = wholeNumber(f.hostbus);
    if (bus === null || !f.hostport) return { device: {}, errors: { match: 'this device has no port path (a root hub?): match it by vendor:product' } };
    const device = { hostbus: bus, hostport: f.hostport };
    return { device, errors: check(usbHostSchema, device) };
  },
};

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** JSON with sorted keys: two equal values compare equal whatever their key order. */
function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (isObject(v)) return `{${Object.keys(v).sort().filter((k) => v[k] !== undefined).map((k) => `${JSON.stringify(k)}:${stable(v[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

/** Optional fields an editor may clear: a null in the patch removes them (the core's merge rule). */
const clearable: Partial<Record<DeviceKindName, readonly string[]>> = {
  disk: ['aio'], cdrom: ['file'], video: ['vramMiB'], mdev: ['parent', 'type'],
  // Switching how a USB device is matched drops the other way's fields.
  usbhost: ['vendorId', 'productId', 'hostbus', 'hostport'],
};

/**
 * Only what the user changed, so a running VM takes what it can now (a CD-ROM medium alone) and
 * fields the editor does not show survive. A back end of the same type keeps its other fields
 * (e.g. a NAT NIC's TFTP folder).
 */
export function devicePatch(kind: DeviceKindName, original: Record<string, unknown>, edited: Record<string, unknown>): Record<string, unknown> {
  const patch: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(edited)) {
    const old = original[k];
    const next = isObject(v) && isObject(old) && old.type === v.type ? { ...old, ...v } : v;
    if (stable(next) !== stable(old)) patch[k] = next;
  }
  for (const k of clearable[kind] ?? []) if (original[k] !== undefined && edited[k] === undefined) patch[k] = null;
  return patch;
}

/** The device (add) or patch (edit, against the original) the core takes, or the errors to show next to the fields. */
export function buildDeviceRequest<K extends DeviceKindName>(kind: K, form: DeviceForms[K], mode: EditorMode, original?: Record<string, unknown>): DeviceRequest {
  const r = (builders[kind] as Builder<K>)(form, mode);
  if (Object.keys(r.errors).length) return { ok: false, errors: r.errors };
  const device = mode === 'edit' && original ? devicePatch(kind, original, r.device) : r.device;
  return { ok: true, device, ...(r.opts ? { opts: r.opts } : {}) };
}

/** The status line after a change, in words. */
export function changeStatus(action: EditorMode | 'remove', change: Pick<DeviceChange, 'applied' | 'note'>): string {
  // The core's note may repeat what the line says already ("saved; applies at next boot: REASON").
  const extra = (change.note ?? '').replace(/^saved; (applies|removed) at next boot:\s*/, '').replace(/^hotplugged: the guest sees it now$/, '');
  const note = extra ? ` — ${extra}` : '';
  if (change.applied === 'next-boot') return `Saved; applies at next boot${note}`;
  if (change.applied === 'saved') return `Saved${note}`;
  const now = action === 'add' ? 'Added, the guest sees it now' : action === 'remove' ? 'Removed, the guest no longer has it' : 'Changed, the guest sees it now';
  return now + note;
}
