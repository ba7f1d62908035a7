// VM definitions on disk: one folder per VM (named by its id, so renames never move files),
// holding vm.json, the disks Hangar created, and logs. A definition that cannot be read makes
// only that VM "broken"; every other VM keeps working.
import { mkdir, readdir, readFile, rm, rmdir, unlink } from 'node:fs/promises';
import { pathExists } from '../fs-util.ts';
import { join, relative, resolve, sep } from 'node:path';
import { HangarError } from '../../common/errors.ts';
import { parseDefinition } from '../../common/definition.ts';
import type { VmDefinition } from '../../common/model.ts';
import { describeError } from '../../common/errors.ts';
import { writeFileAtomic } from './atomic-write.ts';

export const DEFINITION_FILE = 'vm.json';
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
    await mkdir(this.vmsDir, { recursive: true, mode: 0o700 });
  }

  vmDir(id: string): string {
    if (!UUID_RE.test(id)) throw new HangarError('invalid-input', `"${id}" is not a VM id`);
    return join(this.vmsDir, id);
  }

  /** The ids of all VM folders (cheap: one readdir). */
  async listIds(): Promise<string[]> {
    try {
      return (await readdir(this.vmsDir)).filter((e) => UUID_RE.test(e));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
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
    await mkdir(this.vmsDir, { recursive: true, mode: 0o700 });
    try {
      await mkdir(dir, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new HangarError('already-exists', `a VM with id ${def.id} already exists`);
      throw e;
    }
    await this.save(def);
    return { id: def.id, dir, definition: def };
  }

  async save(def: VmDefinition): Promise<void> {
    const file = join(this.vmDir(def.id), DEFINITION_FILE);
    await writeFileAtomic(file, JSON.stringify(def, null, 2) + '\n', 0o600);
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
    // The cloud-init seed (user-data, meta-data, seed.iso) is made from the definition.
    await rm(join(vm.dir, 'cloud-init'), { recursive: true, force: true });
    await unlink(join(vm.dir, DEFINITION_FILE)).catch(() => {});
    deletedFiles.push(join(vm.dir, DEFINITION_FILE));
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

/** Files and dirs Hangar makes in a VM folder besides disks: the UEFI NVRAM copy and the TPM state. */
export const VM_STATE_FILES = ['uefi-vars.fd', 'tpm'] as const;

export function isInside(dir: string, file: string): boolean {
  const rel = relative(resolve(dir), resolve(file));
  return rel !== '' && !rel.startsWith('..' + sep) && rel !== '..' && !rel.startsWith(sep);
}
