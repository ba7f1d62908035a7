// Parsing, migration and cross-field checks of VM definitions: the one gate every definition
// passes through, whether it comes from disk, the CLI or the UI.
import type { z } from 'zod';
import { cpuMemoryProblems } from './cpu-memory.ts';
import { HangarError } from './errors.ts';
import { MODEL_VERSION, portForwardsOf, vmDefinitionSchema, vmNameSchema } from './model.ts';
import type { VmDefinition } from './model.ts';

type Migration = (raw: Record<string, unknown>) => Record<string, unknown>;

/** migrations[n] turns a version-n definition into version n+1. */
const migrations: Record<number, Migration> = {
  // Version 0 was never released; definitions without a version field are treated as it.
  0: (raw) => ({ ...raw, version: 1 }),
};

export function migrateDefinition(raw: unknown): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new HangarError('invalid-input', 'a VM definition must be a JSON/YAML object');
  }
  let obj = raw as Record<string, unknown>;
  let version = obj.version === undefined ? 0 : obj.version;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 0) {
    throw new HangarError('invalid-input', `the definition's "version" is ${JSON.stringify(version)}, not a whole number`);
  }
  if (version > MODEL_VERSION) {
    throw new HangarError('invalid-input', `the definition has version ${version}, written by a newer Hangar (this one reads up to ${MODEL_VERSION})`,
      'update Hangar to open this VM; the file is left untouched');
  }
  while (version < MODEL_VERSION) {
    const step = migrations[version];
    if (!step) throw new HangarError('internal', `no migration from definition version ${version}`);
    obj = step(obj);
    version += 1;
  }
  return obj;
}

export function formatZodIssues(error: z.ZodError): string {
  return error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ');
}

/** Parses (and migrates) a definition; throws HangarError('invalid-input') naming every bad field. */
export function parseDefinition(raw: unknown): VmDefinition {
  const migrated = migrateDefinition(raw);
  const result = vmDefinitionSchema.safeParse(migrated);
  if (!result.success) {
    throw new HangarError('invalid-input', `invalid VM definition: ${formatZodIssues(result.error)}`);
  }
  checkDefinition(result.data);
  return result.data;
}

export function validateVmName(name: string): string {
  const r = vmNameSchema.safeParse(name);
  if (!r.success) throw new HangarError('invalid-input', `invalid VM name ${JSON.stringify(name)}: ${formatZodIssues(r.error)}`, 'a VM name is 1-64 printable characters (any script; spaces, commas and the like are fine) with no "/", no control characters (newlines, tabs), no spaces at either end, and not "." or ".."');
  return r.data;
}

/** Host devices given to the guest: each one at most once, and only where the machine has a bus for it. */
function hostDeviceProblems(def: VmDefinition): string[] {
  const problems: string[] = [];
  const byAddress = new Map<string, string>();
  for (const p of def.hostPci) {
    const other = byAddress.get(p.address);
    if (other !== undefined) problems.push(`PCI device ${p.address} is assigned twice (host PCI devices "${other}" and "${p.id}"): a device can be given to a guest once; remove one of them`);
    else byAddress.set(p.address, p.id);
  }
  const byUuid = new Map<string, string>();
  for (const m of def.mdevs) {
    const other = byUuid.get(m.uuid);
    if (other !== undefined) problems.push(`mediated device ${m.uuid} is assigned twice ("${other}" and "${m.id}"): an mdev instance can be given to a guest once; remove one, or create another instance for the second`);
    else byUuid.set(m.uuid, m.id);
    // The parent must stay on its host driver to serve mdevs: it cannot be bound to vfio-pci as a whole device as well.
    const whole = m.parent !== undefined ? byAddress.get(m.parent) : undefined;
    if (whole !== undefined) problems.push(`mediated device "${m.id}" is a slice of ${m.parent!}, which is also assigned whole (host PCI device "${whole}"): assign either the device or slices of it`);
  }
  // usb-host matches on every criterion given: two entries pick the same device when they share one
  // (vendor:product, bus + port) and agree on every one they share. Distinct ports keep two identical devices apart.
  const usbPicks = def.hostUsb.map((u) => ({
    id: u.id,
    ids: u.vendorId !== undefined && u.productId !== undefined ? `USB device ${u.vendorId}:${u.productId}` : undefined,
    port: u.hostbus !== undefined && u.hostport !== undefined ? `USB bus ${u.hostbus} port ${u.hostport}` : undefined,
  }));
  usbPicks.forEach((a, i) => {
    for (const b of usbPicks.slice(0, i)) {
      const shared = [a.ids !== undefined && b.ids !== undefined, a.port !== undefined && b.port !== undefined];
      if (!shared.some(Boolean)) continue;
      if ((shared[0] && a.ids !== b.ids) || (shared[1] && a.port !== b.port)) continue;
      problems.push(`${shared[0] ? a.ids! : a.port!} is assigned twice (USB host devices "${b.id}" and "${a.id}"): remove one; to pass two identical devices, pick each by bus and port`);
    }
  });
  if (def.machine === 'microvm') {
    for (const p of def.hostPci) problems.push(`host PCI device "${p.id}": a microvm has no PCI bus for VFIO devices (use machine q35)`);
    for (const m of def.mdevs) problems.push(`mediated device "${m.id}": a microvm has no PCI bus for VFIO devices (use machine q35)`);
    for (const u of def.hostUsb) problems.push(`USB host device "${u.id}": a microvm has no USB controller (use machine q35)`);
  }
  return problems;
}

