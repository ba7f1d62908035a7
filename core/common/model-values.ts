// Plain values of the VM model that need no schema library: the CLI's start-up path imports
// these without loading zod (model.ts re-exports them for everyone else).
import type { NetworkDefinition, PortForward } from './model.ts';

export const hugepageSizes = ['2M', '1G'] as const;
export const numaPolicies = ['bind', 'preferred', 'interleave'] as const;
/** How memory is added to (and, with virtio-mem, taken from) a running guest. */
export const memoryHotplugMethods = ['dimm', 'virtio-mem'] as const;

/** A NIC back end's port forwards (a bridged NIC has none: the guest is on the bridge's LAN). */
export function portForwardsOf(net: NetworkDefinition): PortForward[] {
  return net.type === 'user' || net.type === 'passt' ? net.portForwards : [];
}
