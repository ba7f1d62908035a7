// Host USB devices from sysfs (<sysRoot>/bus/usb/devices), as `lsusb` lists them, with what
// QEMU's usb-host needs to pick one: vendor:product, or bus + port path (hostbus/hostport).

import { join } from 'node:path';
import { usbIdsAt } from './usb-ids.ts';
import type { UsbIds } from './usb-ids.ts';
import type { UsbDevice } from '../../common/host-devices.ts';
import { listNames, readAttr, readHexIdAttr, readIntAttr } from './sysfs-read.ts';

export type { UsbDevice } from '../../common/host-devices.ts';

export interface ListUsbDevicesOptions {
  /** Default /sys. */
  sysRoot?: string;
  /** Default: the system usb.ids, parsed once per process. */
  usbIds?: UsbIds;
}

// "usb3" (root hub) or "3-1.4.2" (device); interfaces ("3-1.4:1.0") are not devices.
const USB_DEVICE_NAME = /^(?:usb\d+|\d+-\d+(?:\.\d+)*)$/;

/** USB devices (hubs included, interfaces skipped), sorted by bus and port path. Never throws. */
export async function listUsbDevices(opts: ListUsbDevicesOptions = {}): Promise<UsbDevice[]> {
  const sysRoot = opts.sysRoot ?? '/sys';
  const ids = opts.usbIds ?? usbIdsAt();
  const names = (await listNames(join(sysRoot, 'bus/usb/devices'), [])).filter((n) => USB_DEVICE_NAME.test(n));
  const devices = await Promise.all(names.map((n) => readUsbDevice(join(sysRoot, 'bus/usb/devices', n), n, ids)));
  return devices.sort(compareUsb);
}

async function readUsbDevice(dir: string, name: string, ids: UsbIds): Promise<UsbDevice> {
  const problems: string[] = [];
  const vendorId = await readHexIdAttr(join(dir, 'idVendor'), problems);
  const productId = await readHexIdAttr(join(dir, 'idProduct'), problems);
  const deviceClass = await readHexIdAttr(join(dir, 'bDeviceClass'), problems, 2, {});
  const isRootHub = name.startsWith('usb');
  return {
    name,
    busnum: await readIntAttr(join(dir, 'busnum'), problems, { required: true }),
    devnum: await readIntAttr(join(dir, 'devnum'), problems, { required: true }),
    portPath: isRootHub ? undefined : name.slice(name.indexOf('-') + 1),
    vendorId,
    productId,
    // Descriptor strings are optional in USB: absence is normal.
    manufacturer: await readAttr(join(dir, 'manufacturer'), problems),
    product: await readAttr(join(dir, 'product'), problems),
    serial: await readAttr(join(dir, 'serial'), problems),
    vendorName: vendorId ? await ids.vendorName(vendorId) : undefined,
    productName: vendorId && productId ? await ids.productName(vendorId, productId) : undefined,
    speed: await readAttr(join(dir, 'speed'), problems),
    deviceClass,
    isHub: deviceClass === '09',
    isRootHub,
    problems,
  };
}

function sortKey(d: UsbDevice): number[] {
  const bus = d.busnum ?? Number(/\d+/.exec(d.name)?.[0] ?? 0);
  return [bus, ...(d.portPath ? d.portPath.split('.').map(Number) : [])];
}

function compareUsb(a: UsbDevice, b: UsbDevice): number {
  const ka = sortKey(a);
  const kb = sortKey(b);
  for (let i = 0; i < Math.max(ka.length, kb.length); i++) {
    const d = (ka[i] ?? -1) - (kb[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}
