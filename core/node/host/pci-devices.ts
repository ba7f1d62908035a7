// Host PCI device discovery from sysfs: what `lspci -vk` shows plus what device assignment
// needs (IOMMU groups, reset, SR-IOV, mdev types, and whether the host itself depends on the
// device). Pure data: nothing here binds, unbinds or writes. The sysfs and procfs roots are
// parameters so every rule is tested against fixture trees (tests/fixtures/sysfs).

import type { Dirent } from 'node:fs';
import { readdir, readlink, realpath } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pciIdsAt } from './pci-ids.ts';
import type { PciIds } from './pci-ids.ts';
import type { MdevType, PciDevice, PciReset } from '../../common/host-devices.ts';
import { listDir, listNames, readAttr, readHexIdAttr, readIntAttr, readLinkTarget, readQuiet } from './sysfs-read.ts';

export type { MdevType, PciClass, PciDevice, PciReset, PciSriov } from '../../common/host-devices.ts';

export interface ListPciDevicesOptions {
  /** Default /sys. */
  sysRoot?: string;
  /** Default /proc: mounts and swaps, for the storage in-use check. */
  procRoot?: string;
  /** Default: the system pci.ids, parsed once per process. */
  pciIds?: PciIds;
}

const PCI_ADDRESS = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/i;

/** Every PCI device under <sysRoot>/bus/pci/devices, sorted by address. Never throws. */
export async function listPciDevices(opts: ListPciDevicesOptions = {}): Promise<PciDevice[]> {
  const sysRoot = opts.sysRoot ?? '/sys';
  const ctx: Context = {
    sysRoot,
    pciIds: opts.pciIds ?? pciIdsAt(),
    hostStorage: loadHostStorage(opts.procRoot ?? '/proc'),
    groups: new Map(),
  };
  // A host without PCI (some containers, non-PCI boards) simply has no devices.
  const names = (await listNames(join(sysRoot, 'bus/pci/devices'), [])).filter((n) => PCI_ADDRESS.test(n));
  return Promise.all(names.map((n) => readPciDevice(ctx, n)));
}

interface Context {
  sysRoot: string;
  pciIds: PciIds;
  hostStorage: Promise<HostStorage>;
  /** IOMMU group number -> members, read once per listing. */
  groups: Map<number, Promise<string[]>>;
}

async function readPciDevice(ctx: Context, address: string): Promise<PciDevice> {
  const dir = join(ctx.sysRoot, 'bus/pci/devices', address);
  const problems: string[] = [];
  const attr = (name: string) => join(dir, name);

  const vendorId = await readHexIdAttr(attr('vendor'), problems);
  const deviceId = await readHexIdAttr(attr('device'), problems);
  const subsystemVendorId = await readHexIdAttr(attr('subsystem_vendor'), problems, 4, {});
  const subsystemDeviceId = await readHexIdAttr(attr('subsystem_device'), problems, 4, {});
  const classCode = await readHexIdAttr(attr('class'), problems, 6);

  const dev: PciDevice = {
    address,
    vendorId,
    deviceId,
    subsystemVendorId,
    subsystemDeviceId,
    iommuGroupPeers: [],
    bootVga: false,
    mdevTypes: [],
    inUseByHost: [],
    problems,
  };
  if (vendorId) dev.vendorName = await ctx.pciIds.vendorName(vendorId);
  if (vendorId && deviceId) dev.deviceName = await ctx.pciIds.deviceName(vendorId, deviceId);
  if (vendorId && deviceId && subsystemVendorId && subsystemDeviceId) {
    dev.subsystemName = await ctx.pciIds.subsystemName(vendorId, deviceId, subsystemVendorId, subsystemDeviceId);
  }
  if (classCode) {
    dev.class = {
      code: classCode, classId: classCode.slice(0, 2), subclassId: classCode.slice(2, 4), progIf: classCode.slice(4, 6),
      ...(await ctx.pciIds.classNames(classCode)),
    };
  }

  dev.driver = (await readLinkTarget(attr('driver'), problems))?.name;
  // The kernel shows an unset override as "(null)"; kernels without the attribute have none.
  const override = await readAttr(attr('driver_override'), problems);
  if (override && override !== '(null)') dev.driverOverride = override;

  const group = await readLinkTarget(attr('iommu_group'), problems);
  if (group) {
    const n = Number(group.name);
    if (Number.isInteger(n) && n >= 0) {
      dev.iommuGroup = n;
      dev.iommuGroupPeers = (await groupMembers(ctx, n, problems)).filter((m) => m !== address);
    } else {
      problems.push(`${attr('iommu_group')} points to ${group.name}, not a group number`);
    }
  }

  dev.numaNode = await readIntAttr(attr('numa_node'), problems);
  dev.reset = await readReset(dir, problems);
  dev.bootVga = (await readAttr(attr('boot_vga'), problems)) === '1';

  const totalVfs = await readIntAttr(attr('sriov_totalvfs'), problems);
  if (totalVfs !== undefined) {
    dev.sriov = { totalVfs, numVfs: await readIntAttr(attr('sriov_numvfs'), problems, { required: true }), vfs: await virtualFunctions(dir, problems) };
  }
  dev.physfn = (await readLinkTarget(attr('physfn'), problems))?.name;
  dev.mdevTypes = await readMdevTypes(join(dir, 'mdev_supported_types'), problems);
  dev.inUseByHost = await hostUse(ctx, dev, dir);
  return dev;
}

