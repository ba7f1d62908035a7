// Turns `hangar create` flags into a CreateVmRequest. Only syntax is checked here; the core
// validates the resulting definition (one gate for CLI, UI and files alike).
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { CreateVmRequest, ImportDiskRequest, NewDiskRequest } from '../../common/api.ts';
import { HangarError } from '../../common/errors.ts';
import { diskBuses, displayTypes, firmwareTypes, videoModels } from '../../common/model.ts';
import type { DiskBus } from '../../common/model.ts';
import { parseSize } from '../store/qemu-img.ts';
import { applyCpuMemoryFlags, dropNulls } from './cpu-memory-args.ts';
import type { CpuMemoryFlags } from './cpu-memory-args.ts';

export interface CreateFlags extends CpuMemoryFlags {
  name?: string;
  description?: string;
  memory?: string;
  machine?: string;
  firmware?: string;
  tpm?: string;
  accel?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  disk?: string[];
  'new-disk'?: string[];
  /** PATH[,in-place|copy|convert][,format=qcow2|raw][,bus=..]: an existing image (in place by default). */
  'import-disk'?: string[];
  cdrom?: string[];
  nic?: string[];
  boot?: string;
  'shutdown-timeout'?: string;
  'no-serial'?: boolean;
  /** vnc | none: the screen (default: vnc for VMs that boot firmware, none for kernel boot). */
  display?: string;
  /** A video model (vga, virtio-gpu, bochs, qxl, none). */
  video?: string;
  file?: string;
  /** An osinfo short id, a generic id (generic-linux ...), or `auto` (detect from the first --cdrom). */
  os?: string;
  /** user=NAME,password=PW,ssh-key=FILE,hostname=HOST (each optional, at least one): a cloud-init NoCloud seed. */
  'cloud-init'?: string;
  /** Network boot: NICs first in the firmware boot order (each with its iPXE option ROM). */
  pxe?: boolean;
  /** New sparse disks larger than the free space, or more vCPUs than host CPUs, on purpose. */
  'allow-overcommit'?: boolean;
}

/**
 * --display / --video: an explicit choice; without them the core picks (withDisplayDefaults).
 * --display none alone means headless (no video device); --video MODEL alone shows it over VNC.
 */
function applyDisplayFlags(f: CreateFlags, def: Record<string, unknown>): void {
  if (f.display === undefined && f.video === undefined) return;
  if (f.display !== undefined && !(displayTypes as readonly string[]).includes(f.display)) {
    throw new HangarError('invalid-input', `--display ${f.display} is not a display type`, `use one of: ${displayTypes.join(', ')}`);
  }
  if (f.video !== undefined && !(videoModels as readonly string[]).includes(f.video)) {
    throw new HangarError('invalid-input', `--video ${f.video} is not a video model`, `use one of: ${videoModels.join(', ')}`);
  }
  // --display vnc alone on a firmware-booting VM is the default: the core picks the OS's video model.
  if (f.video === undefined && f.display === 'vnc' && def.video === undefined && !(def.boot as { kernel?: unknown } | undefined)?.kernel) return;
  const prev = (def.video as Record<string, unknown> | undefined) ?? {};
  const model = f.video ?? (f.display === 'none' ? 'none' : (prev.model as string | undefined) ?? 'vga');
  def.video = { clipboard: model !== 'none', ...prev, model, display: f.display ?? 'vnc' };
  const inputs = [...((def.inputs as Array<Record<string, unknown>> | undefined) ?? [])];
  if (model !== 'none' && f.display !== 'none' && !inputs.some((i) => i.type === 'tablet')) {
    inputs.push({ id: `input${inputs.length}`, type: 'tablet', bus: 'usb' });
    def.inputs = inputs;
  }
}

