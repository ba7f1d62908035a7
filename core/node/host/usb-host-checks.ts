// Start-time checks for host USB devices. A device that is not plugged in is no error (QEMU's
// usb-host waits and attaches it when it appears): that is a note. A device that is there but
// whose /dev/bus/usb node this user cannot open would be silently left out by QEMU (libusb
// "Access denied" in its log, nothing in the guest): that is refused, with the udev fix.
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { HangarError } from '../../common/errors.ts';
import type { UsbDevice } from '../../common/host-devices.ts';
import { usbHostLabel } from '../../common/device-rows.ts';
import type { UsbHostDefinition, VmDefinition } from '../../common/model.ts';
import { listUsbDevices } from './usb-devices.ts';

export interface UsbHostCheckOptions {
  /** Default /sys. */
  sysRoot?: string;
  /** Default /dev. */
  devRoot?: string;
  /** Default: this process's; root opens every node. */
  uid?: number;
  /** Whether this user may open a device node read-write (default: access(2)). */
  canOpen?: (node: string) => Promise<boolean>;
}

const accessRw = (node: string): Promise<boolean> => access(node, constants.R_OK | constants.W_OK).then(() => true, () => false);

/** The host devices a usb-host entry takes: by vendor:product (any port) and/or by bus + port. */
export function matchingUsbDevices(u: UsbHostDefinition, devices: readonly UsbDevice[]): UsbDevice[] {
  return devices.filter((d) => !d.isRootHub
    && (u.vendorId === undefined || d.vendorId === u.vendorId) && (u.productId === undefined || d.productId === u.productId)
    && (u.hostbus === undefined || d.busnum === u.hostbus) && (u.hostport === undefined || d.portPath === u.hostport));
}

/** Returns notes for the VM's log (devices not plugged in); throws for a device QEMU could not open. */
export async function checkUsbHostDevices(def: VmDefinition, opts: UsbHostCheckOptions = {}): Promise<string[]> {
  if (def.hostUsb.length === 0) return [];
  const devices = await listUsbDevices({ sysRoot: opts.sysRoot ?? '/sys' });
  const uid = opts.uid ?? process.getuid?.() ?? 0;
  const notes: string[] = [];
  for (const u of def.hostUsb) {
    const found = matchingUsbDevices(u, devices);
    if (found.length === 0) {
      notes.push(`USB host device ${u.id} (${usbHostLabel(u)}) is not plugged in: the guest gets it when it appears`);
      continue;
    }
    if (uid === 0) continue;
    for (const d of found) {
      if (d.busnum === undefined || d.devnum === undefined) continue;
      const node = join(opts.devRoot ?? '/dev', 'bus/usb', String(d.busnum).padStart(3, '0'), String(d.devnum).padStart(3, '0'));
      if (!(await (opts.canOpen ?? accessRw)(node))) {
        const rule = `SUBSYSTEM=="usb", ATTRS{idVendor}=="${d.vendorId}", ATTRS{idProduct}=="${d.productId}", MODE="0660", TAG+="uaccess"`;
        throw new HangarError('permission', `cannot start VM "${def.name}": USB host device ${u.id} (${usbHostLabel(u)}) is ${node}, which this user cannot open, so QEMU would leave it out`,
          `as root, add a udev rule: echo '${rule}' > /etc/udev/rules.d/70-hangar-usb.rules && udevadm control --reload && udevadm trigger (then replug the device)`,
          { commands: [`echo '${rule}' > /etc/udev/rules.d/70-hangar-usb.rules`, 'udevadm control --reload', 'udevadm trigger'] });
      }
    }
  }
  return notes;
}
