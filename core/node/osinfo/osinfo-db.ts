// osinfo-db (https://gitlab.com/libosinfo/osinfo-db), the database of guest operating systems
// behind virt-manager, virt-install and GNOME Boxes: install media labels, resources, supported
// devices and firmware. Hangar reads the XML directly (fast-xml-parser) instead of linking
// libosinfo, and follows libosinfo's rules: media regexes anchored at the start and matched
// case-insensitively; devices inherited along derives-from/clones, minus supported="false".
import { readFile, readdir, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { HangarError } from '../../common/errors.ts';
import { GENERIC_OSES, searchOses } from '../../common/os-types.ts';
import type { IsoPvd, OsDetection, OsEntry, OsFirmwareSupport, OsMediaMatcher, OsVirtioSupport } from '../../common/os-types.ts';
import { readIsoPvd } from './iso9660.ts';

export const DEFAULT_OSINFO_DIR = '/usr/share/osinfo';

export function osinfoDir(): string {
  return process.env.HANGAR_OSINFO_DIR || DEFAULT_OSINFO_DIR;
}

export interface OsinfoDb {
  root: string;
  /** Contents of VERSION (e.g. "20221130"), if present. */
  version?: string;
  /** Database entries only (no generic fallbacks), sorted by distro then newest first. */
  oses: OsEntry[];
  byId: Map<string, OsEntry>;
}

// ---- raw XML -> intermediate records --------------------------------------------------------

type XmlNode = Record<string, unknown>;

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  isArray: (_name: string, _path: unknown, _leaf: boolean, isAttribute: boolean) => !isAttribute,
});

function kids(node: XmlNode | undefined, tag: string): XmlNode[] {
  const v = node?.[tag];
  return Array.isArray(v) ? (v as XmlNode[]) : [];
}

function textOf(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && '#text' in v) return String((v as XmlNode)['#text']);
  return undefined;
}

function attr(node: XmlNode | undefined, name: string): string | undefined {
  const v = node?.[`@_${name}`];
  return typeof v === 'string' ? v : undefined;
}

/** The untranslated value of a tag (the one without xml:lang). */
function plain(node: XmlNode, tag: string): string | undefined {
  const list = node[tag];
  if (!Array.isArray(list)) return undefined;
  for (const item of list) {
    if (item && typeof item === 'object' && attr(item as XmlNode, 'xml:lang')) continue;
    const t = textOf(item);
    if (t !== undefined) return t;
  }
  return undefined;
}

function plainAll(node: XmlNode, tag: string): string[] {
  const list = node[tag];
  if (!Array.isArray(list)) return [];
  return list.map(textOf).filter((t): t is string => t !== undefined);
}

interface ResourceSet { memoryMiB?: number; vcpus?: number; diskBytes?: number }

interface RawOs {
  uri: string;
  shortIds: string[];
  name: string;
  vendor?: string;
  family?: string;
  distro?: string;
  version?: string;
  releaseDate?: string;
  eol?: string;
  parents: string[];
  media: OsMediaMatcher[];
  minimum: ResourceSet;
  recommended: ResourceSet;
  /** device id -> supported */
  devices: Map<string, boolean>;
  /** firmware type (efi, bios) -> supported; x86 only */
  firmware: Map<string, boolean>;
  secureBoot?: boolean;
}

const X86 = new Set(['all', 'x86_64', 'i686', undefined]);

function readResources(node: XmlNode | undefined): ResourceSet {
  const r: ResourceSet = {};
  if (!node) return r;
  const num = (tag: string): number | undefined => {
    const t = plain(node, tag);
    const n = t === undefined ? NaN : Number(t);
    return Number.isFinite(n) && n > 0 ? n : undefined;
  };
  const ram = num('ram');
  if (ram !== undefined) r.memoryMiB = Math.round(ram / (1024 * 1024));
  const cpus = num('n-cpus');
  if (cpus !== undefined) r.vcpus = cpus;
  const storage = num('storage');
  if (storage !== undefined) r.diskBytes = storage;
  return r;
}

