// Snapshots as the core records them and clients show them: a tree (each snapshot's parent is the
// one the VM's state derived from when it was taken), the current position in it, and the words
// a confirmation needs (what a revert loses, what a delete merges where). Shared by the core, the
// CLI and the Snapshots tab so all three say the same thing.
import { HangarError } from './errors.ts';

/**
 * internal: a named snapshot inside every qcow2 disk (and, with memory, the RAM and device state
 * in the first one), as `savevm` keeps it; external: the disks' files frozen under new qcow2
 * overlays that take the writes from then on (disk only).
 */
export const snapshotKinds = ['internal', 'external'] as const;
export type SnapshotKind = (typeof snapshotKinds)[number];

export interface SnapshotDiskRecord {
  diskId: string;
  /** internal: the qcow2 file holding the snapshot; external: the file frozen by it (its overlays read through it). */
  file: string;
  /** The file's format (external: the frozen file's, qcow2 or raw). */
  format: string;
}

export interface SnapshotInfo {
  id: string;
  name: string;
  description: string;
  /** ISO time. */
  createdAt: string;
  /** The snapshot the VM's state derived from when this one was taken (null: the first). */
  parent: string | null;
  kind: SnapshotKind;
  /** RAM and device state too (internal only): reverting resumes the guest where it was. */
  memory: boolean;
  /** The state the VM was in when it was taken (a memory snapshot reverts to running or paused). */
  vmState: 'running' | 'paused' | 'stopped';
  disks: SnapshotDiskRecord[];
  /** Bytes of RAM state saved (memory snapshots). */
  vmStateBytes?: number;
  /** A screenshot of the guest's screen at the time (running VMs with a display), a file in the VM's snapshots/ folder. */
  screenshot?: string;
  /** How the guest was handled for a live disk-only snapshot: filesystems frozen by the guest agent, or why not. */
  note?: string;
  /** Set when the disks do not hold what this record says (checked on load); revert is refused then. */
  problem?: string;
}

export interface SnapshotList {
  snapshots: SnapshotInfo[];
  /** The snapshot the current state derives from (null: none, or before the first). */
  current: string | null;
  /** Mismatches between the records and the disks, and interrupted operations: reported, never silently fixed. */
  problems: string[];
  /** What a new snapshot can be right now, each with the reason when it cannot. */
  can: {
    internal: { available: boolean; reason?: string };
    memory: { available: boolean; reason?: string };
    external: { available: boolean; reason?: string };
  };
}

export interface CreateSnapshotRequest {
  name: string;
  description?: string;
  /** Default: internal where every disk is qcow2, else external. */
  kind?: SnapshotKind;
  /** Internal on a running VM: default true (RAM too); false = disk only. */
  memory?: boolean;
}

/** Progress of a long snapshot operation, pushed as an event. */
export interface SnapshotProgress {
  vm: string;
  /** save: a managed save (snapshot is empty). */
  op: 'create' | 'revert' | 'delete' | 'save';
  snapshot: string;
  /** In words: "saving RAM", "merging disk0 into …". */
  step: string;
  /** 0..1 */
  fraction: number;
  /** Bytes done / total where QEMU reports them. */
  doneBytes?: number;
  totalBytes?: number;
}

export const SNAPSHOT_NAME_MAX = 64;

/**
 * A snapshot name is also the tag QEMU stores in each qcow2 file: letters, digits and . _ - +
 * (no spaces or shell characters), at most 64, not all digits (QEMU would take it for a
 * snapshot's numeric id).
 */
export function checkSnapshotName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0) throw new HangarError('invalid-input', 'a snapshot needs a name', 'give one, e.g. before-upgrade');
  if (name.length > SNAPSHOT_NAME_MAX) throw new HangarError('invalid-input', `snapshot name "${name.slice(0, 20)}…" is longer than ${SNAPSHOT_NAME_MAX} characters`, 'give a shorter name');
  if (!/^[A-Za-z0-9][A-Za-z0-9._+-]*$/.test(name)) {
    throw new HangarError('invalid-input', `snapshot name "${name}" may only hold letters, digits and . _ - + (starting with a letter or digit)`, 'e.g. before-upgrade or v2.1');
  }
  if (/^\d+$/.test(name)) throw new HangarError('invalid-input', `snapshot name "${name}" is only digits: QEMU would take it for a snapshot id`, 'add a letter, e.g. s' + name);
  return name;
}