/** "PATH,key=val,flag" -> { head: PATH, opts }. A doubled comma is a literal comma (QEMU style). */
export function splitSpec(spec: string): { head: string; opts: Record<string, string> } {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < spec.length; i++) {
    if (spec[i] === ',' && spec[i + 1] === ',') { cur += ','; i++; continue; }
    if (spec[i] === ',') { parts.push(cur); cur = ''; continue; }
    cur += spec[i];
  }
  parts.push(cur);
  const [head = '', ...rest] = parts;
  const opts: Record<string, string> = {};
  for (const p of rest) {
    const eq = p.indexOf('=');
    if (eq < 0) opts[p] = 'on';
    else opts[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return { head, opts };
}

function int(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new HangarError('invalid-input', `--${flag} must be a whole number, got "${v}"`);
  return parseInt(v, 10);
}

function unknownKeys(flag: string, opts: Record<string, string>, allowed: string[]): void {
  for (const k of Object.keys(opts)) {
    if (!allowed.includes(k)) throw new HangarError('invalid-input', `--${flag}: unknown option "${k}"`, `known options: ${allowed.join(', ')}`);
  }
}

const HOSTFWD_RE = /^(tcp|udp)?:([0-9a-fA-F.:]*):(\d+)-:(\d+)$/;

export function parseHostfwd(text: string): { protocol: 'tcp' | 'udp'; hostAddress: string; hostPort: number; guestPort: number } {
  const m = HOSTFWD_RE.exec(text);
  if (!m) throw new HangarError('invalid-input', `port forward "${text}" is not of the form tcp::HOSTPORT-:GUESTPORT`, 'example: hostfwd=tcp::2222-:22 (or tcp:127.0.0.1:2222-:22)');
  return { protocol: (m[1] ?? 'tcp') as 'tcp' | 'udp', hostAddress: m[2] || '127.0.0.1', hostPort: parseInt(m[3]!, 10), guestPort: parseInt(m[4]!, 10) };
}

/** Network back ends --nic takes, with what each is. */
const NIC_BACKENDS: Readonly<Record<string, string>> = {
  user: 'user-mode NAT inside QEMU (slirp)',
  passt: 'rootless user-mode networking by a passt process (package passt)',
  bridge: 'a tap device on a host bridge (bridge,br=br0[,vhost=on]; qemu-bridge-helper)',
  isolated: 'a VM-to-VM network on this host, no root needed (isolated,network=NAME)',
  tap: 'a tap device made beforehand (tap,ifname=tap0[,vhost=on])',
  'vhost-user': 'virtio-net served by a vhost-user switch on a unix socket (vhost-user,socket=PATH[,server=on])',
};
const NIC_USAGE = 'use --nic user|passt[,model=virtio-net|e1000|rtl8139][,mac=..][,hostfwd=tcp::2222-:22], --nic bridge,br=BRIDGE[,vhost=on]|isolated,network=NAME[,model=..][,mac=..], '
  + '--nic tap,ifname=TAP[,vhost=on][,model=..][,mac=..] or --nic vhost-user,socket=PATH[,server=on][,mac=..]';

/** on/off switches (vhost=, server=): a bare key means on. */
function onOff(flag: string, key: string, v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  if (v === 'on' || v === 'true' || v === 'yes') return true;
  if (v === 'off' || v === 'false' || v === 'no') return false;
  throw new HangarError('invalid-input', `--${flag}: ${key}= is on or off, got "${v}"`, `e.g. ${key}=on`);
}

export async function parseNic(spec: string, index: number): Promise<Record<string, unknown>> {
  const { head, opts } = splitSpec(spec);
  if (!(head in NIC_BACKENDS)) {
    throw new HangarError('invalid-input', `--nic "${head}": unknown network back end (known: ${Object.entries(NIC_BACKENDS).map(([k, v]) => `${k} = ${v}`).join('; ')})`, NIC_USAGE);
  }
  // "br=on" names a bridge called on; a bare "br" (which splitSpec reads as on) names none.
  if (head === 'bridge') return parseLanNic('bridge', opts, index, /(^|,)br=/.test(spec));
  if (head === 'isolated') return parseLanNic('isolated', opts, index, /(^|,)network=/.test(spec));
  if (head === 'tap' || head === 'vhost-user') return parseHostNic(head, opts, index, spec);
  // hostfwd may repeat: split on "hostfwd=" occurrences in the original spec.
  const fwds = [...spec.matchAll(/hostfwd=([^,]+)/g)].map((m) => parseHostfwd(m[1]!));
  if (head === 'passt') {
    for (const k of ['tftp', 'bootfile']) {
      if (opts[k] !== undefined) {
        throw new HangarError('invalid-input', `--nic passt: ${k}= is only for --nic user (QEMU's built-in TFTP/DHCP server); passt has no TFTP server`,
          'network-boot with --nic user,tftp=DIR,bootfile=FILE, or drop tftp=/bootfile=');
      }
    }
  }
  unknownKeys('nic', opts, head === 'passt' ? ['model', 'mac', 'hostfwd', 'id'] : ['model', 'mac', 'hostfwd', 'id', 'tftp', 'bootfile']);
  const network: Record<string, unknown> = { type: head, portForwards: fwds };
  // Network boot: QEMU's built-in TFTP server serves DIR; DHCP names the boot file.
  if (opts.tftp !== undefined) network.tftp = resolve(opts.tftp);
  if (opts.bootfile !== undefined) network.bootfile = opts.bootfile;
  const nic: Record<string, unknown> = { id: opts.id ?? `net${index}`, network };
  if (opts.model) nic.model = opts.model;
  if (opts.mac) nic.mac = opts.mac.toLowerCase();
  return nic;
}

/**
 * --nic bridge,br=NAME / --nic isolated,network=NAME [,model=..][,mac=..][,id=..]: NICs on a LAN
 * (a host bridge, or a VM-only network): no port forwards, TFTP or boot file.
 */
function parseLanNic(kind: 'bridge' | 'isolated', opts: Record<string, string>, index: number, valueGiven: boolean): Record<string, unknown> {
  const where = kind === 'bridge' ? "a bridged guest is on the bridge's LAN and reachable at its own address" : 'an isolated network joins VMs to each other only';
  for (const k of ['hostfwd', 'tftp', 'bootfile']) {
    if (opts[k] !== undefined) {
      throw new HangarError('invalid-input', `--nic ${kind}: ${k}= is only for user-mode NICs; ${where} (no port forwards, no built-in TFTP/DHCP server)`,
        k === 'hostfwd' ? 'drop hostfwd=, or use --nic user|passt,hostfwd=tcp::2222-:22' : `drop tftp=/bootfile=${kind === 'bridge' ? " (serve them from a TFTP/DHCP server on the bridge's LAN)" : ''}, or network-boot with --nic user,tftp=DIR,bootfile=FILE`);
    }
  }
  const key = kind === 'bridge' ? 'br' : 'network';
  unknownKeys('nic', opts, kind === 'bridge' ? [key, 'vhost', 'model', 'mac', 'id'] : [key, 'model', 'mac', 'id']);
  if (!valueGiven || !opts[key]) {
    throw new HangarError('invalid-input', kind === 'bridge' ? '--nic bridge needs the host bridge: br=NAME' : '--nic isolated needs the network name: network=NAME',
      kind === 'bridge' ? 'e.g. --nic bridge,br=br0 (`ip link show type bridge` lists the bridges)' : 'e.g. --nic isolated,network=lab on each VM that should share the network');
  }
  const vhost = onOff('nic', 'vhost', opts.vhost);
  const network = kind === 'bridge' ? { type: 'bridge', bridge: opts.br, ...(vhost !== undefined ? { vhost } : {}) } : { type: 'isolated', network: opts.network };
  const nic: Record<string, unknown> = { id: opts.id ?? `net${index}`, network };
  if (opts.model) nic.model = opts.model;
  if (opts.mac) nic.mac = opts.mac.toLowerCase();
  return nic;
}

/**
 * --nic tap,ifname=TAP[,vhost=on] / --nic vhost-user,socket=PATH[,server=on] [,model=..][,mac=..][,id=..]:
 * NICs on a host interface or a host switch's socket that exist apart from Hangar.
 */
function parseHostNic(kind: 'tap' | 'vhost-user', opts: Record<string, string>, index: number, spec: string): Record<string, unknown> {
  for (const k of ['hostfwd', 'tftp', 'bootfile']) {
    if (opts[k] !== undefined) {
      throw new HangarError('invalid-input', `--nic ${kind}: ${k}= is only for user-mode NICs (QEMU's slirp or passt)`, 'drop it, or use --nic user|passt');
    }
  }
  const key = kind === 'tap' ? 'ifname' : 'socket';
  unknownKeys('nic', opts, kind === 'tap' ? [key, 'vhost', 'model', 'mac', 'id'] : [key, 'server', 'model', 'mac', 'id']);
  if (!new RegExp(`(^|,)${key}=.`).test(spec)) {
    throw new HangarError('invalid-input', kind === 'tap' ? '--nic tap needs the tap device: ifname=NAME' : '--nic vhost-user needs the back end\'s socket: socket=PATH',
      kind === 'tap' ? 'e.g. --nic tap,ifname=tap0 (made once by root: ip tuntap add dev tap0 mode tap user $USER)' : 'e.g. --nic vhost-user,socket=/run/openvswitch/vhu0.sock');
  }
  let network: Record<string, unknown>;
  if (kind === 'tap') {
    const vhost = onOff('nic', 'vhost', opts.vhost);
    network = { type: 'tap', ifname: opts.ifname, ...(vhost !== undefined ? { vhost } : {}) };
  } else {
    const server = onOff('nic', 'server', opts.server);
    network = { type: 'vhost-user', socket: resolve(opts.socket!), ...(server !== undefined ? { server } : {}) };
  }
  const nic: Record<string, unknown> = { id: opts.id ?? `net${index}`, network };
  if (opts.model) nic.model = opts.model;
  if (opts.mac) nic.mac = opts.mac.toLowerCase();
  return nic;
}

export async function parseDisk(spec: string, index: number): Promise<Record<string, unknown>> {
  const { head, opts } = splitSpec(spec);
  unknownKeys('disk', opts, ['bus', 'format', 'cache', 'readonly', 'id']);
  if (!head) throw new HangarError('invalid-input', '--disk needs a path');
  // The format is the core's to read (qemu-img info), with every other check of the file: a
  // format given here is only compared with what the image really is.
  const disk: Record<string, unknown> = { id: opts.id ?? `disk${index}`, file: resolve(head) };
  if (opts.format) disk.format = opts.format;
  if (opts.bus) disk.bus = opts.bus;
  if (opts.cache) disk.cache = opts.cache;
  if (opts.readonly) disk.readOnly = opts.readonly !== 'off';
  return disk;
}

export function parseNewDisk(spec: string): NewDiskRequest {
  const { head, opts } = splitSpec(spec);
  unknownKeys('new-disk', opts, ['bus', 'format']);
  const req: NewDiskRequest = { sizeBytes: parseSize(head) };
  if (opts.bus) {
    if (!(diskBuses as readonly string[]).includes(opts.bus)) throw new HangarError('invalid-input', `--new-disk: unknown bus "${opts.bus}"`, `use one of ${diskBuses.join(', ')}`);
    req.bus = opts.bus as DiskBus;
  }
  if (opts.format) {
    if (opts.format !== 'qcow2' && opts.format !== 'raw') throw new HangarError('invalid-input', `--new-disk: format must be qcow2 or raw, got "${opts.format}"`);
    req.format = opts.format;
  }
  return req;
}

export function parseImportDisk(spec: string): ImportDiskRequest {
  const { head, opts } = splitSpec(spec);
  unknownKeys('import-disk', opts, ['in-place', 'copy', 'convert', 'format', 'bus']);
  if (!head) throw new HangarError('invalid-input', '--import-disk needs the path of a disk image');
  const modes = (['in-place', 'copy', 'convert'] as const).filter((m) => opts[m] !== undefined);
  if (modes.length > 1) throw new HangarError('invalid-input', `--import-disk: choose one of ${modes.join(', ')}`);
  for (const m of modes) {
    if (opts[m] !== 'on') throw new HangarError('invalid-input', `--import-disk: "${m}" takes no value`, `write ${head},${m}`);
  }
  const req: ImportDiskRequest = { source: resolve(head), mode: modes[0] ?? 'in-place' };
  if (opts.bus) {
    if (!(diskBuses as readonly string[]).includes(opts.bus)) throw new HangarError('invalid-input', `--import-disk: unknown bus "${opts.bus}"`, `use one of ${diskBuses.join(', ')}`);
    req.bus = opts.bus as DiskBus;
  }
  if (opts.format) {
    if (opts.format !== 'qcow2' && opts.format !== 'raw') throw new HangarError('invalid-input', `--import-disk: format must be qcow2 or raw, got "${opts.format}"`);
    if (req.mode === 'in-place') throw new HangarError('invalid-input', '--import-disk: format= applies to copy or convert (an image used in place keeps its format)', `write ${head},convert,format=${opts.format}`);
    req.format = opts.format;
  }
  return req;
}

export async function loadDefinitionFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new HangarError('invalid-input', `cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    const v = /\.ya?ml$/i.test(path) ? parseYaml(text) : JSON.parse(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('the top level must be an object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new HangarError('invalid-input', `${path} is not a valid ${/\.ya?ml$/i.test(path) ? 'YAML' : 'JSON'} VM definition: ${(e as Error).message}`);
  }
}

export async function buildCreateRequest(f: CreateFlags): Promise<CreateVmRequest> {
  const def: Record<string, unknown> = f.file ? await loadDefinitionFile(f.file) : {};
  if (f.name !== undefined) def.name = f.name;
  if (def.name === undefined) throw new HangarError('invalid-input', 'a VM needs a name', 'pass --name NAME');
  if (f.description !== undefined) def.description = f.description;
  if (f.machine !== undefined) def.machine = f.machine;
  if (f.accel !== undefined) def.accel = f.accel;
  if (f.firmware !== undefined) {
    if (!(firmwareTypes as readonly string[]).includes(f.firmware)) {
      throw new HangarError('invalid-input', `--firmware: unknown firmware "${f.firmware}"`, `use one of ${firmwareTypes.join(', ')}`);
    }
    def.firmware = f.firmware;
  }
  if (f.tpm !== undefined) {
    const model = ({ crb: 'tpm-crb', tis: 'tpm-tis' } as Record<string, string | undefined>)[f.tpm];
    if (!model) throw new HangarError('invalid-input', `--tpm: unknown interface "${f.tpm}"`, 'use --tpm (CRB), --tpm=crb or --tpm=tis');
    def.tpm = { ...(def.tpm as Record<string, unknown> | undefined), model };
  }
  const memory = int('memory', f.memory);
  if (memory !== undefined) def.memoryMiB = memory;
  applyCpuMemoryFlags(f, def);
  dropNulls(def);
  const timeout = int('shutdown-timeout', f['shutdown-timeout']);
  if (timeout !== undefined) def.shutdownTimeoutSec = timeout;
  if (f.kernel || f.initrd || f.append) {
    if (!f.kernel) throw new HangarError('invalid-input', '--initrd/--append need --kernel');
    const kernel: Record<string, unknown> = { kernel: resolve(f.kernel), append: f.append ?? '' };
    if (f.initrd) kernel.initrd = resolve(f.initrd);
    def.boot = { ...(def.boot as Record<string, unknown> | undefined), kernel };
  }
  if (f.boot) def.boot = { ...(def.boot as Record<string, unknown> | undefined), order: f.boot.split(',') };
  if (f.pxe) {
    if (f.kernel) throw new HangarError('invalid-input', '--pxe and --kernel both say how to boot', 'drop --kernel to boot from the network, or drop --pxe');
    const boot = { ...(def.boot as Record<string, unknown> | undefined) };
    const order = Array.isArray(boot.order) ? (boot.order as string[]) : ['disk', 'cdrom'];
    def.boot = { ...boot, order: ['network', ...order.filter((o) => o !== 'network')] };
  }
  const disks = [...((def.disks as unknown[]) ?? [])];
  for (const d of f.disk ?? []) disks.push(await parseDisk(d, disks.length));
  if (disks.length) def.disks = disks;
  const cdroms = [...((def.cdroms as unknown[]) ?? [])];
  for (const c of f.cdrom ?? []) {
    const { head, opts } = splitSpec(c);
    unknownKeys('cdrom', opts, ['bus', 'id']);
    cdroms.push({ id: opts.id ?? `cd${cdroms.length}`, file: resolve(head), ...(opts.bus ? { bus: opts.bus } : {}) });
  }
  if (cdroms.length) def.cdroms = cdroms;
  const nics = [...((def.nics as unknown[]) ?? [])];
  for (const n of f.nic ?? []) nics.push(await parseNic(n, nics.length));
  if (nics.length) def.nics = nics;
  if (f['no-serial']) def.serial = { enabled: false };
  applyDisplayFlags(f, def);
  if (f['cloud-init'] !== undefined) def.cloudInit = await parseCloudInit(f['cloud-init']);
  const req: CreateVmRequest = { definition: def };
  if (f['new-disk']?.length) req.newDisks = f['new-disk'].map(parseNewDisk);
  if (f['import-disk']?.length) req.importDisks = f['import-disk'].map(parseImportDisk);
  if (f.os !== undefined) await applyOsPreset(f, req);
  if (f['allow-overcommit']) req.allowOvercommit = true;
  return req;
}

/**
 * --os: the OS's preset fills in what the flags (or the file) left open: memory, vCPUs,
 * firmware, TPM, the bus of new disks and the model of NICs. Explicit choices always win.
 */
async function applyOsPreset(f: CreateFlags, req: CreateVmRequest): Promise<void> {
  const { detectOs, findOs } = await import('../osinfo/osinfo-db.ts');
  const { presetFor } = await import('../../common/os-presets.ts');
  const { genericFor } = await import('../../common/os-types.ts');
  let os;
  if (f.os === 'auto') {
    const iso = f.cdrom?.[0];
    if (!iso) throw new HangarError('invalid-input', '--os auto detects the OS from the installation medium, but there is no --cdrom', 'add --cdrom ISO, or name the OS: --os ID (see `hangar os list`)');
    os = (await detectOs(resolve(splitSpec(iso).head))).os ?? genericFor(undefined);
  } else {
    os = await findOs(f.os!);
    if (!os) throw new HangarError('invalid-input', `--os: unknown OS "${f.os}"`, 'see `hangar os list [--search TEXT]`, or use generic-linux, generic-windows, generic-bsd, other, auto');
  }
  const p = presetFor(os);
  const def = req.definition;
  def.osId = p.osId;
  if (f.memory === undefined && def.memoryMiB === undefined) def.memoryMiB = p.memoryMiB;
  const cpu = { ...(def.cpu as Record<string, unknown> | undefined) };
  if (cpu.vcpus === undefined) def.cpu = { ...cpu, vcpus: p.vcpus };
  if (def.firmware === undefined) def.firmware = p.firmware;
  if (p.tpm && def.tpm === undefined) def.tpm = { model: 'tpm-crb' };
  for (const d of req.newDisks ?? []) d.bus ??= p.diskBus;
  for (const d of req.importDisks ?? []) d.bus ??= p.diskBus;
  for (const n of (def.nics as Array<Record<string, unknown>> | undefined) ?? []) n.model ??= p.nicModel;
}

/** --cloud-init user=NAME,password=PW,ssh-key=FILE,hostname=HOST: the password is hashed here and never stored. */
export async function parseCloudInit(spec: string): Promise<Record<string, unknown>> {
  const { resolveCloudInit } = await import('../cloud-init/seed.ts');
  const { opts } = spec.trim() ? splitSpec(`,${spec}`) : { opts: {} as Record<string, string> };
  unknownKeys('cloud-init', opts, ['user', 'password', 'ssh-key', 'hostname']);
  const sshKeyFiles = [...spec.matchAll(/(?:^|,)ssh-key=([^,]+)/g)].map((m) => resolve(m[1]!.replace(/^~(?=\/)/, process.env.HOME ?? '~')));
  return { ...(await resolveCloudInit({
    ...(opts.user !== undefined ? { user: opts.user } : {}),
    ...(opts.password !== undefined ? { password: opts.password } : {}),
    ...(opts.hostname !== undefined ? { hostname: opts.hostname } : {}),
    sshKeyFiles,
  })) };
}
