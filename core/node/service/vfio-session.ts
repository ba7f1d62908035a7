// Managed host PCI devices across one QEMU run (libvirt's managed='yes'): before QEMU starts,
// the devices and the rest of their IOMMU groups go to vfio-pci; after it is gone, exactly the
// ones Hangar moved go back to their host drivers. What was moved is written to the runtime dir
// before anything is bound, so a crash (of QEMU or the core) still gives them back later.
// As a sidecar it is first in the list: bound before any back end starts, given back last.
import { readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { describeError } from '../../common/errors.ts';
import { isBridge } from '../../common/host-devices.ts';
import { writeFileAtomic } from '../store/atomic-write.ts';
import { checkHostDevices, checkVfioGroupNodes, readMemlock } from '../host/hostdev-checks.ts';
import type { HostDevicePlan } from '../host/hostdev-checks.ts';
import { listPciDevices } from '../host/pci-devices.ts';
import { runHostChange } from '../host/privileged.ts';
import { hostRootsFromEnv } from './host-device-ops.ts';
import type { HostRoots } from './host-device-ops.ts';
import type { Sidecar, SidecarStartContext } from './sidecar.ts';

const BOUND_FILE = 'vfio-bound.json';

interface BoundRecord {
  sysRoot: string;
  /** Devices Hangar moved to vfio-pci for this run, in bind order. */
  addresses: string[];
}

/** Binds the devices a start needs (checkHostDevices' plan), then checks /dev/vfio. */
export async function bindForStart(plan: { bind: string[]; groups: number[] }, roots: HostRoots, runtimeDir: string): Promise<void> {
  if (plan.bind.length) {
    // Every non-bridge member of the groups that is not on vfio-pci yet is moved by the bind.
    const devices = await listPciDevices(roots);
    const moved = new Set<string>();
    for (const addr of plan.bind) {
      const dev = devices.find((d) => d.address === addr);
      for (const m of [addr, ...(dev?.iommuGroupPeers ?? [])]) {
        const member = devices.find((d) => d.address === m);
        if (member && member.driver !== 'vfio-pci' && !isBridge(member)) moved.add(m);
      }
    }
    const record: BoundRecord = { sysRoot: roots.sysRoot, addresses: [...moved] };
    await writeFileAtomic(join(runtimeDir, BOUND_FILE), JSON.stringify(record), 0o600);
    for (const addr of plan.bind) await runHostChange('bind-vfio', [addr], { sysRoot: roots.sysRoot });
  }
  await checkVfioGroupNodes(plan.groups, roots.devRoot);
}

/**
 * Gives back what bindForStart moved (no-op when it moved nothing). Never throws: a device that
 * cannot be given back is named in the returned notes, for the VM's log.
 */
export async function releaseAfterStop(runtimeDir: string): Promise<string[]> {
  const file = join(runtimeDir, BOUND_FILE);
  let record: BoundRecord;
  try {
    record = JSON.parse(await readFile(file, 'utf8')) as BoundRecord;
  } catch {
    return [];
  }
  const notes: string[] = [];
  for (const addr of [...record.addresses].reverse()) {
    try {
      await runHostChange('release-vfio', [addr], { sysRoot: record.sysRoot });
      notes.push(`${addr} given back to its host driver`);
    } catch (e) {
      notes.push(`${addr} could not be given back to the host: ${describeError(e)}`);
    }
  }
  await unlink(file).catch(() => {});
  return notes;
}

/** What the start checks found: the plan its start binds by (checked once, bound once). */
const plans = new WeakMap<SidecarStartContext, { plan: HostDevicePlan; roots: HostRoots }>();

/** Host PCI devices and mdevs: devices on vfio-pci for the run, given back after QEMU is gone. */
export const vfioSidecar: Sidecar = {
  name: 'vfio',
  wanted: (def) => def.hostPci.length > 0 || def.mdevs.length > 0,
  async check(def, ctx) {
    // IOMMU first, then each device's group, locked memory; nothing is bound yet.
    const roots = hostRootsFromEnv();
    const plan = await checkHostDevices(def, { ...roots, assignments: ctx.assignments(), memlock: await readMemlock(roots.procRoot) });
    plans.set(ctx, { plan, roots });
  },
  async start(ctx) {
    const checked = plans.get(ctx);
    if (!checked) throw new Error('vfio: start without check');
    for (const n of checked.plan.notes) await ctx.log(n);
    await bindForStart(checked.plan, checked.roots, ctx.paths.dir);
  },
  async stop(ctx) {
    for (const note of await releaseAfterStop(ctx.paths.dir)) await ctx.log(note);
  },
};
