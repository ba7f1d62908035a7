// Mediated device instances (<sysRoot>/bus/mdev/devices/UUID): each is a directory below its
// parent PCI device, with an mdev_type link to the type it was made from. Never throws.
import { realpath } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { MdevInstance } from '../../common/host-devices.ts';
import { listNames, readLinkTarget } from './sysfs-read.ts';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export async function listMdevInstances(sysRoot = '/sys'): Promise<MdevInstance[]> {
  const dir = join(sysRoot, 'bus/mdev/devices');
  const out: MdevInstance[] = [];
  for (const uuid of (await listNames(dir, [])).filter((n) => UUID_RE.test(n))) {
    const real = await realpath(join(dir, uuid)).catch(() => undefined);
    if (!real) continue; // a dangling link: the instance is being removed
    const type = (await readLinkTarget(join(real, 'mdev_type'), []))?.name;
    out.push({ uuid, parent: basename(dirname(real)), ...(type ? { type } : {}) });
  }
  return out.sort((a, b) => a.parent.localeCompare(b.parent) || a.uuid.localeCompare(b.uuid));
}