function rawOs(os: XmlNode): RawOs | null {
  const uri = attr(os, 'id');
  const shortIds = plainAll(os, 'short-id');
  if (!uri || !shortIds.length) return null;
  const raw: RawOs = {
    uri, shortIds, name: plain(os, 'name') ?? shortIds[0]!,
    parents: [...kids(os, 'derives-from'), ...kids(os, 'clones')].map((n) => attr(n, 'id')).filter((s): s is string => !!s),
    media: [], minimum: {}, recommended: {}, devices: new Map(), firmware: new Map(),
  };
  const opt: Array<[keyof RawOs, string]> = [['vendor', 'vendor'], ['family', 'family'], ['distro', 'distro'], ['version', 'version'], ['releaseDate', 'release-date'], ['eol', 'eol-date']];
  for (const [key, tag] of opt) {
    const v = plain(os, tag);
    if (v !== undefined) (raw as unknown as Record<string, unknown>)[key] = v;
  }
  for (const m of kids(os, 'media')) {
    for (const iso of kids(m, 'iso')) {
      const matcher: OsMediaMatcher = {};
      const arch = attr(m, 'arch');
      if (arch) matcher.arch = arch;
      const fields: Array<[keyof OsMediaMatcher, string]> = [['volumeId', 'volume-id'], ['systemId', 'system-id'], ['publisherId', 'publisher-id'], ['applicationId', 'application-id']];
      for (const [key, tag] of fields) {
        const v = plain(iso, tag);
        if (v) (matcher as Record<string, unknown>)[key] = v;
      }
      const size = Number(plain(iso, 'volume-size'));
      if (Number.isFinite(size) && size > 0) matcher.volumeSize = size;
      if (Object.keys(matcher).some((k) => k !== 'arch')) raw.media.push(matcher);
    }
  }
  // Resources: prefer arch="all", then x86_64; fields missing there come from the other.
  const resources = kids(os, 'resources');
  const pick = (arch: string): XmlNode | undefined => resources.find((r) => attr(r, 'arch') === arch);
  for (const arch of ['i686', 'x86_64', 'all']) {
    const r = pick(arch);
    if (!r) continue;
    Object.assign(raw.minimum, readResources(kids(r, 'minimum')[0]));
    Object.assign(raw.recommended, readResources(kids(r, 'recommended')[0]));
  }
  for (const d of kids(os, 'devices').flatMap((n) => kids(n, 'device'))) {
    const id = attr(d, 'id');
    if (id) raw.devices.set(id, attr(d, 'supported') !== 'false');
  }
  for (const f of kids(os, 'firmware')) {
    const type = attr(f, 'type');
    if (!type || !X86.has(attr(f, 'arch'))) continue;
    raw.firmware.set(type, attr(f, 'supported') !== 'false');
    for (const feat of kids(f, 'feature')) {
      if (attr(feat, 'name') === 'secure-boot') raw.secureBoot = attr(feat, 'supported') !== 'false';
    }
  }
  return raw;
}

// ---- inheritance and OsEntry ----------------------------------------------------------------

// Both the legacy (transitional) and the virtio 1.0 PCI ids.
const VIRTIO_IDS: Record<keyof OsVirtioSupport, string[]> = {
  net: ['1000', '1041'], blk: ['1001', '1042'], balloon: ['1002', '1045'], console: ['1003', '1043'],
  scsi: ['1004', '1048'], rng: ['1005', '1044'], gpu: ['1050'], input: ['1052'], fs: ['105a'],
};

