// The New VM wizard's choices, their live validation, and the two things they turn into: the
// create request the core runs and the equivalent `hangar create` command (shown in the summary,
// so everything the wizard does is visibly available from the CLI). Pure TS: the renderer and
// the tests use it.
import type { CreateVmRequest } from './api.ts';
import { HOSTNAME_RE, SSH_PUBKEY_RE, USERNAME_RE, vmNameSchema } from './model.ts';
import type { DiskBus, FirmwareType, NicModel } from './model.ts';
import type { OsPreset, PresetVideo } from './os-presets.ts';
import { shellQuote } from './shell.ts';

export const sourceKinds = ['iso', 'import', 'kernel', 'network', 'empty'] as const;
export type SourceKind = (typeof sourceKinds)[number];
export type ImportMode = 'in-place' | 'copy' | 'convert';
export type StorageChoice = 'new' | 'existing' | 'none';
export type NetworkChoice = 'user' | 'passt' | 'bridge' | 'none';
/** auto = the core's default (withDisplayDefaults): VNC for VMs that boot firmware, none for kernel boot. */
export type DisplayChoice = 'auto' | 'vnc' | 'none';

export interface NewVmChoices {
  name: string;
  source: SourceKind;
  isoPath: string;
  importPath: string;
  importMode: ImportMode;
  kernelPath: string;
  initrdPath: string;
  cmdline: string;
  /** Network boot: a folder served over TFTP by user-mode networking, and the file DHCP names. */
  tftpDir: string;
  bootfile: string;
  osId: string;
  firmware: FirmwareType;
  tpm: boolean;
  memoryMiB: number;
  vcpus: number;
  /** The CPU model ('' = the core picks: host under KVM, max under TCG, qemu64 for old OSes). */
  cpuModel: string;
  /** The last OS preset asks for a plain CPU model (an OS from before 2006). */
  plainCpu: boolean;
  storage: StorageChoice;
  diskGiB: number;
  /** For storage = existing: an image used in place. */
  existingDiskPath: string;
  diskBus: DiskBus;
  network: NetworkChoice;
  nicModel: NicModel;
  /** For network = bridge: the host bridge. */
  bridge: string;
  /** One per line: tcp::2222-:22 (as --nic hostfwd=). */
  portForwards: string;
  cloudInit: { enabled: boolean; user: string; password: string; hostname: string; sshKey: string };
  /** The screen: VNC (a video device + USB tablet) or none (serial console only). */
  display: DisplayChoice;
  /** The video model a VNC display uses (from the OS: virtio-gpu where it has the driver). */
  video: PresetVideo;
}

export function defaultChoices(): NewVmChoices {
  return {
    name: '', source: 'iso', isoPath: '', importPath: '', importMode: 'in-place', kernelPath: '', initrdPath: '',
    cmdline: 'console=ttyS0', tftpDir: '', bootfile: '', osId: 'generic-linux', firmware: 'bios', tpm: false,
    memoryMiB: 2048, vcpus: 2, cpuModel: '', plainCpu: false, storage: 'new', diskGiB: 20, existingDiskPath: '', diskBus: 'virtio-blk',
    network: 'user', nicModel: 'virtio-net', bridge: '', portForwards: '',
    cloudInit: { enabled: false, user: '', password: '', hostname: '', sshKey: '' },
    display: 'auto', video: 'virtio-gpu',
  };
}

/** The display the VM gets: the choice, or the core's default for its source. */
export function effectiveDisplay(c: Pick<NewVmChoices, 'display' | 'source'>): 'vnc' | 'none' {
  return c.display === 'auto' ? (c.source === 'kernel' ? 'none' : 'vnc') : c.display;
}

