// Host USB devices given to the guest: QEMU's usb-host (libusb) on the VM's USB controller. By
// vendor:product it follows the device to any port; by hostbus + hostport it takes whatever is
// plugged into that port. A device that is not there (yet) is no error: QEMU waits for it and
// attaches it to the guest when it appears.
import type { UsbHostDefinition } from '../../../common/model.ts';
import type { PropObject } from '../qemu-option.ts';
import { USB_BUS } from './usb.ts';
import { emptyParts } from './types.ts';
import type { DeviceParts } from './types.ts';

/** The usb-host device: vendorid/productid/hostbus are uint32 properties, hostport a string ("1.4"). */
export function usbHostDevice(dev: UsbHostDefinition): PropObject {
  return {
    driver: 'usb-host',
    id: dev.id,
    bus: USB_BUS,
    vendorid: dev.vendorId === undefined ? undefined : parseInt(dev.vendorId, 16),
    productid: dev.productId === undefined ? undefined : parseInt(dev.productId, 16),
    hostbus: dev.hostbus,
    hostport: dev.hostport,
  };
}

export function usbHostParts(dev: UsbHostDefinition): DeviceParts {
  const parts = emptyParts();
  parts.devices.push(usbHostDevice(dev));
  return parts;
}
