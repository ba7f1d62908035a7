// A fake kernel for sysfs writes: applies what Linux does when the host helper writes an
// attribute (driver binding, SR-IOV VF creation, mdev create/remove) to a temporary copy of a
// fixture tree, so plans can be run end to end and the result read back with listPciDevices.

import { execFileSync } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, readdir, readlink, realpath, rename, rm, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';

const FIXTURES = join(import.meta.dirname, '../fixtures');

export interface FixtureCopy {
  /** The temporary directory holding sys/ and proc/. */
  dir: string;
  sysRoot: string;
  procRoot: string;
  cleanup: () => Promise<void>;
}

/**
 * Copies a fixture pair (cp -a: the tree is made of symlinks) and adds the write-only attributes
 * the committed tree leaves out: driver_override on every device, drivers_probe, mdev create files.
 */
export async function copyFixture(name = 'workstation'): Promise<FixtureCopy> {
  // tmpfs when there is one: copying ~900 small files to a disk-backed /tmp takes a second.
  const base = (await access('/dev/shm', constants.W_OK).then(() => true, () => false)) ? '/dev/shm' : tmpdir();
  const dir = await mkdtemp(join(base, 'hangar-sysfs-'));
  execFileSync('cp', ['-a', join(FIXTURES, 'sysfs', name), join(dir, 'sys')]);
  execFileSync('cp', ['-a', join(FIXTURES, 'proc', name), join(dir, 'proc')]);
  const sysRoot = join(dir, 'sys');
  for (const addr of await readdir(join(sysRoot, 'bus/pci/devices'))) {
    const dev = join(sysRoot, 'bus/pci/devices', addr);
    await writeFile(join(dev, 'driver_override'), '(null)\n');
    for (const t of await readdir(join(dev, 'mdev_supported_types')).catch(() => [])) {
      await writeFile(join(dev, 'mdev_supported_types', t, 'create'), '');
    }
  }
  await writeFile(join(sysRoot, 'bus/pci/drivers_probe'), '');
  await mkdir(join(sysRoot, 'bus/mdev/devices'), { recursive: true });
  return { dir, sysRoot, procRoot: join(dir, 'proc'), cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Every file's content and every link's target under a directory, to prove nothing changed. */
export async function snapshotTree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const key = relative(dir, p);
      if (e.isSymbolicLink()) out[key] = `-> ${await readlink(p)}`;
      else if (e.isDirectory()) await walk(p);
      else out[key] = await readFile(p, 'utf8');
    }
  };
  await walk(dir);
  return out;
}

function kernelError(code: string, message: string): Error {
  return Object.assign(new Error(`${code}: ${message}`), { code });
}

