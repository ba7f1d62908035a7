// VM definitions on disk: one folder per VM (named by its id, so renames never move files),
// holding vm.json, the disks Hangar created, and logs. A definition that cannot be read makes
// only that VM "broken"; every other VM keeps working.
import { mkdir, readdir, readFile, rm, rmdir, unlink } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { pathExists } from '../fs-util.ts';
import { ioError } from '../io-error-reason.ts';
import { join, relative, resolve, sep } from 'node:path';
import { HangarError } from '../../common/errors.ts';
import { parseDefinition } from '../../common/definition.ts';
import type { VmDefinition } from '../../common/model.ts';
import { describeError } from '../../common/errors.ts';
import { writeFileAtomic } from './atomic-write.ts';
import { readSnapshotFile, SNAPSHOTS_FILE } from '../snapshots/snapshot-store.ts';
import { discardSavedState } from '../service/saved-state.ts';

export const DEFINITION_FILE = 'vm.json';
/** What a VM folder keeps once its VM migrated to another core (the definition as it left). */
export const MIGRATED_AWAY_FILE = 'migrated-away.json';
/** Temp files writeFileAtomic leaves when the process dies between creating and renaming them. */
const TEMP_RE = /^\.(vm|snapshots)\.json\.tmp/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface StoredVm {
  id: string;
  dir: string;
  definition?: VmDefinition;
  /** Why the definition could not be used, when it could not. */
  error?: string;
}

export class VmStore {
  readonly vmsDir: string;

  constructor(readonly dataDir: string) {
    this.vmsDir = join(dataDir, 'vms');
  }

