// NICs: a user-mode (slirp) network back end and an emulated or virtio front end.
import type { NicDefinition, NicModel, MachineType } from '../../../common/model.ts';
import { emptyParts } from './types.ts';
import type { BuildContext, DeviceParts } from './types.ts';

const pciDriver: Record<NicModel, string> = {
  'virtio-net': 'virtio-net-pci',
  e1000: 'e1000',
  rtl8139: 'rtl8139',
};

export function nicDriver(model: NicModel, machine: MachineType): string {
  return machine === 'microvm' && model === 'virtio-net' ? 'virtio-net-device' : pciDriver[model];
}

export function netdevId(nic: NicDefinition): string {
  return `${nic.id}-net`;
}

export function nicParts(nic: NicDefinition, ctx: BuildContext): DeviceParts {
  const parts = emptyParts();
  const hostfwd = nic.network.portForwards.map((f) => ({
    str: `${f.protocol}:${f.hostAddress}:${f.hostPort}-:${f.guestPort}`,
  }));
  parts.netdevs.push({ type: 'user', id: netdevId(nic), hostfwd: hostfwd.length ? hostfwd : undefined });
  parts.devices.push({
    driver: nicDriver(nic.model, ctx.machine),
    id: nic.id,
    netdev: netdevId(nic),
    mac: nic.mac,
    bootindex: ctx.bootIndex.get(nic.id),
  });
  return parts;
}