function buildEntries(raws: Map<string, RawOs>): OsEntry[] {
  const devCache = new Map<string, Map<string, boolean>>();
  const resolving = new Set<string>();
  const ancestors = (raw: RawOs): RawOs[] => raw.parents.map((p) => raws.get(p)).filter((p): p is RawOs => !!p);

  function devices(raw: RawOs): Map<string, boolean> {
    const cached = devCache.get(raw.uri);
    if (cached) return cached;
    const out = new Map<string, boolean>();
    if (!resolving.has(raw.uri)) {
      resolving.add(raw.uri);
      for (const p of ancestors(raw)) for (const [id, ok] of devices(p)) out.set(id, ok);
      resolving.delete(raw.uri);
    }
    for (const [id, ok] of raw.devices) out.set(id, ok);
    devCache.set(raw.uri, out);
    return out;
  }

  /** A value from the OS itself, else from the nearest ancestor that has it. */
  function inherit<T>(raw: RawOs, get: (r: RawOs) => T | undefined, seen = new Set<string>()): T | undefined {
    const own = get(raw);
    if (own !== undefined || seen.has(raw.uri)) return own;
    seen.add(raw.uri);
    for (const p of ancestors(raw)) {
      const v = inherit(p, get, seen);
      if (v !== undefined) return v;
    }
    return undefined;
  }

  const entries: OsEntry[] = [];
  for (const raw of raws.values()) {
    const devs = devices(raw);
    const has = (ids: string[]): boolean => ids.some((id) => devs.get(`http://pcisig.com/pci/1af4/${id}`) === true);
    const virtio = Object.fromEntries(Object.entries(VIRTIO_IDS).map(([k, ids]) => [k, has(ids)])) as unknown as OsVirtioSupport;
    const id = raw.shortIds[0]!;
    const needsTpm = /^win11/i.test(id);
    const firmware: OsFirmwareSupport = {};
    const efi = inherit(raw, (r) => r.firmware.get('efi'));
    const bios = inherit(raw, (r) => r.firmware.get('bios'));
    if (efi !== undefined) firmware.efi = efi;
    if (bios !== undefined) firmware.bios = bios;
    const sb = needsTpm ? true : inherit(raw, (r) => r.secureBoot);
    if (sb !== undefined) firmware.secureBoot = sb;
    if (needsTpm) firmware.efi = true;
    const res = (which: 'minimum' | 'recommended'): ResourceSet => {
      const out: ResourceSet = {};
      for (const k of ['memoryMiB', 'vcpus', 'diskBytes'] as const) {
        const v = inherit(raw, (r) => r[which][k]);
        if (v !== undefined) out[k] = v;
      }
      return out;
    };
    const minimum = res('minimum');
    const recommended = res('recommended');
    // Inherited recommendations can be below the OS's own minimum (win11 inherits win10's 1 GiB).
    for (const k of ['memoryMiB', 'vcpus', 'diskBytes'] as const) {
      const lo = minimum[k];
      const v = recommended[k];
      if (lo !== undefined && v !== undefined && v < lo) recommended[k] = lo;
    }
    const e: OsEntry = {
      id, uri: raw.uri, name: raw.name, family: raw.family ?? inherit(raw, (r) => r.family) ?? 'other',
      media: raw.media, minimum, recommended, virtio, firmware, needsTpm, generic: false,
    };
    if (raw.shortIds.length > 1) e.aliases = raw.shortIds.slice(1);
    for (const k of ['vendor', 'distro', 'version', 'releaseDate', 'eol'] as const) {
      const v = raw[k];
      if (v !== undefined) e[k] = v;
    }
    entries.push(e);
  }
  return entries.sort(compareOs);
}

function compareOs(a: OsEntry, b: OsEntry): number {
  const d = (a.distro ?? a.id).localeCompare(b.distro ?? b.id);
  if (d) return d;
  const r = (b.releaseDate ?? '').localeCompare(a.releaseDate ?? '');
  if (r) return r;
  return b.id.localeCompare(a.id, 'en', { numeric: true });
}

// ---- loading --------------------------------------------------------------------------------

const cache = new Map<string, Promise<OsinfoDb>>();

async function listXml(dir: string): Promise<string[]> {
  const names = await readdir(dir, { recursive: true });
  // `<os>.d/` folders hold driver lists for virtio-win and the like, not OS facts we use.
  return names.filter((n) => n.endsWith('.xml') && !n.split(sep).some((part) => part.endsWith('.d'))).map((n) => join(dir, n)).sort();
}

async function loadUncached(root: string): Promise<OsinfoDb> {
  const osDir = join(root, 'os');
  try {
    if (!(await stat(osDir)).isDirectory()) throw new Error('not a directory');
  } catch {
    throw new HangarError('host-missing', `the osinfo database is not installed (no ${osDir})`,
      'install it: `bash scripts/setup.sh` (Debian package osinfo-db), or point HANGAR_OSINFO_DIR at a copy');
  }
  const files = await listXml(osDir);
  const raws = new Map<string, RawOs>();
  await Promise.all(files.map(async (file) => {
    let doc: XmlNode;
    try {
      doc = parser.parse(await readFile(file, 'utf8')) as XmlNode;
    } catch (e) {
      // One broken file must not hide the rest of the database.
      process.emitWarning(`osinfo: skipping ${relative(root, file)}: ${(e as Error).message}`);
      return;
    }
    for (const lib of kids(doc, 'libosinfo')) {
      for (const os of kids(lib, 'os')) {
        const raw = rawOs(os);
        if (raw) raws.set(raw.uri, raw);
      }
    }
  }));
  const oses = buildEntries(raws);
  const db: OsinfoDb = { root, oses, byId: new Map() };
  for (const o of oses) {
    db.byId.set(o.id, o);
    for (const a of o.aliases ?? []) if (!db.byId.has(a)) db.byId.set(a, o);
  }
  try {
    db.version = (await readFile(join(root, 'VERSION'), 'utf8')).trim();
  } catch {
    // VERSION is informative only
  }
  return db;
}

