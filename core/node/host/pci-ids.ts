// Names for PCI vendor, device, subsystem and class codes from pciutils' pci.ids database
// (Debian package pci.ids). Lookups take ids as sysfs prints them ("0x8086") or bare ("8086").

import { LazyIdsFile, normaliseHexId } from './ids-database.ts';

export const SYSTEM_PCI_IDS = '/usr/share/misc/pci.ids';

export interface PciClassNames {
  className?: string;
  subclassName?: string;
  progIfName?: string;
}

export class PciIds {
  readonly #file: LazyIdsFile;

  constructor(path: string = SYSTEM_PCI_IDS) {
    this.#file = new LazyIdsFile(path);
  }

  get path(): string {
    return this.#file.path;
  }

  /** Why the database could not be read (after a lookup); undefined when it was read. */
  get loadError(): string | undefined {
    return this.#file.loadError;
  }

  async vendorName(vendor: string): Promise<string | undefined> {
    return (await this.#file.tables()).vendors.get(normaliseHexId(vendor))?.name;
  }

  async deviceName(vendor: string, device: string): Promise<string | undefined> {
    return (await this.#file.tables()).vendors.get(normaliseHexId(vendor))?.devices.get(normaliseHexId(device))?.name;
  }

  async subsystemName(vendor: string, device: string, subVendor: string, subDevice: string): Promise<string | undefined> {
    const dev = (await this.#file.tables()).vendors.get(normaliseHexId(vendor))?.devices.get(normaliseHexId(device));
    return dev?.subsystems.get(`${normaliseHexId(subVendor)}:${normaliseHexId(subDevice)}`);
  }

  /** Class names for a 24-bit class code as in sysfs' class file ("0x030000" or "030000"). */
  async classNames(code: string): Promise<PciClassNames> {
    const hex = normaliseHexId(code).padStart(6, '0');
    const klass = (await this.#file.tables()).classes.get(hex.slice(0, 2));
    const sub = klass?.subclasses.get(hex.slice(2, 4));
    return { className: klass?.name, subclassName: sub?.name, progIfName: sub?.progIfs.get(hex.slice(4, 6)) };
  }
}

const shared = new Map<string, PciIds>();

/** One parsed database per path for the whole process, so repeated listings parse it once. */
export function pciIdsAt(path: string = SYSTEM_PCI_IDS): PciIds {
  let ids = shared.get(path);
  if (!ids) shared.set(path, (ids = new PciIds(path)));
  return ids;
}
