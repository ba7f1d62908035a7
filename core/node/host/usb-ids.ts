// Names for USB vendor and product ids from the usb.ids database (Debian package usb.ids).

import { LazyIdsFile, normaliseHexId } from './ids-database.ts';

export const SYSTEM_USB_IDS = '/usr/share/misc/usb.ids';

export class UsbIds {
  readonly #file: LazyIdsFile;

  constructor(path: string = SYSTEM_USB_IDS) {
    this.#file = new LazyIdsFile(path);
  }

  get path(): string {
    return this.#file.path;
  }

  async vendorName(vendor: string): Promise<string | undefined> {
    return (await this.#file.tables()).vendors.get(normaliseHexId(vendor))?.name;
  }

  async productName(vendor: string, product: string): Promise<string | undefined> {
    return (await this.#file.tables()).vendors.get(normaliseHexId(vendor))?.devices.get(normaliseHexId(product))?.name;
  }
}

const shared = new Map<string, UsbIds>();

/** One parsed database per path for the whole process. */
export function usbIdsAt(path: string = SYSTEM_USB_IDS): UsbIds {
  let ids = shared.get(path);
  if (!ids) shared.set(path, (ids = new UsbIds(path)));
  return ids;
}