/** Applies an OS's defaults to the choices (the user may change each afterwards). */
export function applyPreset(c: NewVmChoices, p: OsPreset): void {
  c.osId = p.osId;
  c.memoryMiB = p.memoryMiB;
  c.vcpus = p.vcpus;
  c.plainCpu = p.plainCpu;
  c.diskGiB = Math.max(1, Math.round(p.diskBytes / 1024 ** 3));
  c.diskBus = p.diskBus;
  c.nicModel = p.nicModel;
  c.firmware = p.firmware;
  c.tpm = p.tpm;
  c.video = p.video;
}

export interface FieldCheck {
  /** Blocks going on. */
  error?: string;
  /** Shown, does not block. */
  warning?: string;
  /** Blocks going on until the user confirms (e.g. a disk larger than the free space). */
  confirm?: string;
}

export function checkName(name: string, existing: Iterable<string>): FieldCheck {
  if (name === '') return { error: 'a name is required' };
  const r = vmNameSchema.safeParse(name);
  if (!r.success) return { error: r.error.issues[0]!.message };
  const lower = name.toLowerCase();
  for (const e of existing) if (e.toLowerCase() === lower) return { error: `a VM named "${e}" already exists: choose another name` };
  return {};
}

const MiB = 1024 * 1024;

export function checkMemory(mib: number, hostBytes: number): FieldCheck {
  if (!Number.isInteger(mib) || mib < 16) return { error: 'memory is a whole number of MiB, at least 16' };
  const hostMiB = Math.floor(hostBytes / MiB);
  if (mib > hostMiB) return { error: `more than this host has (${hostMiB} MiB): give at most ${hostMiB} MiB` };
  if (mib > hostMiB * 0.8) return { warning: `over 80% of the host's ${hostMiB} MiB: the host may start swapping` };
  return {};
}

export function checkVcpus(n: number, hostCpus: number): FieldCheck {
  if (!Number.isInteger(n) || n < 1) return { error: 'at least 1 vCPU' };
  if (n > 288) return { error: 'at most 288 vCPUs' };
  // The core refuses this without the overcommit confirmation (CreateVmRequest.allowOvercommit).
  if (n > hostCpus) return { confirm: `more vCPUs than the host's ${hostCpus} CPUs: they will share them and run slower` };
  return {};
}

export function checkDiskSize(gib: number, freeBytes: number): FieldCheck {
  if (!Number.isFinite(gib) || gib <= 0) return { error: 'the disk size is a positive number of GiB' };
  if (gib > 64 * 1024) return { error: 'at most 65536 GiB' };
  const bytes = gib * 1024 ** 3;
  if (bytes > freeBytes) {
    return { confirm: `${gib} GiB is more than the ${formatGiB(freeBytes)} free where the disk goes: the image grows as the guest writes and the VM pauses when the space runs out` };
  }
  return {};
}

export function formatGiB(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

export interface ParsedForward { protocol: 'tcp' | 'udp'; hostAddress: string; hostPort: number; guestPort: number }

const FORWARD_RE = /^(tcp|udp)?:([0-9a-fA-F.:]*):(\d{1,5})-:(\d{1,5})$/;

/** Port forwards, one per line, as `tcp::2222-:22` / `udp:127.0.0.1:5353-:53`. */
export function parsePortForwards(text: string): { forwards: ParsedForward[]; error?: string } {
  const forwards: ParsedForward[] = [];
  const seen = new Set<string>();
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (!line) continue;
    const m = FORWARD_RE.exec(line);
    if (!m) return { forwards, error: `line ${i + 1}: "${line}" is not of the form tcp::HOSTPORT-:GUESTPORT (e.g. tcp::2222-:22)` };
    const f: ParsedForward = { protocol: (m[1] ?? 'tcp') as 'tcp' | 'udp', hostAddress: m[2] || '127.0.0.1', hostPort: Number(m[3]), guestPort: Number(m[4]) };
    if (f.hostPort < 1 || f.hostPort > 65535 || f.guestPort < 1 || f.guestPort > 65535) return { forwards, error: `line ${i + 1}: ports are 1-65535` };
    const key = `${f.protocol}:${f.hostAddress}:${f.hostPort}`;
    if (seen.has(key)) return { forwards, error: `line ${i + 1}: host port ${f.protocol} ${f.hostPort} is forwarded twice` };
    seen.add(key);
    forwards.push(f);
  }
  return { forwards };
}

