// Parser for the "ids" text databases shared by pciutils (pci.ids) and usbutils (usb.ids):
//   vendor  name                      (4 hex digits, two spaces)
//   \tdevice  name                    (one tab)
//   \t\tsubvendor subdevice  name     (two tabs)
//   C cc  class name / \tss  subclass / \t\tpp  programming interface
// Other letter-prefixed sections of usb.ids (AT, HID, L, ...) are skipped. Both files are
// large (pci.ids ~1.3 MB), so they are read once, on first use, and the parse is cached.

import { readFile } from 'node:fs/promises';

export interface IdsDevice {
  name: string;
  /** "svid:sdid" (lower-case hex) -> subsystem name. */
  subsystems: Map<string, string>;
}

export interface IdsVendor {
  name: string;
  devices: Map<string, IdsDevice>;
}

export interface IdsSubclass {
  name: string;
  progIfs: Map<string, string>;
}

export interface IdsClass {
  name: string;
  subclasses: Map<string, IdsSubclass>;
}

export interface IdsTables {
  vendors: Map<string, IdsVendor>;
  classes: Map<string, IdsClass>;
}

const VENDOR = /^([0-9a-fA-F]{4})\s+(.*)$/;
const CLASS = /^C ([0-9a-fA-F]{2})\s+(.*)$/;
const DEVICE = /^\t([0-9a-fA-F]{4}|[0-9a-fA-F]{2})\s+(.*)$/;
const SUBSYSTEM = /^\t\t([0-9a-fA-F]{4}) ([0-9a-fA-F]{4})\s+(.*)$/;
const PROG_IF = /^\t\t([0-9a-fA-F]{2})\s+(.*)$/;

export function parseIdsDatabase(text: string): IdsTables {
  const vendors = new Map<string, IdsVendor>();
  const classes = new Map<string, IdsClass>();
  // Exactly one of these is set while inside a section; an unknown section clears both, so
  // its indented lines are not attributed to the previous vendor.
  let vendor: IdsVendor | undefined;
  let device: IdsDevice | undefined;
  let klass: IdsClass | undefined;
  let subclass: IdsSubclass | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (line === '' || line.startsWith('#')) continue;
    if (!line.startsWith('\t')) {
      vendor = device = klass = subclass = undefined;
      let m = VENDOR.exec(line);
      if (m) {
        vendor = { name: m[2].trim(), devices: new Map() };
        vendors.set(m[1].toLowerCase(), vendor);
        continue;
      }
      m = CLASS.exec(line);
      if (m) {
        klass = { name: m[2].trim(), subclasses: new Map() };
        classes.set(m[1].toLowerCase(), klass);
      }
      continue;
    }
    if (line.startsWith('\t\t')) {
      if (device) {
        const m = SUBSYSTEM.exec(line);
        if (m) device.subsystems.set(`${m[1].toLowerCase()}:${m[2].toLowerCase()}`, m[3].trim());
      } else if (subclass) {
        const m = PROG_IF.exec(line);
        if (m) subclass.progIfs.set(m[1].toLowerCase(), m[2].trim());
      }
      continue;
    }
    const m = DEVICE.exec(line);
    if (!m) continue;
    const id = m[1].toLowerCase();
    if (vendor && id.length === 4) {
      device = { name: m[2].trim(), subsystems: new Map() };
      vendor.devices.set(id, device);
    } else if (klass && id.length === 2) {
      subclass = { name: m[2].trim(), progIfs: new Map() };
      klass.subclasses.set(id, subclass);
    }
  }
  return { vendors, classes };
}

/** Normalises "0x8086", "8086\n" or "0X8086" to "8086". */
export function normaliseHexId(id: string): string {
  return id.trim().toLowerCase().replace(/^0x/, '');
}

/**
 * One ids file, read and parsed on first use. A missing or unreadable file gives empty tables
 * (every name undefined): names are a convenience, never a reason to fail a listing.
 */
export class LazyIdsFile {
  readonly path: string;
  #tables: Promise<IdsTables> | undefined;
  #loadError: string | undefined;

  constructor(path: string) {
    this.path = path;
  }

  tables(): Promise<IdsTables> {
    this.#tables ??= readFile(this.path, 'utf8').then(
      (text) => parseIdsDatabase(text),
      (e: unknown) => {
        this.#loadError = e instanceof Error ? e.message : String(e);
        return { vendors: new Map(), classes: new Map() };
      },
    );
    return this.#tables;
  }

  /** Why the file could not be read, once tables() has settled; undefined when it was read. */
  get loadError(): string | undefined {
    return this.#loadError;
  }
}
