// Guest operating systems as Hangar sees them: pure data, loaded on the node side from osinfo-db
// (/usr/share/osinfo, the database virt-manager and GNOME Boxes use) plus built-in generic entries
// that exist even without the database. The renderer may import these types.

/** One way osinfo-db recognizes an install medium. Each present field is a regular expression,
 * matched case-insensitively and anchored at the start (as libosinfo does), except volumeSize
 * which must be equal. Absent fields are not checked. */
export interface OsMediaMatcher {
  arch?: string;
  volumeId?: string;
  systemId?: string;
  publisherId?: string;
  applicationId?: string;
  volumeSize?: number;
}

export interface OsVirtioSupport {
  /** virtio-blk (1af4:1001 / 1af4:1042) */
  blk: boolean;
  /** virtio-net (1af4:1000 / 1af4:1041) */
  net: boolean;
  /** virtio-scsi (1af4:1004 / 1af4:1048) */
  scsi: boolean;
  /** virtio-rng (1af4:1005 / 1af4:1044) */
  rng: boolean;
  /** virtio-balloon (1af4:1002 / 1af4:1045) */
  balloon: boolean;
  /** virtio-serial console (1af4:1003 / 1af4:1043) */
  console: boolean;
  /** virtio-gpu (1af4:1050) */
  gpu: boolean;
  /** virtio-input (1af4:1052) */
  input: boolean;
  /** virtio-fs (1af4:105a) */
  fs: boolean;
}

export interface OsFirmwareSupport {
  efi?: boolean;
  bios?: boolean;
  secureBoot?: boolean;
}

export interface OsEntry {
  /** osinfo short-id (e.g. "debian11", "win11") or a generic id ("generic-linux"). */
  id: string;
  /** Other osinfo short-ids of the same OS (e.g. "debianbullseye"). */
  aliases?: string[];
  /** osinfo URI (e.g. http://debian.org/debian/11); absent for generic entries. */
  uri?: string;
  name: string;
  vendor?: string;
  /** osinfo family: linux, winnt, win9x, freebsd, ... */
  family: string;
  distro?: string;
  version?: string;
  /** YYYY-MM-DD */
  releaseDate?: string;
  /** end-of-life date YYYY-MM-DD */
  eol?: string;
  media: OsMediaMatcher[];
  minimum: { memoryMiB?: number; vcpus?: number; diskBytes?: number };
  recommended: { memoryMiB?: number; vcpus?: number; diskBytes?: number };
  virtio: OsVirtioSupport;
  firmware: OsFirmwareSupport;
  needsTpm: boolean;
  /** true for the built-in fallbacks (generic-linux, generic-windows, generic-bsd, other). */
  generic: boolean;
}

/** An OS as the wizard's list shows it: without the media matchers (which only the core uses). */
export type OsListEntry = Omit<OsEntry, 'media'>;

/** The Primary Volume Descriptor fields of an ISO9660 image (trailing spaces trimmed). */
export interface IsoPvd {
  systemId: string;
  volumeId: string;
  publisherId: string;
  applicationId: string;
  volumeSizeBytes: number;
}

export interface OsDetection {
  /** null when no osinfo media entry matches: show "unknown / generic". */
  os: OsEntry | null;
  media: IsoPvd;
  /** The PVD fields that matched (volume-id, system-id, publisher-id, application-id, volume-size). */
  matchedBy: string[];
  /** Architecture of the matched media entry, when osinfo says. */
  arch?: string;
}

const noVirtio: OsVirtioSupport = { blk: false, net: false, scsi: false, rng: false, balloon: false, console: false, gpu: false, input: false, fs: false };
const allVirtio: OsVirtioSupport = { blk: true, net: true, scsi: true, rng: true, balloon: true, console: true, gpu: true, input: true, fs: false };

const GiB = 1024 ** 3;

/** Built-in entries that always exist, listed first, used when detection finds nothing. */
export const GENERIC_OSES: readonly OsEntry[] = [
  {
    id: 'generic-linux', name: 'Generic Linux', family: 'linux', media: [], generic: true, needsTpm: false,
    minimum: { memoryMiB: 1024, vcpus: 1, diskBytes: 10 * GiB },
    recommended: { memoryMiB: 2048, vcpus: 2, diskBytes: 20 * GiB },
    virtio: { ...allVirtio }, firmware: { efi: true, bios: true },
  },
  {
    // Without the virtio-win drivers Windows installers see no virtio disk or NIC: emulated
    // SATA (AHCI) and e1000(e) work out of the box.
    id: 'generic-windows', name: 'Generic Windows', family: 'winnt', media: [], generic: true, needsTpm: false,
    minimum: { memoryMiB: 2048, vcpus: 1, diskBytes: 32 * GiB },
    recommended: { memoryMiB: 4096, vcpus: 2, diskBytes: 64 * GiB },
    virtio: { ...noVirtio }, firmware: { efi: true, bios: true },
  },
  {
    id: 'generic-bsd', name: 'Generic BSD', family: 'bsd', media: [], generic: true, needsTpm: false,
    minimum: { memoryMiB: 512, vcpus: 1, diskBytes: 8 * GiB },
    recommended: { memoryMiB: 2048, vcpus: 2, diskBytes: 20 * GiB },
    virtio: { ...allVirtio, gpu: false, input: false }, firmware: { efi: true, bios: true },
  },
  {
    id: 'other', name: 'Other / unknown', family: 'other', media: [], generic: true, needsTpm: false,
    minimum: { memoryMiB: 512, vcpus: 1, diskBytes: 4 * GiB },
    recommended: { memoryMiB: 1024, vcpus: 1, diskBytes: 10 * GiB },
    virtio: { ...noVirtio }, firmware: { bios: true },
  },
];

/** The generic fallback for an OS family (winnt/win9x/win16 → Windows; *bsd → BSD; linux → Linux). */
export function genericFor(family: string | undefined): OsEntry {
  const f = (family ?? '').toLowerCase();
  const id = f === 'linux' ? 'generic-linux' : f.startsWith('win') ? 'generic-windows' : f.endsWith('bsd') || f === 'bsd' ? 'generic-bsd' : 'other';
  return GENERIC_OSES.find((o) => o.id === id)!;
}

/** The OSes matching every word of `search` (case-insensitive) in id, aliases, name, vendor,
 * family, distro or version; all of them for an empty search. Used by `hangar os list` and the wizard. */
export function searchOses<T extends OsListEntry>(oses: readonly T[], search: string): T[] {
  const words = search.trim().toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return [...oses];
  return oses.filter((o) => {
    const hay = [o.id, ...(o.aliases ?? []), o.name, o.vendor, o.family, o.distro, o.version].filter(Boolean).join(' ').toLowerCase();
    return words.every((w) => hay.includes(w));
  });
}
