// The screen's server: QEMU's VNC server on a unix socket in the VM's private (0700) runtime dir,
// never a TCP port (the core carries RFB to viewers, `hangar display --listen` to external
// ones). share=force-shared: every viewer shares one session (a viewer asking for exclusive
// access must not throw the others out). With the clipboard on, QEMU's qemu-vdagent chardev
// speaks the spice-vdagent protocol on the virtio-serial port com.redhat.spice.0 and bridges the
// guest's clipboard to the VNC clipboard.
import type { MachineType, VideoDefinition } from '../../../common/model.ts';
import { displayCapabilities } from '../../../common/display.ts';
import { emptyParts } from './types.ts';
import type { DeviceParts } from './types.ts';
import { VIRTIO_SERIAL_ID } from './channel.ts';

export const VDAGENT_CHARDEV_ID = 'ch_vdagent';
export const VDAGENT_PORT_ID = 'vdagent0';
export const VDAGENT_PORT_NAME = 'com.redhat.spice.0';

/** Whether the display needs the virtio-serial controller (the vdagent port sits on it). */
export function displayNeedsVirtioSerial(video: VideoDefinition, machine: MachineType): boolean {
  return displayCapabilities({ video, machine }).clipboard;
}

export function displayParts(video: VideoDefinition, machine: MachineType, vncSocket: string | undefined): DeviceParts {
  const parts = emptyParts();
  const caps = displayCapabilities({ video, machine });
  if (!caps.vnc) return parts;
  if (!vncSocket) throw new Error('a VM with a VNC display needs its VNC socket path');
  parts.options.push({ opt: '-vnc', keyval: { share: 'force-shared' }, implied: `unix:${vncSocket}` });
  if (caps.clipboard) {
    parts.chardevs.push({ opt: '-chardev', implied: 'qemu-vdagent', keyval: { id: VDAGENT_CHARDEV_ID, name: 'vdagent', clipboard: true } });
    parts.devices.push({ driver: 'virtserialport', id: VDAGENT_PORT_ID, bus: `${VIRTIO_SERIAL_ID}.0`, chardev: VDAGENT_CHARDEV_ID, name: VDAGENT_PORT_NAME });
  }
  return parts;
}