export function checkCloudInit(ci: NewVmChoices['cloudInit']): Partial<Record<'user' | 'password' | 'hostname' | 'sshKey' | 'all', string>> {
  const e: Partial<Record<'user' | 'password' | 'hostname' | 'sshKey' | 'all', string>> = {};
  if (!ci.enabled) return e;
  if (ci.user && !USERNAME_RE.test(ci.user)) e.user = 'lower-case letters, digits, "_" and "-", starting with a letter or "_" (at most 32)';
  if (ci.password && !ci.user) e.password = 'a password needs the user it is for';
  if (/[\r\n]/.test(ci.password)) e.password = 'one line, please';
  if (ci.hostname && !HOSTNAME_RE.test(ci.hostname)) e.hostname = '1-63 letters, digits and "-", not starting or ending with "-"';
  const key = ci.sshKey.trim();
  if (key.includes('PRIVATE KEY')) e.sshKey = 'that is a PRIVATE key: paste the public one (.pub)';
  else if (key && !SSH_PUBKEY_RE.test(key)) e.sshKey = 'one OpenSSH public key line: ssh-ed25519 AAAA... you@host';
  if (!ci.user && !ci.password && !ci.hostname && !key) e.all = 'give at least a user, a host name or an SSH key, or turn unattended set-up off';
  return e;
}

/** Where the VM boots from, in firmware order. */
function bootOrder(c: NewVmChoices): string[] {
  switch (c.source) {
    case 'iso': return ['disk', 'cdrom'];
    case 'network': return ['network', 'disk'];
    default: return ['disk', 'cdrom', 'network'];
  }
}

/**
 * The create request the core runs for these choices. allowOvercommit: the user confirmed a disk
 * larger than the free space or more vCPUs than host CPUs (the core refuses both otherwise).
 */
export function buildCreateRequest(c: NewVmChoices, requestId?: string, allowOvercommit = false): CreateVmRequest {
  const def: Record<string, unknown> = {
    name: c.name, osId: c.osId, memoryMiB: c.memoryMiB, cpu: { vcpus: c.vcpus }, firmware: c.firmware,
    boot: { order: bootOrder(c) },
  };
  if (c.cpuModel) (def.cpu as Record<string, unknown>).model = c.cpuModel;
  if (c.tpm) def.tpm = { model: 'tpm-crb' };
  if (c.source === 'iso') def.cdroms = [{ id: 'cd0', file: c.isoPath, bus: c.diskBus === 'sata' ? 'sata' : 'ide' }];
  if (c.source === 'kernel') {
    const kernel: Record<string, unknown> = { kernel: c.kernelPath, append: c.cmdline };
    if (c.initrdPath) kernel.initrd = c.initrdPath;
    (def.boot as Record<string, unknown>).kernel = kernel;
  }
  if (c.network !== 'none') {
    const network: Record<string, unknown> = c.network === 'bridge'
      ? { type: 'bridge', bridge: c.bridge }
      : { type: c.network, portForwards: parsePortForwards(c.portForwards).forwards };
    if (c.source === 'network' && c.network === 'user') {
      if (c.tftpDir) network.tftp = c.tftpDir;
      if (c.bootfile) network.bootfile = c.bootfile;
    }
    def.nics = [{ id: 'net0', model: c.nicModel, network }];
  }
  // An explicit display choice is sent as such; 'auto' leaves it to the core's defaults.
  if (c.display !== 'auto') {
    if (c.display === 'vnc') {
      def.video = { model: c.video, display: 'vnc', clipboard: true };
      def.inputs = [{ id: 'input0', type: 'tablet', bus: 'usb' }];
    } else {
      def.video = { model: 'none', display: 'none' };
    }
  }
  const req: CreateVmRequest = { definition: def };
  if (c.source === 'import') req.importDisks = [{ source: c.importPath, mode: c.importMode, bus: c.diskBus }];
  else if (c.storage === 'new') req.newDisks = [{ sizeBytes: Math.round(c.diskGiB * 1024 ** 3), bus: c.diskBus }];
  else if (c.storage === 'existing') req.importDisks = [{ source: c.existingDiskPath, mode: 'in-place', bus: c.diskBus }];
  if (c.cloudInit.enabled) {
    const ci = c.cloudInit;
    req.cloudInit = {
      ...(ci.user ? { user: ci.user } : {}),
      ...(ci.password ? { password: ci.password } : {}),
      ...(ci.hostname ? { hostname: ci.hostname } : {}),
      ...(ci.sshKey.trim() ? { sshKeys: [ci.sshKey.trim()] } : {}),
    };
  }
  if (requestId !== undefined) req.requestId = requestId;
  if (allowOvercommit) req.allowOvercommit = true;
  return req;
}

