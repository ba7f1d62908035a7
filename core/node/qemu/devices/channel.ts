// virtio-serial channels: one virtio-serial controller and a named port per channel, each on a
// unix socket QEMU serves in the VM's runtime dir (a host program, e.g. a guest agent client,
// connects to it). The guest sees /dev/vportNpM and /sys/class/virtio-ports/*/name.
import type { ChannelDefinition, MachineType } from '../../../common/model.ts';
import { emptyParts } from './types.ts';
import type { DeviceParts } from './types.ts';

export const VIRTIO_SERIAL_ID = 'vser0';

export function channelChardevId(ch: ChannelDefinition): string {
  return `${ch.id}-chardev`;
}

/** The one virtio-serial controller (channels and the display's vdagent port share it). */
export function virtioSerialParts(machine: MachineType): DeviceParts {
  const parts = emptyParts();
  parts.controllers.push({ driver: machine === 'microvm' ? 'virtio-serial-device' : 'virtio-serial-pci', id: VIRTIO_SERIAL_ID });
  return parts;
}

/** All channels of a VM, on the controller of virtioSerialParts; socketOf gives each channel's socket path. */
export function channelParts(channels: readonly ChannelDefinition[], socketOf: (index: number) => string): DeviceParts {
  const parts = emptyParts();
  channels.forEach((ch, i) => {
    // Server without wait: the guest can run (and write, into the void) with nobody connected.
    parts.chardevs.push({ opt: '-chardev', implied: 'socket', keyval: { id: channelChardevId(ch), path: socketOf(i), server: true, wait: false } });
    parts.devices.push({ driver: 'virtserialport', id: ch.id, bus: `${VIRTIO_SERIAL_ID}.0`, chardev: channelChardevId(ch), name: ch.name });
  });
  return parts;
}
