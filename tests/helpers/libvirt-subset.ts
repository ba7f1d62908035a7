// The part of a VM definition libvirt's domain XML carries both ways (what writeDomainXml writes
// and readDomainXml reads back), normalized so a definition and its round trip compare equal.
// Hangar-only parts (cloud-init, spare hotplug slots, isolated networks, shutdown policy, disk
// ownership, ...) are left out: writeDomainXml lists them in notCarried instead.
import { topologyGiven, topologyOf } from '../../core/common/cpu-memory.ts';
import type { VmDefinition } from '../../core/common/model.ts';
import { usbControllerOf } from '../../core/node/qemu/vm-argv.ts';

export function sharedSubset(def: VmDefinition, opts: { passt?: boolean } = {}): Record<string, unknown> {
  const c = def.cpu;
  const m = def.memory;
  const memory = m === undefined ? undefined : {
    hugepages: m.hugepages, merge: m.merge, numa: m.numa?.map((n) => ({ cpus: n.cpus, memoryMiB: n.memoryMiB, hostNodes: n.hostNodes, policy: n.hostNodes ? (n.policy ?? 'bind') : undefined })),
    numaDistances: m.numaDistances,
    ...(m.numa?.length && m.hotplug !== 'virtio-mem' ? { maxMiB: m.maxMiB, slots: m.maxMiB === undefined ? undefined : (m.slots ?? 16) } : {}),
  };
  const memoryDefaults = memory === undefined || (memory.hugepages === undefined && memory.merge && !memory.numa?.length);
  return JSON.parse(JSON.stringify({
    id: def.id, name: def.name, description: def.description, machine: def.machine,
    accel: def.accel === 'auto' ? undefined : def.accel,
    memoryMiB: def.memoryMiB, memory: memoryDefaults ? undefined : memory,
    cpu: {
      model: c.model, vcpus: c.vcpus, maxVcpus: c.maxVcpus !== undefined && c.maxVcpus !== c.vcpus ? c.maxVcpus : undefined, features: c.features?.length ? c.features : undefined,
      topology: topologyGiven(c) ? topologyOf(c) : undefined,
      pinning: c.pinning,
    },
    firmware: def.firmware, boot: { order: def.boot.order, kernel: def.boot.kernel },
    // libvirt keeps disks sorted by bus and target name: their order is its own.
    disks: def.disks.filter((d) => d.format !== 'vhdx').map((d) => ({
      id: d.id, file: d.file, format: d.format, bus: d.bus === 'vhost-user-blk' ? 'virtio-blk' : d.bus, cache: d.cache, readOnly: d.readOnly, aio: d.aio, discard: d.discard, iothread: d.iothread,
    })).sort((a, b) => a.id.localeCompare(b.id)),
    cdroms: def.cdroms.map((cd) => ({ id: cd.id, bus: cd.bus, file: cd.file })).sort((a, b) => a.id.localeCompare(b.id)),
    nics: def.nics.filter((n) => n.network.type !== 'isolated').map((n) => {
      const net = n.network;
      const network = net.type === 'user' || (net.type === 'passt' && !opts.passt) ? { type: 'user', portForwards: [] } : net;
      return { id: n.id, model: n.model, mac: n.mac, network };
    }),
    serial: def.serial, serialPorts: def.serialPorts, channels: def.channels, inputs: def.inputs, video: def.video,
    sound: def.sound, watchdog: def.watchdog, rng: def.rng, balloon: def.balloon, tpm: def.tpm, usb: usbControllerOf(def),
    shares: def.shares, vsock: def.vsock, hostPci: def.hostPci, mdevs: def.mdevs.map((x) => ({ id: x.id, uuid: x.uuid })),
    hostUsb: def.hostUsb.filter((u) => u.vendorId !== undefined && u.productId !== undefined).map((u) => ({ id: u.id, vendorId: u.vendorId, productId: u.productId })),
  })) as Record<string, unknown>;
}
