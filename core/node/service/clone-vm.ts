// Clones (virt-clone's job): a new VM with a new id, name and MACs, and its own copy of every disk
// the source owns (qemu-img convert, with progress and cancel) or, linked, a qcow2 overlay on
// each (the source is then protected: see CoreService.refuseIfLinkedClones). The clone is built
// in a hidden staging folder and renamed into place only when complete, so a cancel, a failure
// or a crash leaves nothing a listing would show (the core sweeps stale staging folders).
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, rename, rm, copyFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import type { CloneRequest } from '../../common/api.ts';
import { parseDefinition } from '../../common/definition.ts';
import { HangarError } from '../../common/errors.ts';
import type { DiskDefinition, VmDefinition } from '../../common/model.ts';
import { buildSeedIso, SEED_FILE } from '../cloud-init/seed.ts';
import { checkFreeSpace, formatBytes } from '../store/import-disk.ts';
import { cancelledError, convertImage, createOverlay, imageInfo } from '../store/qemu-img.ts';
import { writeFileAtomic } from '../store/atomic-write.ts';
import { DEFINITION_FILE, isInside } from '../store/vm-store.ts';
import type { VmInstance } from './vm-instance.ts';

export const CLONE_STAGING_PREFIX = '.clone-';

export interface CloneDeps {
  vmsDir: string;
  randomMac(): string;
  /** The one validation: name unique and safe, disks not written by two VMs, host fit. */
  check(def: VmDefinition): Promise<void>;
  progress(step: string, fraction: number): void;
}

interface PlannedDisk {
  disk: DiskDefinition;
  /** copy: qemu-img convert; link: a qcow2 overlay on the source's file; share: the same file (not owned). */
  how: 'copy' | 'link' | 'share';
  target: string;
  bytes: number;
}

export async function cloneVm(src: VmInstance, req: CloneRequest, deps: CloneDeps, signal?: AbortSignal): Promise<VmDefinition> {
  const def = src.definition;
  const linked = req.linked === true;
  if (linked && src.state !== 'stopped') {
    throw new HangarError('invalid-state', `a linked clone needs VM "${def.name}" stopped (it is ${src.state}): its images become the clones' read-only base`, 'shut it down first');
  }
  if (src.info().pending?.length) {
    throw new HangarError('invalid-state', `VM "${def.name}" has changes pending for its next boot: the running QEMU and its definition differ`, 'restart it (or undo the changes), then clone it');
  }
  const id = randomUUID();
  const staging = join(deps.vmsDir, `${CLONE_STAGING_PREFIX}${id}`);
  const plan: PlannedDisk[] = [];
  for (const d of def.disks) {
    const unownedWritable = !d.owned && !d.readOnly;
    if (unownedWritable && req.unowned !== 'copy' && req.unowned !== 'share') {
      throw new HangarError('invalid-input', `disk ${d.id} (${d.file}) is not VM "${def.name}"'s own (it is used in place): cloning it means copying it or sharing it`,
        'say which: --copy-unowned makes the clone its own copy, --share-unowned lets both use the file (only read-only disks can be shared)');
    }
    const how: PlannedDisk['how'] = !d.owned && (d.readOnly || req.unowned === 'share') ? 'share' : linked ? 'link' : 'copy';
    const format = how === 'link' ? 'qcow2' : d.format;
    const info = how === 'share' ? null : await imageInfo(d.file);
    plan.push({ disk: d, how, target: how === 'share' ? d.file : join(deps.vmsDir, id, `${d.id}.${format === 'qcow2' ? 'qcow2' : 'img'}`), bytes: how === 'copy' ? Math.min(info!.actualSize ?? info!.virtualSize, info!.virtualSize) : 0 });
  }
  const disks: DiskDefinition[] = plan.map((p) => p.how === 'share' ? { ...p.disk, owned: false }
    : { ...p.disk, file: p.target, format: p.how === 'link' ? 'qcow2' : p.disk.format, owned: true });
  const raw = def as unknown as Record<string, unknown>;
  // Media kept in the source's folder (the cloud-init seed) are the clone's own, in its folder.
  const newDir = join(deps.vmsDir, id);
  const cdroms = def.cdroms.map((c) => c.file && isInside(src.stored.dir, c.file) ? { ...c, file: join(newDir, relative(src.stored.dir, c.file)) } : c);
  const next = parseDefinition({
    ...raw, id, name: req.name, disks, cdroms, autostart: false, createdAt: new Date().toISOString(),
    description: req.description ?? def.description,
    nics: def.nics.map((n) => ({ ...n, mac: deps.randomMac() })),
    ...(linked ? { linkedTo: def.id } : { linkedTo: undefined }),
  });
  await deps.check(next);
  const total = plan.reduce((s, p) => s + p.bytes, 0);
  await mkdir(deps.vmsDir, { recursive: true, mode: 0o700 });
  await checkFreeSpace(deps.vmsDir, total, `a clone of VM "${def.name}" (${formatBytes(total)})`);
  await mkdir(staging, { mode: 0o700 });
  try {
    let done = 0;
    for (const p of plan) {
      if (signal?.aborted) throw cancelledError();
      const target = join(staging, p.target.slice(join(deps.vmsDir, id).length + 1));
      if (p.how === 'copy') {
        const step = `copying disk ${p.disk.id}`;
        deps.progress(step, total ? done / total : 0);
        // A paused source is quiescent (QEMU drained and flushed on pause) but holds its locks: read shared.
        await convertImage(p.disk.file, p.disk.format, target, p.disk.format === 'qcow2' ? 'qcow2' : 'raw', {
          ...(signal ? { signal } : {}), shared: src.state !== 'stopped',
          onProgress: (f) => deps.progress(step, total ? (done + f * p.bytes) / total : f),
        });
        done += p.bytes;
      } else if (p.how === 'link') {
        await createOverlay(target, p.disk.file, p.disk.format, (await imageInfo(p.disk.file)).virtualSize);
      }
    }
    // Its own UEFI variables; the TPM's state (keys sealed to this machine's measurements) only when asked.
    const vars = join(src.stored.dir, 'uefi-vars.fd');
    if (existsSync(vars)) await copyFile(vars, join(staging, 'uefi-vars.fd'));
    const tpm = join(src.stored.dir, 'tpm');
    if (req.copyTpm && existsSync(tpm)) await cp(tpm, join(staging, 'tpm'), { recursive: true });
    // The seed carries the instance id: the clone's is new, so cloud-init sets it up as a new machine.
    if (next.cloudInit) await buildSeedIso(next, staging);
    for (const c of def.cdroms) {
      if (!c.file || !isInside(src.stored.dir, c.file) || (next.cloudInit && c.file === join(src.stored.dir, 'cloud-init', SEED_FILE))) continue;
      const to = join(staging, relative(src.stored.dir, c.file));
      await mkdir(dirname(to), { recursive: true });
      await copyFile(c.file, to);
    }
    await writeFileAtomic(join(staging, DEFINITION_FILE), JSON.stringify(next, null, 2) + '\n', 0o600);
    if (signal?.aborted) throw cancelledError();
    await rename(staging, join(deps.vmsDir, id));
  } catch (e) {
    await rm(staging, { recursive: true, force: true });
    throw e;
  }
  deps.progress('done', 1);
  return next;
}

/** Removes staging folders of clones a killed core did not finish. */
export async function sweepCloneStaging(vmsDir: string, names: string[]): Promise<void> {
  for (const n of names.filter((x) => x.startsWith(CLONE_STAGING_PREFIX))) await rm(join(vmsDir, n), { recursive: true, force: true });
}
