// A VM's snapshot records: <vmdir>/snapshots.json beside vm.json, versioned and written
// atomically like it. Each record keeps the definition the VM had when it was taken (a revert
// brings it back: RAM state only loads into the same hardware). An operation in flight is
// journaled first, so one interrupted by a crash or kill is reported on the next load instead of
// leaving a record that silently disagrees with the disks.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { HangarError } from '../../common/errors.ts';
import { snapshotKinds } from '../../common/snapshots.ts';
import type { SnapshotInfo } from '../../common/snapshots.ts';
import { writeFileAtomic } from '../store/atomic-write.ts';
import { ioError } from '../io-error-reason.ts';

export const SNAPSHOTS_FILE = 'snapshots.json';
export const SNAPSHOTS_VERSION = 1;

const diskRecord = z.looseObject({ diskId: z.string(), file: z.string(), format: z.string() });

const record = z.looseObject({
  id: z.string(),
  name: z.string(),
  description: z.string().default(''),
  createdAt: z.string(),
  parent: z.string().nullable(),
  kind: z.enum(snapshotKinds),
  memory: z.boolean(),
  vmState: z.enum(['running', 'paused', 'stopped']),
  disks: z.array(diskRecord),
  vmStateBytes: z.number().optional(),
  screenshot: z.string().optional(),
  /** How the guest was handled (its filesystems frozen by the guest agent, or why not). */
  note: z.string().optional(),
  /** The VM definition when it was taken (raw: parsed, and migrated, when a revert uses it). */
  definition: z.record(z.string(), z.unknown()),
});

const journal = z.looseObject({
  op: z.enum(['create', 'revert', 'delete']),
  snapshot: z.string(),
  startedAt: z.string(),
  /** Files the operation made or is about to remove, so a leftover can be named. */
  files: z.array(z.string()).default([]),
});

const file = z.looseObject({
  version: z.literal(SNAPSHOTS_VERSION),
  current: z.string().nullable().default(null),
  snapshots: z.array(record).default([]),
  /** Overlay files Hangar made for external snapshots (only these are ever deleted). */
  overlays: z.array(z.string()).default([]),
  journal: journal.optional(),
});

export type SnapshotRecord = z.infer<typeof record>;
export type SnapshotJournal = z.infer<typeof journal>;
export type SnapshotFile = z.infer<typeof file>;

export function emptySnapshotFile(): SnapshotFile {
  return { version: SNAPSHOTS_VERSION, current: null, snapshots: [], overlays: [] };
}

/** The records of a VM; a missing file is no snapshots. A damaged file is an error naming it (never replaced by an empty one). */
export async function readSnapshotFile(vmDir: string): Promise<SnapshotFile> {
  const path = join(vmDir, SNAPSHOTS_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return emptySnapshotFile();
    throw ioError('read the snapshot records', path, e);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new HangarError('broken-definition', `${path} is not valid JSON (${(e as Error).message})`, 'restore it from a backup; the snapshots inside the disks are untouched (qemu-img snapshot -l lists them)');
  }
  const v = (raw as { version?: unknown } | null)?.version;
  if (typeof v === 'number' && v > SNAPSHOTS_VERSION) {
    throw new HangarError('broken-definition', `${path} has version ${v}, written by a newer Hangar (this one reads up to ${SNAPSHOTS_VERSION})`, 'use the newer Hangar');
  }
  const parsed = file.safeParse(raw);
  if (!parsed.success) {
    throw new HangarError('broken-definition', `${path} is not a snapshot record file: ${parsed.error.issues[0]?.message ?? 'bad shape'}`, 'restore it from a backup');
  }
  return parsed.data;
}

export async function writeSnapshotFile(vmDir: string, data: SnapshotFile): Promise<void> {
  const path = join(vmDir, SNAPSHOTS_FILE);
  try {
    await writeFileAtomic(path, JSON.stringify(data, null, 2) + '\n', 0o600);
  } catch (e) {
    throw ioError('save the snapshot records', path, e);
  }
}

/** The record as clients see it (without the stored definition). */
export function snapshotInfo(r: SnapshotRecord, problem?: string): SnapshotInfo {
  const i: SnapshotInfo = {
    id: r.id, name: r.name, description: r.description, createdAt: r.createdAt, parent: r.parent, kind: r.kind,
    memory: r.memory, vmState: r.vmState, disks: r.disks.map((d) => ({ diskId: d.diskId, file: d.file, format: d.format })),
  };
  if (r.vmStateBytes !== undefined) i.vmStateBytes = r.vmStateBytes;
  if (r.screenshot) i.screenshot = r.screenshot;
  if (r.note) i.note = r.note;
  if (problem) i.problem = problem;
  return i;
}