/** The osinfo database under `root` (default: HANGAR_OSINFO_DIR or /usr/share/osinfo), loaded
 * once per root and cached. Throws HangarError('host-missing') when it is not installed. */
export function loadOsinfoDb(root: string = osinfoDir()): Promise<OsinfoDb> {
  let p = cache.get(root);
  if (!p) {
    p = loadUncached(root);
    cache.set(root, p);
    p.catch(() => cache.delete(root)); // retry after the user installs it
  }
  return p;
}

export interface ListOptions {
  search?: string;
  root?: string;
  /** When the database is missing, list only the generic entries instead of throwing. */
  tolerateMissingDb?: boolean;
}

/** Generic fallbacks first, then the database, optionally filtered by a case-insensitive search
 * over id, aliases, name, vendor, family, distro and version. */
export async function listOses(opts: ListOptions = {}): Promise<OsEntry[]> {
  let oses: OsEntry[];
  try {
    oses = (await loadOsinfoDb(opts.root)).oses;
  } catch (e) {
    if (!opts.tolerateMissingDb) throw e;
    oses = [];
  }
  return searchOses([...GENERIC_OSES, ...oses], opts.search ?? '');
}

/** An OS by short-id (or alias, or generic id); undefined if unknown. */
export async function findOs(id: string, root?: string): Promise<OsEntry | undefined> {
  const generic = GENERIC_OSES.find((o) => o.id === id);
  if (generic) return generic;
  return (await loadOsinfoDb(root)).byId.get(id);
}

// ---- media matching -------------------------------------------------------------------------

const regexCache = new Map<string, RegExp | null>();

/** osinfo media fields are PCRE (GRegex) patterns anchored at the start, case-insensitive. */
function regex(pattern: string): RegExp | null {
  let re = regexCache.get(pattern);
  if (re === undefined) {
    try {
      re = new RegExp(`^(?:${pattern})`, 'i');
    } catch {
      re = null; // a PCRE-only construct: that matcher cannot be used
    }
    regexCache.set(pattern, re);
  }
  return re;
}

const FIELDS: Array<[keyof OsMediaMatcher & keyof IsoPvd, string]> = [
  ['volumeId', 'volume-id'], ['systemId', 'system-id'], ['publisherId', 'publisher-id'], ['applicationId', 'application-id'],
];

/** The fields of `m` that match `pvd`, or null when one present field does not match. */
export function matchMedia(m: OsMediaMatcher, pvd: IsoPvd): string[] | null {
  const matched: string[] = [];
  for (const [key, label] of FIELDS) {
    const pattern = m[key];
    if (pattern === undefined) continue;
    const re = regex(pattern);
    if (!re || !re.test(pvd[key])) return null;
    matched.push(label);
  }
  if (m.volumeSize !== undefined) {
    if (m.volumeSize !== pvd.volumeSizeBytes) return null;
    matched.push('volume-size');
  }
  return matched.length ? matched : null;
}

/** Best database entry for a PVD: every present field of a media entry must match; the most
 * specific match (most fields) wins, then the newest release, then x86_64 media. */
export function identifyMedia(db: OsinfoDb, pvd: IsoPvd): OsDetection {
  let best: { os: OsEntry; matched: string[]; arch?: string } | null = null;
  const better = (a: { os: OsEntry; matched: string[]; arch?: string }, b: typeof best): boolean => {
    if (!b) return true;
    if (a.matched.length !== b.matched.length) return a.matched.length > b.matched.length;
    const r = (a.os.releaseDate ?? '').localeCompare(b.os.releaseDate ?? '');
    if (r) return r > 0;
    return a.arch === 'x86_64' && b.arch !== 'x86_64';
  };
  for (const os of db.oses) {
    for (const m of os.media) {
      const matched = matchMedia(m, pvd);
      if (!matched) continue;
      const cand: { os: OsEntry; matched: string[]; arch?: string } = { os, matched };
      if (m.arch) cand.arch = m.arch;
      if (better(cand, best)) best = cand;
    }
  }
  if (!best) return { os: null, media: pvd, matchedBy: [] };
  const out: OsDetection = { os: best.os, media: pvd, matchedBy: best.matched };
  if (best.arch) out.arch = best.arch;
  return out;
}

/** Reads the ISO's Primary Volume Descriptor and identifies it against osinfo-db.
 * `os` is null for an unknown medium (show "unknown / generic"). */
export async function detectOs(isoPath: string, opts: { root?: string } = {}): Promise<OsDetection> {
  const pvd = await readIsoPvd(isoPath);
  const db = await loadOsinfoDb(opts.root);
  return identifyMedia(db, pvd);
}
