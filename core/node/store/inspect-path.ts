// Checks a path the user typed for one use (the wizard validates each file field with it as it
// is typed): an install ISO (and the OS it holds), a disk image, a plain file (kernel, initrd),
// or a folder (a TFTP root). Every refusal names the problem and the fix.
import { constants } from 'node:fs';
import { access, readdir, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { DirListing, InspectExpect, PathInspection } from '../../common/api.ts';
import { HangarError } from '../../common/errors.ts';
import { presetFor } from '../../common/os-presets.ts';
import { genericFor } from '../../common/os-types.ts';
import { readIsoPvd } from '../osinfo/iso9660.ts';
import { identifyMedia, loadOsinfoDb } from '../osinfo/osinfo-db.ts';
import { inspectImportSource } from './import-disk.ts';

const what: Record<InspectExpect, string> = { iso: 'ISO image', disk: 'disk image', file: 'file', directory: 'folder' };

function absolute(input: string, homeDir?: string): string {
  const expanded = homeDir && (input === '~' || input.startsWith('~/')) ? homeDir + input.slice(1) : input;
  if (!isAbsolute(expanded)) {
    throw new HangarError('invalid-input', `"${input}" is not an absolute path`, 'start the path with / (or ~/ for your home folder)');
  }
  return resolve(expanded);
}

export const LIST_DIR_MAX = 5000;

/** A folder's entries for the file chooser: folders first, then files, by name; symlinks followed. */
export async function listDir(input: string, opts: { showHidden?: boolean; homeDir?: string } = {}): Promise<DirListing> {
  const path = absolute(input, opts.homeDir);
  await inspectPath(path, 'directory');
  const dirents = (await readdir(path, { withFileTypes: true })).filter((d) => opts.showHidden || !d.name.startsWith('.'));
  const truncated = dirents.length > LIST_DIR_MAX;
  const entries = await Promise.all(dirents.slice(0, LIST_DIR_MAX).map(async (d) => {
    const st = await stat(join(path, d.name)).catch(() => null); // a dangling link stays "other"
    const kind: 'dir' | 'file' | 'other' = st?.isDirectory() ? 'dir' : st?.isFile() || st?.isBlockDevice() ? 'file' : 'other';
    return { name: d.name, kind, sizeBytes: st?.isFile() ? st.size : 0 };
  }));
  const order = { dir: 0, file: 1, other: 2 };
  entries.sort((a, b) => order[a.kind] - order[b.kind] || a.name.localeCompare(b.name, undefined, { numeric: true }));
  return { path, parent: path === '/' ? null : dirname(path), entries, truncated };
}

export async function inspectPath(input: string, expect: InspectExpect, homeDir?: string): Promise<PathInspection> {
  const path = absolute(input, homeDir);
  if (expect === 'disk') {
    const src = await inspectImportSource(path);
    const disk: NonNullable<PathInspection['disk']> = { format: src.format, virtualSizeBytes: src.info.virtualSize };
    if (src.info.actualSize !== undefined) disk.actualSizeBytes = src.info.actualSize;
    return { path, sizeBytes: src.allocatedBytes, disk };
  }
  const st = await stat(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') throw new HangarError('invalid-input', `${path} does not exist`, 'check the path');
    throw new HangarError('invalid-input', `cannot look at ${path}: ${e.code ?? e.message}`, 'check the path and its permissions');
  });
  if (expect === 'directory') {
    if (!st.isDirectory()) throw new HangarError('invalid-input', `${path} is not a folder`, 'name a folder');
    await readable(path, 'folder', constants.R_OK | constants.X_OK);
    return { path, sizeBytes: 0 };
  }
  if (st.isDirectory()) throw new HangarError('invalid-input', `${path} is a folder, not ${expect === 'iso' ? 'an' : 'a'} ${what[expect]}`, `name the ${what[expect]} itself`);
  if (!st.isFile() && !st.isBlockDevice()) throw new HangarError('invalid-input', `${path} is not a regular file`, `name ${expect === 'iso' ? 'an' : 'a'} ${what[expect]}`);
  await readable(path, what[expect], constants.R_OK);
  if (expect === 'file') {
    if (st.size === 0) throw new HangarError('invalid-input', `${path} is empty`, 'name the real file');
    return { path, sizeBytes: st.size };
  }
  const media = await readIsoPvd(path);
  // Without osinfo-db the ISO is still usable: it is shown as unknown with generic defaults.
  const db = await loadOsinfoDb().catch(() => null);
  const found = db ? identifyMedia(db, media) : { os: null, media, matchedBy: [] as string[] };
  const os = found.os ? (({ media: _m, ...rest }) => rest)(found.os) : null;
  const preset = presetFor(found.os ?? genericFor(undefined));
  const detection: NonNullable<PathInspection['iso']>['detection'] = { os, media: found.media, matchedBy: found.matchedBy };
  if (found.arch) detection.arch = found.arch;
  return { path, sizeBytes: st.size, iso: { detection, preset } };
}

async function readable(path: string, kind: string, mode: number): Promise<void> {
  await access(path, mode).catch(() => {
    throw new HangarError('invalid-input', `the ${kind} ${path} is not readable by this user`, 'fix its permissions (chmod/chown) or copy it somewhere readable');
  });
}