/** A comma inside a --flag value is doubled (QEMU style, as `hangar create` reads it). */
const esc = (s: string): string => s.replace(/,/g, ',,');

/** The `hangar create` command that makes the same VM (the password is masked). */
export function createCommand(c: NewVmChoices, allowOvercommit = false): string {
  const a: string[] = ['hangar', 'create', '--name', c.name, '--os', c.osId, '--memory', String(c.memoryMiB), '--vcpus', String(c.vcpus), '--firmware', c.firmware];
  if (c.cpuModel) a.push('--cpu', c.cpuModel);
  if (c.tpm) a.push('--tpm');
  if (c.display === 'vnc') a.push('--display', 'vnc', '--video', c.video);
  else if (c.display === 'none') a.push('--display', 'none');
  if (c.source === 'iso') a.push('--cdrom', `${esc(c.isoPath)}${c.diskBus === 'sata' ? ',bus=sata' : ''}`);
  if (c.source === 'import') a.push('--import-disk', `${esc(c.importPath)}${c.importMode === 'in-place' ? '' : `,${c.importMode}`},bus=${c.diskBus}`);
  if (c.source === 'kernel') {
    a.push('--kernel', c.kernelPath);
    if (c.initrdPath) a.push('--initrd', c.initrdPath);
    a.push('--append', c.cmdline);
  }
  if (c.source === 'network') a.push('--pxe');
  if (c.source !== 'import' && c.storage === 'new') a.push('--new-disk', `${c.diskGiB}G,bus=${c.diskBus}`);
  if (c.source !== 'import' && c.storage === 'existing') a.push('--import-disk', `${esc(c.existingDiskPath)},bus=${c.diskBus}`);
  if (c.network !== 'none') {
    let nic = c.network === 'bridge' ? `bridge,br=${c.bridge},model=${c.nicModel}` : `${c.network},model=${c.nicModel}`;
    if (c.network !== 'bridge') for (const f of parsePortForwards(c.portForwards).forwards) nic += `,hostfwd=${f.protocol}:${f.hostAddress === '127.0.0.1' ? '' : f.hostAddress}:${f.hostPort}-:${f.guestPort}`;
    if (c.source === 'network' && c.network === 'user' && c.tftpDir) nic += `,tftp=${esc(c.tftpDir)}${c.bootfile ? `,bootfile=${esc(c.bootfile)}` : ''}`;
    a.push('--nic', nic);
  }
  if (c.cloudInit.enabled) {
    const ci = c.cloudInit;
    const parts = [ci.user && `user=${esc(ci.user)}`, ci.password && 'password=********', ci.hostname && `hostname=${ci.hostname}`, ci.sshKey.trim() && 'ssh-key=KEY.pub'].filter(Boolean);
    a.push('--cloud-init', parts.join(','));
  }
  if (allowOvercommit) a.push('--allow-overcommit');
  return a.map(shellQuote).join(' ');
}
