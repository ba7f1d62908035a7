// The privileged verbs (bind-vfio, set-numvfs ...) turned into plans from a fresh read of sysfs.
// Shared by the in-process root path and bin/hangar-host-helper.mjs, so the privileged side
// always plans from what it reads itself and never runs a plan handed to it.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { HangarError } from '../../common/errors.ts';
import { PCI_ADDRESS_RE } from '../../common/model.ts';
import { listPciDevices } from './pci-devices.ts';
import type { PciIds } from './pci-ids.ts';
import { readQuiet } from './sysfs-read.ts';
import { hugepagePoolAttr, planBindVfio, planCreateMdev, planReleaseVfio, planRemoveMdev, planSetHugepages, planSetKsm, planSetNumVfs, planVfConfig } from './sysfs-plans.ts';
import type { HostOp } from './sysfs-plans.ts';

export const HOST_VERBS = ['bind-vfio', 'release-vfio', 'set-numvfs', 'create-mdev', 'remove-mdev', 'vf-config', 'set-ksm', 'set-hugepages'] as const;
export const HOST_VERB_USAGE = 'bind-vfio ADDR | release-vfio ADDR | set-numvfs PF N | create-mdev PARENT TYPE UUID | remove-mdev UUID | vf-config IFNAME VF [mac=M] [vlan=V] | set-ksm 0|1 | set-hugepages 2M|1G N';

export interface HostPlan {
  /** What the change does, for messages ("binding 0000:01:00.0 ... to vfio-pci"). */
  what: string;
  ops: HostOp[];
  uuid?: string;
}

export interface PlanForOptions {
  /** Default /proc (mounts and swaps: the host-use check). */
  procRoot?: string;
  pciIds?: PciIds;
}

function usage(verb: string, expected: string): never {
  throw new HangarError('invalid-input', `${verb} takes ${expected}`, `usage: ${HOST_VERB_USAGE}`);
}

function count(text: string, what: string): number {
  if (!/^\d{1,5}$/.test(text)) throw new HangarError('invalid-input', `${what} "${text}" is not a whole number`);
  return Number(text);
}

export async function planFor(verb: string, args: string[], sysRoot: string, opts: PlanForOptions = {}): Promise<HostPlan> {
  const devices = () => listPciDevices({ sysRoot, procRoot: opts.procRoot, pciIds: opts.pciIds });
  const device = async (address: string) => {
    if (!PCI_ADDRESS_RE.test(address)) throw new HangarError('invalid-input', `"${address}" is not a PCI address`, 'a PCI address looks like 0000:03:00.0');
    const d = (await devices()).find((x) => x.address === address);
    if (!d) throw new HangarError('not-found', `no PCI device ${address} on this host`, 'see hangar host devices');
    return d;
  };
  switch (verb) {
    case 'bind-vfio': {
      if (args.length !== 1) usage(verb, 'a PCI address');
      const vfioLoaded = existsSync(join(sysRoot, 'bus/pci/drivers/vfio-pci'));
      return { what: `binding ${args[0]} and its IOMMU group to vfio-pci`, ops: planBindVfio(await devices(), args[0], { vfioLoaded }) };
    }
    case 'release-vfio':
      if (args.length !== 1) usage(verb, 'a PCI address');
      return { what: `giving ${args[0]} and its IOMMU group back to their host drivers`, ops: planReleaseVfio(await devices(), args[0]) };
    case 'set-numvfs': {
      if (args.length !== 2) usage(verb, 'a physical function\'s PCI address and a number of VFs');
      const n = count(args[1], 'the number of VFs');
      return { what: `setting ${args[0]} to ${n} virtual functions`, ops: planSetNumVfs(await device(args[0]), n) };
    }
    case 'create-mdev':
      if (args.length !== 3) usage(verb, 'a parent PCI address, an mdev type and a UUID');
      return { what: `creating mdev ${args[2]} of type ${args[1]} on ${args[0]}`, ops: planCreateMdev(await device(args[0]), args[1], args[2]), uuid: args[2] };
    case 'remove-mdev':
      if (args.length !== 1) usage(verb, 'an mdev UUID');
      return { what: `removing mdev ${args[0]}`, ops: planRemoveMdev(args[0]) };
    case 'vf-config': {
      if (args.length < 3) usage(verb, 'an interface, a VF index and mac=M and/or vlan=V');
      const [ifname, vfText, ...settings] = args;
      const cfg: { mac?: string; vlan?: number } = {};
      for (const s of settings) {
        const m = /^(mac|vlan)=(.*)$/.exec(s);
        if (!m) usage(verb, `mac=M or vlan=V, not "${s}"`);
        if (m[1] === 'mac') cfg.mac = m[2];
        else cfg.vlan = count(m[2], 'the VLAN');
      }
      const vf = count(vfText, 'the VF index');
      const ops = planVfConfig(ifname, vf, cfg);
      const numVfs = await readQuiet(join(sysRoot, 'class/net', ifname, 'device/sriov_numvfs'));
      if (!existsSync(join(sysRoot, 'class/net', ifname))) throw new HangarError('not-found', `no network interface ${ifname} on this host`, 'use the physical function\'s interface name (ip link)');
      if (numVfs !== undefined && /^\d+$/.test(numVfs) && vf >= Number(numVfs)) {
        throw new HangarError('invalid-input', `${ifname} has ${numVfs} VFs, so there is no VF ${vf}`, `VFs are numbered 0 to ${Number(numVfs) - 1}`);
      }
      return { what: `configuring VF ${vf} of ${ifname}`, ops };
    }
    case 'set-ksm': {
      if (args.length !== 1 || (args[0] !== '0' && args[0] !== '1')) usage(verb, '1 (run KSM) or 0 (stop it)');
      const now = await readQuiet(join(sysRoot, 'kernel/mm/ksm/run'));
      if (now === undefined) throw new HangarError('host-missing', 'this kernel has no KSM (no /sys/kernel/mm/ksm)', 'use a kernel built with CONFIG_KSM');
      return { what: `${args[0] === '1' ? 'starting' : 'stopping'} KSM`, ops: planSetKsm(now, args[0]) };
    }
    case 'set-hugepages': {
      if (args.length !== 2 || (args[0] !== '2M' && args[0] !== '1G')) usage(verb, 'a huge page size (2M or 1G) and a number of pages');
      const n = count(args[1], 'the number of huge pages');
      const now = await readQuiet(join(sysRoot, hugepagePoolAttr(args[0])));
      if (now === undefined) throw new HangarError('host-missing', `this host has no ${args[0]} huge page pool`, args[0] === '1G' ? 'boot with hugepagesz=1G (the CPU needs pdpe1gb)' : 'use a kernel with huge page support');
      return { what: `setting the ${args[0]} huge page pool to ${n} pages`, ops: planSetHugepages(now, args[0], n) };
    }
    default:
      throw new HangarError('invalid-input', `unknown host change "${verb}"`, `usage: ${HOST_VERB_USAGE}`);
  }
}