/** Rules that span fields, which a per-field schema cannot express. */
export function checkDefinition(def: VmDefinition): void {
  const problems: string[] = [];
  const ids = new Set<string>();
  for (const dev of [...def.disks, ...def.cdroms, ...def.nics, ...def.inputs, ...def.shares, ...def.channels, ...def.serialPorts, ...def.hostPci, ...def.mdevs, ...def.hostUsb]) {
    if (ids.has(dev.id)) problems.push(`device id "${dev.id}" is used twice`);
    ids.add(dev.id);
  }
  // On q35 each VFIO device gets a root port named rp-<id> (core/node/qemu/devices/host-pci.ts).
  for (const dev of [...def.hostPci, ...def.mdevs]) {
    if (ids.has(`rp-${dev.id}`)) problems.push(`device id "rp-${dev.id}" is taken by the root port of host device "${dev.id}": rename one of them`);
  }
  problems.push(...hostDeviceProblems(def));
  const macs = new Set<string>();
  for (const nic of def.nics) {
    if (macs.has(nic.mac)) problems.push(`MAC ${nic.mac} is used by two NICs`);
    macs.add(nic.mac);
  }
  const hostPorts = new Set<string>();
  for (const nic of def.nics) {
    for (const f of portForwardsOf(nic.network)) {
      const key = `${f.protocol}:${f.hostAddress}:${f.hostPort}`;
      if (hostPorts.has(key)) problems.push(`host port ${f.protocol}/${f.hostPort} is forwarded twice`);
      hostPorts.add(key);
    }
  }
  problems.push(...cpuMemoryProblems(def));
  if (def.machine === 'microvm') {
    if (!def.boot.kernel) problems.push('a microvm has no firmware boot path: set boot.kernel (kernel + initrd)');
    for (const d of def.disks) if (d.bus !== 'virtio-blk') problems.push(`disk "${d.id}": a microvm only has virtio buses (use bus virtio-blk)`);
    if (def.cdroms.length) problems.push('a microvm has no CD-ROM bus');
    if (def.tpm) problems.push('a microvm has no TPM interface (use machine q35 for a TPM)');
    for (const n of def.nics) if (n.model !== 'virtio-net') problems.push(`NIC "${n.id}": a microvm only supports virtio-net`);
    for (const i of def.inputs) if (i.bus !== 'virtio') problems.push(`input "${i.id}": a microvm has no USB or PS/2 (use bus virtio)`);
    if (def.video.model !== 'none') problems.push('a microvm has no PCI bus for a video adapter (use video none, or machine q35)');
    if (def.sound) problems.push('a microvm has no PCI bus for a sound card (use machine q35)');
    if (def.watchdog) problems.push('a microvm has no PCI bus for the i6300esb watchdog (use machine q35)');
    if (def.usb) problems.push('a microvm has no PCI bus for a USB controller (use machine q35)');
  }
  for (const n of def.nics) {
    const net = n.network;
    if ((net.type === 'bridge' || net.type === 'tap') && net.vhost && n.model !== 'virtio-net') {
      problems.push(`NIC "${n.id}": vhost-net serves virtio-net only, not ${n.model} (use model virtio-net, or turn vhost off)`);
    }
    if (net.type === 'vhost-user' && n.model !== 'virtio-net') problems.push(`NIC "${n.id}": a vhost-user back end serves virtio-net only, not ${n.model} (use model virtio-net)`);
  }
  const vhostUserSockets = new Set<string>();
  for (const n of def.nics) {
    if (n.network.type !== 'vhost-user') continue;
    if (vhostUserSockets.has(n.network.socket)) problems.push(`vhost-user socket ${n.network.socket} is used by two NICs`);
    vhostUserSockets.add(n.network.socket);
  }
  const taps = new Set<string>();
  for (const n of def.nics) {
    if (n.network.type !== 'tap') continue;
    if (taps.has(n.network.ifname)) problems.push(`tap device ${n.network.ifname} is used by two NICs (a tap carries one NIC)`);
    taps.add(n.network.ifname);
  }
  const channelNames = new Set<string>();
  for (const ch of def.channels) {
    if (channelNames.has(ch.name)) problems.push(`channel name "${ch.name}" is used twice (the guest tells ports apart by name)`);
    channelNames.add(ch.name);
  }
  // ttyS0 is the console's; the PC's other three COM addresses are ttyS1-ttyS3 (microvm has the same ISA UARTs).
  if (def.serialPorts.length > 3) problems.push(`at most 3 extra serial ports (ttyS1-ttyS3) fit beside the console; ${def.serialPorts.length} are defined`);
  for (const sh of def.shares) {
    // QEMU 7.2's virtiofsd has no read-only mode: say so rather than share it writable.
    if (sh.driver === 'virtiofs' && sh.readOnly) problems.push(`shared folder "${sh.id}": virtiofs shares cannot be read-only here (QEMU 7.2's virtiofsd has no read-only mode): use driver virtio-9p for a read-only share`);
  }
  for (const d of def.disks) {
    if (d.aio === 'native' && d.cache !== 'none' && d.cache !== 'directsync') {
      problems.push(`disk "${d.id}": aio native needs O_DIRECT: use cache none or directsync (or aio threads / io_uring)`);
    }
    if (d.iothread && d.bus !== 'virtio-blk') problems.push(`disk "${d.id}": an I/O thread applies to virtio-blk disks, not ${d.bus}`);
    if (d.readOnly && (d.bus === 'ide' || d.bus === 'sata')) {
      problems.push(`disk "${d.id}": QEMU's IDE/SATA hard disks cannot be read-only: put it on virtio-blk or scsi (or use it as a CD-ROM)`);
    }
    if (d.discard && d.readOnly) problems.push(`disk "${d.id}": discard on a read-only disk has nothing to free`);
  }
  const tags = new Set<string>();
  for (const sh of def.shares) {
    // virtio-9p and virtiofs tags share one name space in the guest's mount commands.
    if (tags.has(sh.tag)) problems.push(`mount tag "${sh.tag}" is used by two shared folders`);
    tags.add(sh.tag);
  }
  for (const i of def.inputs) if (i.bus === 'ps2' && i.type === 'tablet') problems.push(`input "${i.id}": PS/2 has no tablet (use bus usb or virtio for a tablet)`);
  const ps2 = def.inputs.filter((i) => i.bus === 'ps2');
  for (const t of ['keyboard', 'mouse'] as const) {
    if (ps2.filter((i) => i.type === t).length > 1) problems.push(`the PS/2 controller has one ${t} port; ${ps2.filter((i) => i.type === t).length} PS/2 ${t}s are defined`);
  }
  if (def.cloudInit) {
    const c = def.cloudInit;
    if (!c.user && !c.passwordHash && !c.sshKeys.length && !c.hostname) problems.push('cloudInit is empty: give at least one of user, password, ssh key, hostname');
    if (c.passwordHash && !c.user) problems.push('cloudInit: a password needs a user to set it for (add user=NAME)');
    if (def.machine === 'microvm') problems.push('cloudInit needs a CD-ROM for its seed, and a microvm has none (use machine q35)');
  }
  if (def.cdroms.filter((c) => c.role === 'cloud-init').length > 1) problems.push('only one CD-ROM can be the cloud-init seed');
  if (def.firmware === 'uefi-secure' && def.machine !== 'q35') {
    problems.push(`firmware uefi-secure needs machine q35 (Secure Boot firmware needs SMM, which Hangar enables on q35 only), not ${def.machine}: use --machine q35, or --firmware uefi`);
  }
  if (def.firmware !== 'bios' && def.machine === 'microvm') {
    problems.push('a microvm has no flash for UEFI firmware: use firmware bios (it boots the kernel directly) or machine q35');
  }
  if (def.machine === 'pc') {
    const ide = def.disks.filter((d) => d.bus === 'ide').length + def.cdroms.filter((c) => c.bus === 'ide').length;
    if (ide > 4) problems.push(`the pc machine has 4 IDE slots, ${ide} IDE devices are defined (use sata or virtio-blk)`);
  }
  if (def.machine === 'q35') {
    // q35's built-in AHCI provides the IDE-compatible buses: six ports shared by ide and sata.
    const ahci = [...def.disks, ...def.cdroms].filter((d) => d.bus === 'ide' || d.bus === 'sata').length;
    if (ahci > 6) problems.push(`the q35 machine's AHCI controller has 6 ports, ${ahci} ide/sata devices are defined`);
  }
  if (problems.length) throw new HangarError('invalid-input', `invalid VM definition: ${problems.join('; ')}`);
}
