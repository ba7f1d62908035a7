// USB host controllers. qemu-xhci is one USB 3 controller every current OS drives; ich9-ehci is
// the ICH9 USB 2 EHCI with its UHCI companions (full/low-speed devices), for older guests.
import type { UsbDefinition } from '../../../common/model.ts';
import type { PropObject } from '../qemu-option.ts';
import { emptyParts } from './types.ts';
import type { DeviceParts } from './types.ts';

export const USB_CONTROLLER_ID = 'usb0';

/** The bus USB devices plug into. */
export const USB_BUS = `${USB_CONTROLLER_ID}.0`;

export function usbParts(usb: UsbDefinition): DeviceParts {
  const parts = emptyParts();
  if (usb.model === 'qemu-xhci') {
    parts.controllers.push({ driver: 'qemu-xhci', id: USB_CONTROLLER_ID });
    return parts;
  }
  const ehci: PropObject = { driver: 'ich9-usb-ehci1', id: USB_CONTROLLER_ID };
  parts.controllers.push(ehci, ...[1, 2, 3].map((n) => ({
    driver: `ich9-usb-uhci${n}`, id: `${USB_CONTROLLER_ID}-uhci${n}`, masterbus: USB_BUS, firstport: (n - 1) * 2,
  })));
  return parts;
}