interface StashedVf {
  pf: string;
  index: number;
  address: string;
  group: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class FakeKernel {
  /** Every write, as "relative/path <- value". */
  readonly log: string[] = [];
  private readonly hostDrivers = new Map<string, string | undefined>();
  private readonly stash: StashedVf[] = [];
  private ready: Promise<void>;

  constructor(readonly sysRoot: string) {
    this.ready = this.init();
  }

  /** The drivers the host would bind on probe: what was bound at the start (vfio-pci is not a host driver). */
  private async init(): Promise<void> {
    for (const addr of await readdir(join(this.sysRoot, 'bus/pci/devices'))) {
      const drv = await this.driverOf(addr);
      this.hostDrivers.set(addr, drv === 'vfio-pci' ? undefined : drv);
    }
  }

  readonly writer = async (path: string, value: string): Promise<void> => {
    await this.ready;
    const rel = relative(this.sysRoot, path);
    this.log.push(`${rel} <- ${JSON.stringify(value)}`);
    const s = rel.split('/');
    const v = value.replace(/\n$/, '');
    if (s[0] === 'bus' && s[1] === 'pci' && s[2] === 'devices') {
      if (s[4] === 'driver_override' && s.length === 5) return writeFile(path, v ? `${v}\n` : '(null)\n');
      if (s[4] === 'sriov_numvfs' && s.length === 5) return this.setNumVfs(s[3], v);
      if (s[4] === 'mdev_supported_types' && s[6] === 'create' && s.length === 7) return this.createMdev(s[3], s[5], v);
    }
    if (s[0] === 'bus' && s[1] === 'pci' && s[2] === 'drivers' && s.length === 5) {
      if (s[4] === 'unbind') return this.unbind(s[3], v);
      if (s[4] === 'bind') return this.bind(s[3], v);
    }
    if (rel === 'bus/pci/drivers_probe') return this.probe(v);
    if (s[0] === 'bus' && s[1] === 'mdev' && s[2] === 'devices' && s[4] === 'remove' && s.length === 5) return this.removeMdev(s[3], v);
    throw kernelError('EINVAL', `fake kernel does not handle ${rel}`);
  };

  private devPath(addr: string): Promise<string> {
    return realpath(join(this.sysRoot, 'bus/pci/devices', addr)).catch(() => { throw kernelError('ENODEV', `no device ${addr}`); });
  }

  private async driverOf(addr: string): Promise<string | undefined> {
    const t = await readlink(join(this.sysRoot, 'bus/pci/devices', addr, 'driver')).catch(() => undefined);
    return t ? basename(t) : undefined;
  }

  private async link(addr: string, driver: string): Promise<void> {
    const dev = await this.devPath(addr);
    const drvDir = join(await realpath(this.sysRoot), 'bus/pci/drivers', driver);
    await symlink(relative(dev, drvDir), join(dev, 'driver'));
    await symlink(relative(drvDir, dev), join(drvDir, addr));
  }

  private async unbind(driver: string, addr: string): Promise<void> {
    if ((await this.driverOf(addr)) !== driver) throw kernelError('ENODEV', `${addr} is not bound to ${driver}`);
    await unlink(join(await this.devPath(addr), 'driver'));
    await unlink(join(this.sysRoot, 'bus/pci/drivers', driver, addr));
  }

  private async bind(driver: string, addr: string): Promise<void> {
    if (await this.driverOf(addr)) throw kernelError('EBUSY', `${addr} already has a driver`);
    await this.link(addr, driver);
  }

  /** Like the kernel: driver_override wins; without it the host driver matching the ids binds. */
  private async probe(addr: string): Promise<void> {
    const dev = await this.devPath(addr);
    if (await this.driverOf(addr)) return;
    const override = (await readFile(join(dev, 'driver_override'), 'utf8')).trim();
    const target = override && override !== '(null)' ? override : this.hostDrivers.get(addr);
    if (target && (await stat(join(this.sysRoot, 'bus/pci/drivers', target)).catch(() => null))) await this.link(addr, target);
  }

  private async setNumVfs(pf: string, value: string): Promise<void> {
    const dev = await this.devPath(pf);
    const n = Number(value);
    const total = Number((await readFile(join(dev, 'sriov_totalvfs'), 'utf8')).trim());
    const current = Number((await readFile(join(dev, 'sriov_numvfs'), 'utf8')).trim());
    if (!/^\d+$/.test(value)) throw kernelError('EINVAL', `sriov_numvfs: ${value}`);
    if (n > total) throw kernelError('ERANGE', `${n} > sriov_totalvfs ${total}`);
    if (n === current) return;
    // Linux: "n VFs already enabled. Disable before enabling m VFs".
    if (current > 0 && n > 0) throw kernelError('EBUSY', `${current} VFs already enabled`);
    if (n === 0) await this.removeVfs(pf, dev);
    else await this.createVfs(pf, dev, n);
    await writeFile(join(dev, 'sriov_numvfs'), `${n}\n`);
  }

  private stashDir(): string {
    return join(dirname(this.sysRoot), '.fake-kernel-vfs');
  }

  private async removeVfs(pf: string, pfDir: string): Promise<void> {
    await mkdir(this.stashDir(), { recursive: true });
    for (const name of (await readdir(pfDir)).filter((n) => /^virtfn\d+$/.test(n))) {
      const vfDir = await realpath(join(pfDir, name));
      const address = basename(vfDir);
      const driver = await this.driverOf(address);
      if (driver) await unlink(join(this.sysRoot, 'bus/pci/drivers', driver, address));
      const group = basename(await readlink(join(vfDir, 'iommu_group')));
      await unlink(join(this.sysRoot, 'kernel/iommu_groups', group, 'devices', address));
      await unlink(join(this.sysRoot, 'bus/pci/devices', address));
      await unlink(join(pfDir, name));
      await rename(vfDir, join(this.stashDir(), address));
      this.stash.push({ pf, index: Number(name.slice(6)), address, group });
    }
  }

  /** New VFs come back from the stash (the fixture's own VFs are the templates), probed by their host driver. */
  private async createVfs(pf: string, pfDir: string, n: number): Promise<void> {
    const root = await realpath(this.sysRoot);
    for (let i = 0; i < n; i++) {
      const k = this.stash.findIndex((x) => x.pf === pf && x.index === i);
      if (k < 0) throw kernelError('ENOMEM', `fake kernel has no template for VF ${i} of ${pf}`);
      const [vf] = this.stash.splice(k, 1);
      const vfDir = join(dirname(pfDir), vf.address);
      await rename(join(this.stashDir(), vf.address), vfDir);
      await unlink(join(vfDir, 'driver')).catch(() => undefined);
      await writeFile(join(vfDir, 'driver_override'), '(null)\n');
      await symlink(relative(join(root, 'bus/pci/devices'), vfDir), join(root, 'bus/pci/devices', vf.address));
      await symlink(relative(join(root, 'kernel/iommu_groups', vf.group, 'devices'), vfDir), join(root, 'kernel/iommu_groups', vf.group, 'devices', vf.address));
      await symlink(`../${vf.address}`, join(pfDir, `virtfn${i}`));
      const driver = this.hostDrivers.get(vf.address);
      if (driver) await this.link(vf.address, driver);
    }
  }

  private async createMdev(parent: string, type: string, uuid: string): Promise<void> {
    if (!UUID.test(uuid)) throw kernelError('EINVAL', `bad UUID ${uuid}`);
    const root = await realpath(this.sysRoot);
    const parentDir = await this.devPath(parent);
    const typeDir = join(parentDir, 'mdev_supported_types', type);
    const avail = Number((await readFile(join(typeDir, 'available_instances'), 'utf8')).trim());
    if (avail <= 0) throw kernelError('ENOSPC', `no instances of ${type} left`);
    if (await stat(join(root, 'bus/mdev/devices', uuid)).catch(() => null)) throw kernelError('EEXIST', `${uuid} exists`);
    const groups = (await readdir(join(root, 'kernel/iommu_groups'))).map(Number).filter(Number.isInteger);
    const group = join(root, 'kernel/iommu_groups', String(Math.max(...groups) + 1));
    const dir = join(parentDir, uuid);
    await mkdir(dir);
    await mkdir(join(group, 'devices'), { recursive: true });
    await writeFile(join(dir, 'remove'), '');
    await symlink(relative(dir, typeDir), join(dir, 'mdev_type'));
    await symlink(relative(dir, group), join(dir, 'iommu_group'));
    await symlink(relative(join(group, 'devices'), dir), join(group, 'devices', uuid));
    await symlink(relative(join(root, 'bus/mdev/devices'), dir), join(root, 'bus/mdev/devices', uuid));
    await symlink(relative(join(typeDir, 'devices'), dir), join(typeDir, 'devices', uuid));
    await writeFile(join(typeDir, 'available_instances'), `${avail - 1}\n`);
  }

  private async removeMdev(uuid: string, value: string): Promise<void> {
    if (value !== '1') throw kernelError('EINVAL', `remove takes 1, not ${value}`);
    const root = await realpath(this.sysRoot);
    const dir = await realpath(join(root, 'bus/mdev/devices', uuid));
    const typeDir = await realpath(join(dir, 'mdev_type'));
    const group = await realpath(join(dir, 'iommu_group'));
    await rm(group, { recursive: true });
    await unlink(join(typeDir, 'devices', uuid));
    await unlink(join(root, 'bus/mdev/devices', uuid));
    await rm(dir, { recursive: true });
    const avail = Number((await readFile(join(typeDir, 'available_instances'), 'utf8')).trim());
    await writeFile(join(typeDir, 'available_instances'), `${avail + 1}\n`);
  }
}