  async init(): Promise<void> {
    try {
      await mkdir(this.vmsDir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw ioError('create the VM store', join(this.vmsDir, DEFINITION_FILE), e);
    }
    await this.sweepTempFiles();
  }

  /**
   * Removes temp files an interrupted save left (a crash or kill -9 between write and rename) and
   * VM folders that hold nothing else (a create killed before its first save). Run once at core
   * start, when no save of ours can be in flight. Best effort: a read-only data dir keeps them.
   */
  private async sweepTempFiles(): Promise<void> {
    for (const id of await this.allIds()) {
      const dir = join(this.vmsDir, id);
      const names = await readdir(dir).catch(() => [] as string[]);
      const temps = names.filter((n) => TEMP_RE.test(n));
      for (const t of temps) await unlink(join(dir, t)).catch(() => {});
      if (temps.length > 0 && temps.length === names.length) await rmdir(dir).catch(() => {});
    }
  }

  vmDir(id: string): string {
    if (!UUID_RE.test(id)) throw new HangarError('invalid-input', `"${id}" is not a VM id`);
    return join(this.vmsDir, id);
  }

  private async allIds(): Promise<string[]> {
    try {
      return (await readdir(this.vmsDir)).filter((e) => UUID_RE.test(e));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  /**
   * The ids of all VM folders (one readdir, plus one per folder without a vm.json). A folder that
   * holds no vm.json and nothing but save temp files is no VM: a create that has not saved yet,
   * or one killed mid-save (init sweeps those); listing it would show a ghost "broken" VM.
   */
  async listIds(): Promise<string[]> {
    const ids = await this.allIds();
    const keep = await Promise.all(ids.map(async (id) => {
      const dir = join(this.vmsDir, id);
      if (existsSync(join(dir, DEFINITION_FILE))) return true;
      const names = await readdir(dir).catch(() => [] as string[]);
      // A VM that migrated to another core: its folder stays (its disks, the definition as it left), no VM here.
      if (names.includes(MIGRATED_AWAY_FILE)) return false;
      return names.some((n) => !TEMP_RE.test(n));
    }));
    return ids.filter((_, i) => keep[i]);
  }

  async list(): Promise<StoredVm[]> {
    return Promise.all((await this.listIds()).map((id) => this.load(id)));
  }

  async load(id: string): Promise<StoredVm> {
    const dir = this.vmDir(id);
    const file = join(dir, DEFINITION_FILE);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      return { id, dir, error: `cannot read ${file}: ${(e as Error).message}` };
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      return { id, dir, error: `${file} is not valid JSON (${(e as Error).message}); fix or restore it, or delete the VM` };
    }
    try {
      const definition = parseDefinition(raw);
      if (definition.id !== id) return { id, dir, error: `${file} has id ${definition.id} but lives in the folder of ${id}` };
      return { id, dir, definition };
    } catch (e) {
      return { id, dir, error: `${file}: ${describeError(e)}` };
    }
  }

  /** Writes a new VM's folder and definition; fails if the folder already exists. */
  async create(def: VmDefinition): Promise<StoredVm> {
    const dir = this.vmDir(def.id);
    try {
      await mkdir(this.vmsDir, { recursive: true, mode: 0o700 });
      await mkdir(dir, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new HangarError('already-exists', `a VM with id ${def.id} already exists`);
      throw ioError(`create VM "${def.name}"`, join(dir, DEFINITION_FILE), e);
    }
    try {
      await this.save(def);
    } catch (e) {
      // Nothing half-made: the folder goes again (the temp file is already gone).
      await rm(dir, { recursive: true, force: true }).catch(() => {});
      throw e;
    }
    return { id: def.id, dir, definition: def };
  }

  async save(def: VmDefinition): Promise<void> {
    const file = join(this.vmDir(def.id), DEFINITION_FILE);
    try {
      await writeFileAtomic(file, JSON.stringify(def, null, 2) + '\n', 0o600);
    } catch (e) {
      throw ioError(`save the definition of VM "${def.name}"`, file, e);
    }
  }

  /**
   * Removes a VM's definition and Hangar's own files. Disk images go only when asked, and only
   * those Hangar created inside the VM folder; anything else found there is kept and reported.
   */
  async remove(vm: StoredVm, deleteDisks: boolean): Promise<{ deletedFiles: string[]; keptFiles: string[] }> {
    const deletedFiles: string[] = [];
    const keptFiles: string[] = [];
    const disks = vm.definition?.disks ?? [];
    for (const d of disks) {
      if (!deleteDisks || !d.owned || !isInside(vm.dir, d.file)) {
        if (await pathExists(d.file)) keptFiles.push(d.file);
        continue;
      }
      await unlink(d.file).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'ENOENT') throw e; });
      deletedFiles.push(d.file);
    }
    // Snapshot files go with the disks: the overlays Hangar made and the VM's own images that
    // snapshots froze (their records say which); the records and screenshots with them.
    if (deleteDisks) {
      const snaps = await readSnapshotFile(vm.dir).catch(() => null);
      const frozen = snaps ? [...snaps.overlays, ...snaps.snapshots.flatMap((r) => r.disks.filter((d) => ownedIn(r.definition, d.diskId)).map((d) => d.file))] : [];
      for (const f of new Set(frozen)) {
        if (!isInside(vm.dir, f) || !(await pathExists(f))) continue;
        await unlink(f);
        deletedFiles.push(f);
      }
      for (const f of [SNAPSHOTS_FILE, 'snapshots']) {
        const p = join(vm.dir, f);
        if (!(await pathExists(p))) continue;
        await rm(p, { recursive: true, force: true });
        deletedFiles.push(p);
      }
    }
    // VM state Hangar made (UEFI variables, TPM state) goes with the disks: it may hold keys the
    // disks need (e.g. a TPM-sealed disk encryption key).
    for (const f of VM_STATE_FILES) {
      const p = join(vm.dir, f);
      if (!(await pathExists(p))) continue;
      if (!deleteDisks) continue; // listed as kept below
      await rm(p, { recursive: true, force: true });
      deletedFiles.push(p);
    }
    // Hangar's own bookkeeping: safe to remove.
    await rm(join(vm.dir, 'logs'), { recursive: true, force: true });
    // A saved RAM state belongs to this VM's QEMU run and nothing else.
    await discardSavedState(vm.dir);
    // The cloud-init seed (user-data, meta-data, seed.iso) is made from the definition.
    await rm(join(vm.dir, 'cloud-init'), { recursive: true, force: true });
    await unlink(join(vm.dir, DEFINITION_FILE)).catch(() => {});
    deletedFiles.push(join(vm.dir, DEFINITION_FILE));
    // Temp files of an interrupted save would otherwise keep the folder (a ghost VM in the list).
    for (const f of await readdir(vm.dir).catch(() => [] as string[])) {
      if (TEMP_RE.test(f)) await unlink(join(vm.dir, f)).catch(() => {});
    }
    const left = await readdir(vm.dir).catch(() => [] as string[]);
    if (left.length === 0) {
      await rmdir(vm.dir).catch(() => {});
    } else {
      for (const f of left) {
        const p = join(vm.dir, f);
        if (!keptFiles.includes(p)) keptFiles.push(p);
      }
    }
    return { deletedFiles, keptFiles };
  }
}

function ownedIn(def: Record<string, unknown>, diskId: string): boolean {
  return (def.disks as Array<{ id: string; owned?: boolean }> | undefined)?.some((d) => d.id === diskId && d.owned === true) ?? false;
}

/** Files and dirs Hangar makes in a VM folder besides disks: the UEFI NVRAM copy and the TPM state. */
export const VM_STATE_FILES = ['uefi-vars.fd', 'tpm'] as const;

export function isInside(dir: string, file: string): boolean {
  const rel = relative(resolve(dir), resolve(file));
  return rel !== '' && !rel.startsWith('..' + sep) && rel !== '..' && !rel.startsWith(sep);
}