/** Children of each snapshot, in creation order. */
export function snapshotChildren(list: Pick<SnapshotList, 'snapshots'>): Map<string | null, SnapshotInfo[]> {
  const m = new Map<string | null, SnapshotInfo[]>();
  const ids = new Set(list.snapshots.map((s) => s.id));
  for (const s of [...list.snapshots].sort((a, b) => a.createdAt.localeCompare(b.createdAt))) {
    const p = s.parent !== null && ids.has(s.parent) ? s.parent : null;
    m.set(p, [...(m.get(p) ?? []), s]);
  }
  return m;
}

/** The tree flattened for display: each snapshot with its depth, parents before children. */
export function snapshotTreeRows(list: Pick<SnapshotList, 'snapshots'>): Array<{ snapshot: SnapshotInfo; depth: number }> {
  const children = snapshotChildren(list);
  const rows: Array<{ snapshot: SnapshotInfo; depth: number }> = [];
  const walk = (parent: string | null, depth: number): void => {
    for (const s of children.get(parent) ?? []) {
      rows.push({ snapshot: s, depth });
      walk(s.id, depth + 1);
    }
  };
  walk(null, 0);
  return rows;
}

export function findSnapshot(list: Pick<SnapshotList, 'snapshots'>, ref: string, vmName: string): SnapshotInfo {
  const s = list.snapshots.find((x) => x.name === ref) ?? list.snapshots.find((x) => x.id === ref);
  if (!s) {
    throw new HangarError('not-found', `VM "${vmName}" has no snapshot "${ref}"`,
      list.snapshots.length ? `its snapshots: ${list.snapshots.map((x) => x.name).join(', ')}` : 'it has no snapshots yet');
  }
  return s;
}

/** What a revert to s does, in words for its confirmation. */
export function revertConsequence(list: SnapshotList, s: SnapshotInfo, vmState: string): string {
  const active = vmState !== 'stopped' && vmState !== 'crashed';
  const lost = active ? 'Everything the guest did since' : 'Every change to the disks since';
  const after = s.memory
    ? `the VM then runs from the moment the snapshot was taken${s.vmState === 'paused' ? ' (paused)' : ''}`
    : `the VM is ${active ? 'turned off and ' : ''}left stopped with the disks as they were`;
  const branch = s.kind === 'external' ? ' The other snapshots and their branches are kept.' : '';
  const settings = ' Its settings return to those saved with the snapshot.';
  const from = list.current === s.id ? `the snapshot "${s.name}" was taken` : `"${s.name}" (the current state is not saved unless you take a snapshot first)`;
  return `${lost} ${from} is lost; ${after}.${settings}${branch}`;
}

/** What a delete of s does, in words for its confirmation. */
export function deleteConsequence(list: SnapshotList, s: SnapshotInfo): string {
  if (s.kind === 'internal') {
    return `The snapshot "${s.name}" is removed from ${s.disks.length === 1 ? 'the disk' : `its ${s.disks.length} disks`}; the current state and every other snapshot keep their data.`;
  }
  const children = snapshotChildren(list).get(s.id) ?? [];
  const into: string[] = children.map((c) => `snapshot "${c.name}"`);
  if (list.current === s.id) into.push('the current state');
  if (into.length === 0) return `The overlay files of "${s.name}" are deleted; nothing depends on them.`;
  if (into.length === 1) return `The data of "${s.name}" is merged into ${into[0]} (block-commit), and its files go; every other snapshot keeps its data.`;
  return `The data of "${s.name}" is copied into each of ${into.join(', ')} (block-stream), which takes disk space for each, and its files go; every other snapshot keeps its data.`;
}
