// Input devices: USB HID (emulated, any OS), virtio-input (paravirtual), or PS/2 (the i8042
// keyboard controller pc and q35 always have: nothing to add). A tablet reports absolute
// positions, so the pointer follows the host's without grabbing.
import type { InputDefinition, MachineType } from '../../../common/model.ts';
import { USB_BUS } from './usb.ts';
import { emptyParts } from './types.ts';
import type { DeviceParts } from './types.ts';

const usbDriver = { tablet: 'usb-tablet', keyboard: 'usb-kbd', mouse: 'usb-mouse' } as const;
const virtioDriver = { tablet: 'virtio-tablet', keyboard: 'virtio-keyboard', mouse: 'virtio-mouse' } as const;

export function inputParts(input: InputDefinition, machine: MachineType): DeviceParts {
  const parts = emptyParts();
  if (input.bus === 'usb') parts.devices.push({ driver: usbDriver[input.type], id: input.id, bus: USB_BUS });
  else if (input.bus === 'virtio') parts.devices.push({ driver: `${virtioDriver[input.type]}-${machine === 'microvm' ? 'device' : 'pci'}`, id: input.id });
  return parts;
}