async function groupMembers(ctx: Context, group: number, problems: string[]): Promise<string[]> {
  let members = ctx.groups.get(group);
  if (!members) {
    // Problems listing the group are recorded for the first device that asks.
    members = listNames(join(ctx.sysRoot, 'kernel/iommu_groups', String(group), 'devices'), problems, { required: true });
    ctx.groups.set(group, members);
  }
  return members;
}

async function readReset(dir: string, problems: string[]): Promise<PciReset | undefined> {
  const methodsFile = join(dir, 'reset_method');
  const before = problems.length;
  const text = await readAttr(methodsFile, problems);
  if (text !== undefined) {
    const methods = text.split(/\s+/).filter(Boolean);
    return { supported: methods.length > 0, methods, flr: methods.includes('flr') };
  }
  if (problems.length > before) return undefined;
  // Older kernels have no reset_method; the `reset` attribute exists only when some reset works.
  const hasReset = (await listNames(dir, [])).includes('reset');
  return { supported: hasReset, methods: [] };
}

async function virtualFunctions(dir: string, problems: string[]): Promise<string[]> {
  const links = (await listNames(dir, problems))
    .map((n) => /^virtfn(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .sort((a, b) => Number(a[1]) - Number(b[1]));
  const vfs: string[] = [];
  for (const m of links) {
    const target = await readLinkTarget(join(dir, m[0]), problems);
    if (target) vfs.push(target.name);
  }
  return vfs;
}

async function readMdevTypes(dir: string, problems: string[]): Promise<MdevType[]> {
  const types: MdevType[] = [];
  for (const id of await listNames(dir, problems)) {
    const t = join(dir, id);
    types.push({
      id,
      name: await readAttr(join(t, 'name'), problems),
      availableInstances: await readIntAttr(join(t, 'available_instances'), problems, { required: true }),
      deviceApi: await readAttr(join(t, 'device_api'), problems),
      description: await readAttr(join(t, 'description'), problems),
    });
  }
  return types;
}

// ---------------------------------------------------------------------------------------------
// In use by the host
// ---------------------------------------------------------------------------------------------

interface HostStorage {
  /** Device node (e.g. /dev/sda1) -> mount points. */
  mounts: Map<string, string[]>;
  /** Device nodes in use as swap. */
  swaps: Set<string>;
  /** Why mounts could not be read; undefined when they were. */
  problem?: string;
}

/** Undo the octal escapes /proc/mounts uses for spaces, tabs, newlines and backslashes. */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

async function loadHostStorage(procRoot: string): Promise<HostStorage> {
  const storage: HostStorage = { mounts: new Map(), swaps: new Set() };
  const mountsFile = join(procRoot, 'mounts');
  const mounts = await readQuiet(mountsFile);
  if (mounts === undefined) storage.problem = `cannot read ${mountsFile}: mounted storage not checked`;
  for (const line of (mounts ?? '').split('\n')) {
    const [source, target] = line.split(/\s+/);
    if (!source?.startsWith('/dev/') || !target) continue;
    const list = storage.mounts.get(source) ?? [];
    list.push(unescapeMountField(target));
    storage.mounts.set(source, list);
  }
  // No swaps file just means no swap information; not worth a problem.
  for (const line of ((await readQuiet(join(procRoot, 'swaps'))) ?? '').split('\n').slice(1)) {
    const source = line.split(/\s+/)[0];
    if (source?.startsWith('/dev/')) storage.swaps.add(unescapeMountField(source));
  }
  return storage;
}

interface FoundChild {
  kind: 'net' | 'block';
  name: string;
  path: string;
}

// Sub-directories that never hold network or block devices but can be large.
const SKIP_DIRS = new Set(['power', 'msi_irqs', 'mdev_supported_types', 'queue', 'mq', 'trace', 'holders', 'slaves', 'statistics', 'queues', 'integrity']);
const MAX_DEPTH = 10;

/**
 * Network interfaces and block devices that hang below the device in sysfs (e.g.
 * <dev>/net/eth0, <dev>/virtio0/net/eth0, <dev>/ata1/host0/.../block/sda, <dev>/nvme/nvme0/nvme0n1).
 * Symlinks are not followed (sysfs is full of cycles) and child PCI functions behind a bridge
 * are skipped: they are listed as devices of their own.
 */
async function childDevices(dir: string, depth = 0, parentName = '', parentIsBlock = false): Promise<FoundChild[]> {
  if (depth > MAX_DEPTH) return [];
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const found: FoundChild[] = [];
  for (const e of entries) {
    if (!e.isDirectory() || SKIP_DIRS.has(e.name) || PCI_ADDRESS.test(e.name)) continue;
    const path = join(dir, e.name);
    // The subsystem link says what a device directory is; the parent's name (net/, block/) and
    // a partition's `partition` file are fallbacks for trees without those links.
    const subsystem = await readlink(join(path, 'subsystem')).then((t) => basename(t), () => undefined);
    const isPartition = parentIsBlock && (await readQuiet(join(path, 'partition'))) !== undefined;
    const kind = subsystem === 'net' || (subsystem === undefined && parentName === 'net') ? 'net'
      : subsystem === 'block' || isPartition || (subsystem === undefined && parentName === 'block') ? 'block' : undefined;
    if (kind) found.push({ kind, name: e.name, path });
    if (kind !== 'net') found.push(...(await childDevices(path, depth + 1, e.name, kind === 'block')));
  }
  return found;
}

async function hostUse(ctx: Context, dev: PciDevice, dir: string): Promise<string[]> {
  const reasons: string[] = [];
  if (dev.bootVga) reasons.push('boot VGA: the host console is displayed on it');
  let real: string;
  try {
    real = await realpath(dir);
  } catch {
    return reasons;
  }
  const children = await childDevices(real);
  for (const c of children.filter((x) => x.kind === 'net')) {
    const state = await readQuiet(join(c.path, 'operstate'));
    if (state === 'up') reasons.push(`network interface ${c.name} is up`);
  }
  const blocks = children.filter((x) => x.kind === 'block');
  if (blocks.length === 0) return reasons;
  const storage = await ctx.hostStorage;
  if (storage.problem) dev.problems.push(storage.problem);
  for (const b of blocks) reasons.push(...(await blockUse(storage, b.name, b.path, [])));
  return reasons;
}

/** Mounts and swap on a block device, or on what is stacked on it (LVM, dm-crypt: holders/). */
async function blockUse(storage: HostStorage, name: string, path: string, via: string[]): Promise<string[]> {
  const reasons: string[] = [];
  const nodes = [`/dev/${name}`];
  const dmName = await readQuiet(join(path, 'dm', 'name'));
  if (dmName) nodes.push(`/dev/mapper/${dmName}`);
  const shown = dmName ? `/dev/mapper/${dmName}` : name;
  const label = via.length === 0 ? `block device ${name}` : `block device ${via[0]} (through ${[...via.slice(1), shown].join(', ')})`;
  for (const node of nodes) {
    for (const mp of storage.mounts.get(node) ?? []) reasons.push(`${label} is mounted at ${mp}`);
    if (storage.swaps.has(node)) reasons.push(`${label} is in use as swap`);
  }
  if (via.length < 4) {
    for (const h of await listDir(join(path, 'holders'), [])) {
      reasons.push(...(await blockUse(storage, h.name, join(path, 'holders', h.name), [...via, name])));
    }
  }
  return reasons;
}
