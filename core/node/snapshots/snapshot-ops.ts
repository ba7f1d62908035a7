// Snapshot operations on one VM, each under the VM's lock: create, revert, delete, list.
// Internal snapshots live inside every qcow2 disk (qemu-img snapshot offline; QMP snapshot-save /
// -load / -delete jobs live, RAM included); external ones freeze the disks under new qcow2
// overlays (qemu-img create -b offline; blockdev-snapshot live) and are merged away on delete
// (commit into the one file that depends on them, or stream into each of several), so no other
// snapshot and never the current state loses data. Order matters for crashes: the journal is
// written first, the definition names a new overlay before QEMU writes to it, a file is deleted
// only after nothing names it.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDefinition } from '../../common/definition.ts';
import { HangarError } from '../../common/errors.ts';
import type { DiskDefinition, VmDefinition } from '../../common/model.ts';
import { checkSnapshotName, findSnapshot } from '../../common/snapshots.ts';
import type { CreateSnapshotRequest, SnapshotInfo, SnapshotKind, SnapshotList, SnapshotProgress } from '../../common/snapshots.ts';
import { isActive } from '../../common/state.ts';
import { clipboardBlocksRamState, displayCapabilities } from '../../common/display.ts';
import { qemuInfo } from '../host/binaries.ts';
import { pngSize, takeScreenshot } from '../display/display-ops.ts';
import type { Screenshot } from '../../common/api.ts';
import { commitImage, createOverlay, imageInfo, imageSnapshot, rebaseImage } from '../store/qemu-img.ts';
import type { QmpClient } from '../qmp/client.ts';
import type { VmInstance } from '../service/vm-instance.ts';
import { dropNode, liveDisk, liveDisks, nodeOfFile } from './block-nodes.ts';
import { runJob } from './qmp-jobs.ts';
import { liveHotplugBlocker } from '../service/cpu-memory-ops.ts';
import { crashPointForTests, killQemuForTests } from '../service/test-crash.ts';
import { readSnapshotFile, snapshotInfo, writeSnapshotFile } from './snapshot-store.ts';
import { isInside } from '../store/vm-store.ts';
import type { SnapshotFile, SnapshotRecord } from './snapshot-store.ts';
import { withGuestFrozen } from '../agent/quiesce.ts';

export interface SnapshotDeps {
  /** Writes the VM's definition (atomically) and tells clients. */
  save(vm: VmInstance, def: VmDefinition): Promise<void>;
  progress(e: SnapshotProgress): void;
}

type Can = SnapshotList['can'];

/** The disks a snapshot covers: every writable one (read-only disks never change). */
function coveredDisks(def: VmDefinition): DiskDefinition[] {
  return def.disks.filter((d) => !d.readOnly);
}

/** What a new snapshot can be, each with the reason when it cannot; checked before anything is done. */
export function snapshotAbilities(def: VmDefinition, state: string, data: SnapshotFile, qemu?: { major: number; minor: number }): Can {
  const disks = coveredDisks(def);
  type Ability = Can['internal'];
  const no = (reason: string): Ability => ({ available: false, reason });
  const yes: Ability = { available: true };
  const common = disks.length === 0 ? 'the VM has no writable disk to snapshot'
    : disks.find((d) => d.bus === 'vhost-user-blk')
      ? `disk ${disks.find((d) => d.bus === 'vhost-user-blk')!.id} is served by qemu-storage-daemon (vhost-user-blk), which Hangar cannot snapshot; change its bus to virtio-blk to snapshot it`
      : undefined;
  const hasExternal = data.snapshots.some((s) => s.kind === 'external');
  const hasInternal = data.snapshots.some((s) => s.kind === 'internal');
  const raw = disks.filter((d) => d.format !== 'qcow2');
  const internal: Ability = common ? no(common)
    : raw.length ? no(`disk${raw.length > 1 ? 's' : ''} ${raw.map((d) => `${d.id} (${d.file})`).join(', ')} ${raw.length > 1 ? 'are' : 'is'} raw: internal snapshots live inside qcow2 files; take an external (disk-only) snapshot, or convert the disk to qcow2`)
      : hasExternal ? no('the VM has external snapshots: its disks are overlays now; keep taking external ones, or delete those first')
        : yes;
  const active = isActive(state as never);
  const vfio = def.hostPci.length + def.mdevs.length;
  const memory: Ability = !active ? no('the VM is not running: there is no RAM state to save')
    : !internal.available ? no(internal.reason!)
      : vfio ? no('the VM has passthrough devices (VFIO): their state cannot be saved; take a disk-only snapshot')
        : def.shares.length ? no(`the VM shares folders (${def.shares.map((s) => s.id).join(', ')}): their state cannot be saved with the RAM; take a disk-only snapshot`)
          : clipboardBlocksRamState(def, qemu) ? no(`the VM's ${clipboardBlocksRamState(def, qemu)!.replace(/^its /, '')}`)
            : yes;
  const external = common ? no(common)
    : hasInternal ? no('the VM has internal snapshots: delete them first, or keep taking internal ones')
      : yes;
  return { internal, memory, external };
}

/** Compares the records with the disks (qemu-img info): each mismatch is a problem to report, never fixed silently. */
async function checkRecords(vm: VmInstance, data: SnapshotFile): Promise<{ problems: string[]; byId: Map<string, string> }> {
  const problems: string[] = [];
  const byId = new Map<string, string>();
  const note = (id: string, text: string): void => {
    byId.set(id, byId.has(id) ? `${byId.get(id)}; ${text}` : text);
  };
  const infos = new Map<string, Awaited<ReturnType<typeof imageInfo>> | null>();
  const info = async (file: string): Promise<Awaited<ReturnType<typeof imageInfo>> | null> => {
    if (!infos.has(file)) infos.set(file, existsSync(file) ? await imageInfo(file).catch(() => null) : null);
    return infos.get(file)!;
  };
  const records = new Map(data.snapshots.map((s) => [s.id, s]));
  for (const s of data.snapshots) {
    for (const d of s.disks) {
      const i = await info(d.file);
      if (!i) { note(s.id, `disk ${d.diskId}: ${d.file} is missing or unreadable`); continue; }
      if (s.kind === 'internal' && !i.snapshots.some((x) => x.name === s.name)) {
        note(s.id, `disk ${d.diskId} (${d.file}) does not hold it (qemu-img snapshot -l)`);
      }
      if (s.kind === 'external' && s.parent) {
        const p = records.get(s.parent)?.disks.find((x) => x.diskId === d.diskId);
        if (p && i.backingFile !== p.file) note(s.id, `disk ${d.diskId}: ${d.file} is backed by ${i.backingFile ?? 'nothing'}, not by ${p.file} of its parent`);
      }
    }
  }
  // Internal snapshots in the disks that Hangar has no record of: named, left alone.
  const def = vm.stored.definition;
  if (def) {
    const known = new Set(data.snapshots.filter((s) => s.kind === 'internal').map((s) => s.name));
    for (const d of coveredDisks(def).filter((x) => x.format === 'qcow2')) {
      const i = await info(d.file);
      for (const t of i?.snapshots ?? []) {
        if (!known.has(t.name)) problems.push(`disk ${d.id} (${d.file}) holds an internal snapshot "${t.name}" that Hangar has no record of (left alone; qemu-img snapshot -d removes it)`);
      }
    }
    // The current state's overlays read through the current snapshot's files.
    const cur = data.current ? records.get(data.current) : undefined;
    if (cur?.kind === 'external') {
      for (const d of cur.disks) {
        const top = def.disks.find((x) => x.id === d.diskId);
        const i = top ? await info(top.file) : null;
        if (top && i && i.backingFile !== d.file) {
          problems.push(`disk ${d.diskId}: the current file ${top.file} is backed by ${i.backingFile ?? 'nothing'}, not by ${d.file} of snapshot "${cur.name}"`);
        }
      }
    }
  }
  for (const [id, text] of byId) problems.push(`snapshot "${records.get(id)?.name ?? id}": ${text}`);
  if (data.journal) {
    const j = data.journal;
    const what = { create: 'being created', revert: 'being reverted to', delete: 'being deleted' }[j.op];
    const s = data.snapshots.find((x) => x.id === j.snapshot || x.name === j.snapshot);
    const fix = j.op === 'revert' ? 'revert to it again' : 'delete it (hangar snapshot delete), which removes what was made';
    const text = `snapshot "${s?.name ?? j.snapshot}" was interrupted while ${what} (${j.startedAt}): the disks may hold part of it; ${fix}`;
    problems.push(text);
    if (s) note(s.id, `interrupted while ${what}`);
  }
  return { problems, byId };
}

export async function listSnapshots(vm: VmInstance): Promise<SnapshotList> {
  const data = await readSnapshotFile(vm.stored.dir);
  const { problems, byId } = await checkRecords(vm, data);
  const def = vm.stored.definition;
  const broken = { available: false, reason: 'the VM definition cannot be read' };
  return {
    snapshots: data.snapshots.map((s) => snapshotInfo(s, byId.get(s.id))),
    current: data.current,
    problems,
    can: def ? snapshotAbilities(isActive(vm.state) ? vm.runningDefinition : def, vm.state, data, (await qemuInfo().catch(() => undefined))?.version) : { internal: broken, memory: broken, external: broken },
  };
}

/** The screen a snapshot recorded when it was taken (running VMs with a display only). */
export async function snapshotScreenshot(vm: VmInstance, ref: string): Promise<Screenshot> {
  const data = await readSnapshotFile(vm.stored.dir);
  const s = findSnapshot({ snapshots: data.snapshots.map((r) => snapshotInfo(r)) }, ref, vm.name);
  const record = data.snapshots.find((r) => r.id === s.id)!;
  // Only the file create wrote: the record's path is never trusted to point elsewhere.
  if (record.screenshot !== `snapshots/${record.id}.png`) {
    throw new HangarError('not-found', `snapshot "${s.name}" of VM "${vm.name}" has no screenshot`,
      'a snapshot keeps the screen only when it is taken while the VM runs with a display');
  }
  let png: Buffer;
  try {
    png = await readFile(join(vm.stored.dir, record.screenshot));
  } catch (e) {
    throw new HangarError('not-found', `the screenshot of snapshot "${s.name}" of VM "${vm.name}" cannot be read: ${(e as Error).message}`,
      'the snapshot itself is not affected; only its picture is missing');
  }
  return { pngBase64: png.toString('base64'), ...pngSize(png), takenAt: record.createdAt };
}

/** Whether a file is still named by the VM's definition or by a snapshot other than `except`. */
function stillNamed(vm: VmInstance, data: SnapshotFile, file: string, except: string): boolean {
  return vm.definition.disks.some((d) => d.file === file)
    || data.snapshots.some((s) => s.id !== except && s.disks.some((d) => d.file === file));
}

function journalName(data: SnapshotFile): string {
  const j = data.journal;
  return data.snapshots.find((s) => s.id === j?.snapshot)?.name ?? j?.snapshot ?? '';
}

/** A definition with the files of some disks replaced (by disk id). */
function withDiskFiles(def: VmDefinition, files: Map<string, { file: string; format: string; owned?: boolean }>): VmDefinition {
  return { ...def, disks: def.disks.map((d) => { const f = files.get(d.id); return f ? { ...d, file: f.file, format: f.format as DiskDefinition['format'], owned: f.owned ?? d.owned } : d; }) };
}

/** A snapshot's stored definition, brought up to today's model, keeping the VM's current name and description. */
function restoredDefinition(vm: VmInstance, r: SnapshotRecord): VmDefinition {
  const def = parseDefinition(r.definition);
  return { ...def, name: vm.definition.name, description: vm.definition.description };
}

/** Compares hardware only (name and description may change without touching what QEMU runs). */
function sameHardware(a: VmDefinition, b: VmDefinition): boolean {
  const strip = (d: VmDefinition): string => JSON.stringify({ ...d, name: '', description: '' });
  return strip(a) === strip(b);
}

function overlayPath(vm: VmInstance, diskId: string, snapshotId: string): string {
  return join(vm.stored.dir, `${diskId}.${snapshotId.slice(0, 8)}-${Date.now().toString(36)}.qcow2`);
}

export class SnapshotOps {
  constructor(private readonly deps: SnapshotDeps) {}

  private progress(vm: VmInstance, op: SnapshotProgress['op'], snapshot: string, step: string, fraction: number, done?: number, total?: number): void {
    const e: SnapshotProgress = { vm: vm.name, op, snapshot, step, fraction };
    if (done !== undefined && total !== undefined && total > 1) { e.doneBytes = done; e.totalBytes = total; }
    this.deps.progress(e);
  }

  async create(vm: VmInstance, req: CreateSnapshotRequest): Promise<SnapshotInfo> {
    const name = checkSnapshotName(req.name);
    const description = req.description ?? '';
    if (description.length > 4096) throw new HangarError('invalid-input', 'a snapshot description can be at most 4096 characters');
    return vm.exclusive('snapshot', async () => {
      const data = await readSnapshotFile(vm.stored.dir);
      if (data.journal) {
        throw new HangarError('invalid-state', `an earlier operation on snapshot "${journalName(data)}" of VM "${vm.name}" was interrupted`,
          `see \`hangar snapshot list ${vm.name}\` and finish it (revert to it or delete it) first`);
      }
      if (data.snapshots.some((s) => s.name === name)) {
        throw new HangarError('already-exists', `VM "${vm.name}" already has a snapshot "${name}"`, 'choose another name, or delete the old one first');
      }
      const active = isActive(vm.state);
      const def = active ? vm.runningDefinition : vm.definition;
      const can = snapshotAbilities(def, vm.state, data, (await qemuInfo().catch(() => undefined))?.version);
      const allInternal = coveredDisks(def).every((d) => d.format === 'qcow2');
      const kind: SnapshotKind = req.kind ?? (allInternal && can.internal.available ? 'internal' : 'external');
      const memory = kind === 'internal' && active && (req.memory ?? true);
      if (kind === 'external' && req.memory) throw new HangarError('invalid-input', 'external snapshots hold the disks only', 'take an internal snapshot to keep the RAM too, or leave out --memory');
      const ability = kind === 'external' ? can.external : memory ? can.memory : can.internal;
      if (!ability.available) throw new HangarError('invalid-state', `cannot take ${memory ? 'a snapshot with memory' : `an ${kind} snapshot`} of VM "${vm.name}": ${ability.reason}`);
      const hot = memory ? await liveHotplugBlocker(vm.liveQmp('a snapshot')) : null;
      if (hot) throw new HangarError('invalid-state', `cannot take a snapshot with memory of VM "${vm.name}": ${hot}`, 'or take a disk-only snapshot now (--disk-only)');
      const disks = coveredDisks(def);
      const record: SnapshotRecord = {
        id: randomUUID(), name, description, createdAt: new Date().toISOString(), parent: data.current, kind, memory,
        vmState: vm.state === 'paused' ? 'paused' : active ? 'running' : 'stopped',
        disks: disks.map((d) => ({ diskId: d.id, file: d.file, format: d.format })),
        definition: def as unknown as Record<string, unknown>,
      };
      if (active && displayCapabilities(def).vnc) {
        try {
          const shot = await takeScreenshot(vm);
          await mkdir(join(vm.stored.dir, 'snapshots'), { recursive: true, mode: 0o700 });
          await writeFile(join(vm.stored.dir, 'snapshots', `${record.id}.png`), Buffer.from(shot.pngBase64, 'base64'), { mode: 0o600 });
          record.screenshot = `snapshots/${record.id}.png`;
        } catch { /* no picture is no reason to fail the snapshot */ }
      }
      // Journal first: a crash from here on is reported by the next list.
      const overlays = kind === 'external' ? disks.map((d) => overlayPath(vm, d.id, record.id)) : [];
      data.snapshots.push(record);
      // Known before they exist: a create interrupted after making them leaves nothing unaccounted for.
      data.overlays.push(...overlays);
      data.journal = { op: 'create', snapshot: record.id, startedAt: record.createdAt, files: overlays };
      await writeSnapshotFile(vm.stored.dir, data);
      crashPointForTests('snapshot-journal');
      this.progress(vm, 'create', name, memory ? 'saving the RAM and the disks' : 'snapshotting the disks', 0);
      try {
        const take = (): Promise<void> => (kind === 'internal' ? this.createInternal(vm, record, memory) : this.createExternal(vm, record, overlays));
        // A running guest's disks alone: frozen filesystems make them consistent (the RAM of a
        // memory snapshot already is, and a paused or stopped guest writes nothing).
        if (vm.state === 'running' && !memory) record.note = (await withGuestFrozen(vm.agentSocket(), take, (l) => vm.log(l))).note;
        else await take();
      } catch (e) {
        // Nothing half-made stays: the record and journal go (the op undid its own disk changes).
        data.snapshots = data.snapshots.filter((s) => s.id !== record.id);
        data.overlays = data.overlays.filter((f) => !overlays.includes(f));
        delete data.journal;
        await writeSnapshotFile(vm.stored.dir, data).catch(() => {});
        if (record.screenshot) await unlink(join(vm.stored.dir, record.screenshot)).catch(() => {});
        throw e;
      }
      crashPointForTests('snapshot-before-record');
      if (memory) record.vmStateBytes = (await imageInfo(disks[0]!.file)).snapshots.find((s) => s.name === name)?.vmStateSize ?? 0;
      data.current = record.id;
      delete data.journal;
      await writeSnapshotFile(vm.stored.dir, data);
      this.progress(vm, 'create', name, 'done', 1);
      await vm.log(`snapshot "${name}" taken (${kind}${memory ? ', with memory' : ''}${record.note ? `; ${record.note}` : ''})`);
      return snapshotInfo(record);
    });
  }

  private async createInternal(vm: VmInstance, r: SnapshotRecord, memory: boolean): Promise<void> {
    if (isActive(vm.state)) {
      const qmp = vm.liveQmp('a snapshot');
      const live = await liveDisks(qmp);
      const nodes = r.disks.map((d) => liveDisk(live, d.diskId).node);
      if (memory) {
        await runJob(qmp, 'snapshot-save', { tag: r.name, vmstate: nodes[0], devices: nodes }, 'saving the snapshot',
          'check the free space where the disks are, and that every device can be migrated (see the VM log)',
          { onProgress: (done, total) => this.progress(vm, 'create', r.name, 'saving the RAM and the disks', total > 0 ? done / total : 0) });
      } else {
        await qmp.execute('transaction', { actions: nodes.map((n) => ({ type: 'blockdev-snapshot-internal-sync', data: { device: n, name: r.name } })) });
      }
      return;
    }
    // Offline: all or none across the disks.
    const done: string[] = [];
    try {
      for (const d of r.disks) {
        await imageSnapshot('create', d.file, r.name);
        done.push(d.file);
        if (done.length === 1 && r.disks.length > 1) crashPointForTests('snapshot-disk');
        this.progress(vm, 'create', r.name, `disk ${d.diskId}`, done.length / r.disks.length);
      }
    } catch (e) {
      for (const f of done) await imageSnapshot('delete', f, r.name).catch(() => {});
      throw e;
    }
  }

  private async createExternal(vm: VmInstance, r: SnapshotRecord, overlays: string[]): Promise<void> {
    const made: string[] = [];
    const files = new Map(r.disks.map((d, i) => [d.diskId, { file: overlays[i]!, format: 'qcow2', owned: true }]));
    const oldSaved = vm.definition;
    try {
      for (const [i, d] of r.disks.entries()) {
        const size = (await imageInfo(d.file)).virtualSize;
        await createOverlay(overlays[i]!, d.file, d.format, size);
        made.push(overlays[i]!);
      }
      if (!isActive(vm.state)) {
        await this.deps.save(vm, withDiskFiles(oldSaved, files));
        return;
      }
      const qmp = vm.liveQmp('a snapshot');
      const live = await liveDisks(qmp);
      const nodes: string[] = [];
      try {
        for (const [i, d] of r.disks.entries()) {
          const disk = vm.runningDefinition.disks.find((x) => x.id === d.diskId)!;
          const node = `${d.diskId.slice(0, 16)}-o${r.id.slice(0, 8)}`;
          await qmp.execute('blockdev-add', {
            driver: 'qcow2', 'node-name': node, backing: null, discard: disk.discard ? 'unmap' : 'ignore',
            file: { driver: 'file', filename: overlays[i], aio: disk.aio, discard: disk.discard ? 'unmap' : 'ignore' },
          });
          nodes.push(node);
        }
        // The definitions name the overlays before QEMU writes to them: an empty overlay reads as its backing file.
        await this.deps.save(vm, withDiskFiles(oldSaved, files));
        await vm.setRunningDefinition(withDiskFiles(vm.runningDefinition, files));
        await qmp.execute('transaction', {
          actions: r.disks.map((d, i) => ({ type: 'blockdev-snapshot', data: { node: liveDisk(live, d.diskId).node, overlay: nodes[i] } })),
        });
      } catch (e) {
        for (const n of nodes) await qmp.execute('blockdev-del', { 'node-name': n }).catch(() => {});
        const back = new Map(r.disks.map((d) => [d.diskId, { file: d.file, format: d.format }]));
        await vm.setRunningDefinition(withDiskFiles(vm.runningDefinition, back));
        throw e;
      }
    } catch (e) {
      if (vm.definition !== oldSaved) await this.deps.save(vm, oldSaved).catch(() => {});
      for (const f of made) await unlink(f).catch(() => {});
      throw e;
    }
  }

  /**
   * Runs a revert or delete under its journal entry (the caller clears it on success). Only an
   * operation on the snapshot an interrupted one left may run; a failure before any disk changed
   * leaves no entry, one after stays reported.
   */
  private async journaled(vm: VmInstance, data: SnapshotFile, op: 'revert' | 'delete', r: SnapshotRecord, fn: (touched: { disks: boolean }) => Promise<void>): Promise<void> {
    if (data.journal && data.journal.snapshot !== r.id) {
      throw new HangarError('invalid-state', `an earlier operation on snapshot "${journalName(data)}" was interrupted`, 'finish it first (see `hangar snapshot list`)');
    }
    const hadJournal = Boolean(data.journal);
    data.journal = { op, snapshot: r.id, startedAt: new Date().toISOString(), files: [] };
    await writeSnapshotFile(vm.stored.dir, data);
    this.progress(vm, op, r.name, op === 'revert' ? 'reverting' : 'deleting', 0);
    const touched = { disks: false };
    try {
      await fn(touched);
    } catch (e) {
      if (!touched.disks && !hadJournal) {
        delete data.journal;
        await writeSnapshotFile(vm.stored.dir, data).catch(() => {});
      }
      throw e;
    }
  }

  async revert(vm: VmInstance, ref: string): Promise<void> {
    await vm.exclusive('snapshot', async () => {
      const data = await readSnapshotFile(vm.stored.dir);
      const r = findSnapshot(data, ref, vm.name) as unknown as SnapshotRecord;
      const { byId } = await checkRecords(vm, { ...data, journal: undefined });
      if (byId.has(r.id)) throw new HangarError('invalid-state', `snapshot "${r.name}" cannot be reverted to: ${byId.get(r.id)}`, 'see `hangar snapshot list` for every problem');
      await this.journaled(vm, data, 'revert', r, (touched) => (r.kind === 'internal' ? this.revertInternal(vm, r, touched) : this.revertExternal(vm, r, data, touched)));
      data.current = r.id;
      delete data.journal;
      await writeSnapshotFile(vm.stored.dir, data);
      this.progress(vm, 'revert', r.name, 'done', 1);
      await vm.log(`reverted to snapshot "${r.name}"`);
    });
  }

  private async revertInternal(vm: VmInstance, r: SnapshotRecord, touched: { disks: boolean }): Promise<void> {
    const target = restoredDefinition(vm, r);
    const load = async (qmp: QmpClient): Promise<boolean> => {
      const live = await liveDisks(qmp);
      const nodes = r.disks.map((d) => liveDisk(live, d.diskId).node);
      touched.disks = true;
      await runJob(qmp, 'snapshot-load', { tag: r.name, vmstate: nodes[0], devices: nodes }, `loading snapshot "${r.name}"`,
        'the snapshot may be damaged: see `hangar snapshot list`; the disks are as the failed load left them',
        { onProgress: (done, total) => this.progress(vm, 'revert', r.name, 'loading the RAM and the disks', total > 0 ? done / total : 0) });
      return r.vmState === 'paused';
    };
    if (r.memory && isActive(vm.state) && sameHardware(vm.runningDefinition, target)) {
      // Same hardware: load in place (QEMU stops the guest, loads, and runs it again).
      const qmp = vm.liveQmp('a revert');
      const paused = await load(qmp);
      const st = await qmp.queryStatus();
      if (paused && st.running) await qmp.stop();
      if (!paused && !st.running) await qmp.cont();
      if (!sameHardware(vm.definition, target)) await this.deps.save(vm, target);
      return;
    }
    if (isActive(vm.state)) await vm.forceOffLocked(`turned off to revert to snapshot "${r.name}"`);
    if (!r.memory) {
      for (const d of r.disks) {
        touched.disks = true;
        await imageSnapshot('apply', d.file, r.name);
      }
      await this.deps.save(vm, target);
      return;
    }
    // RAM state loads only into the hardware it was saved from: start with the snapshot's definition, load before the guest runs.
    await this.deps.save(vm, target);
    await vm.startLocked({ beforeCont: load });
  }

  private async revertExternal(vm: VmInstance, r: SnapshotRecord, data: SnapshotFile, touched: { disks: boolean }): Promise<void> {
    if (isActive(vm.state)) await vm.forceOffLocked(`turned off to revert to snapshot "${r.name}"`);
    const frozen = new Set(data.snapshots.flatMap((s) => s.disks.map((d) => d.file)));
    const oldTops = vm.definition.disks.map((d) => d.file).filter((f) => data.overlays.includes(f) && !frozen.has(f));
    const made: string[] = [];
    const files = new Map<string, { file: string; format: string; owned: boolean }>();
    try {
      for (const d of r.disks) {
        const ov = overlayPath(vm, d.diskId, r.id);
        await createOverlay(ov, d.file, d.format, (await imageInfo(d.file)).virtualSize);
        made.push(ov);
        files.set(d.diskId, { file: ov, format: 'qcow2', owned: true });
      }
      data.overlays.push(...made);
      await writeSnapshotFile(vm.stored.dir, data);
      touched.disks = true;
      await this.deps.save(vm, withDiskFiles(restoredDefinition(vm, r), files));
    } catch (e) {
      for (const f of made) await unlink(f).catch(() => {});
      throw e;
    }
    // The old current state's own overlays: nothing names them any more.
    for (const f of oldTops) {
      await unlink(f).catch(() => {});
      data.overlays = data.overlays.filter((x) => x !== f);
    }
  }

  async delete(vm: VmInstance, ref: string): Promise<void> {
    await vm.exclusive('snapshot', async () => {
      const data = await readSnapshotFile(vm.stored.dir);
      const r = findSnapshot(data, ref, vm.name) as unknown as SnapshotRecord;
      await this.journaled(vm, data, 'delete', r, (touched) => (r.kind === 'internal' ? this.deleteInternal(vm, r, touched) : this.deleteExternal(vm, r, data, touched)));
      for (const s of data.snapshots) if (s.parent === r.id) s.parent = r.parent;
      if (data.current === r.id) data.current = r.parent;
      data.snapshots = data.snapshots.filter((s) => s.id !== r.id);
      await this.sweepOverlays(vm, data);
      delete data.journal;
      await writeSnapshotFile(vm.stored.dir, data);
      if (r.screenshot) await unlink(join(vm.stored.dir, r.screenshot)).catch(() => {});
      this.progress(vm, 'delete', r.name, 'done', 1);
      await vm.log(`snapshot "${r.name}" deleted`);
    });
  }

  private async deleteInternal(vm: VmInstance, r: SnapshotRecord, touched: { disks: boolean }): Promise<void> {
    // Disks that no longer hold it (an interrupted create or delete) are skipped: deleting finishes the job.
    const holding: typeof r.disks = [];
    for (const d of r.disks) {
      if (existsSync(d.file) && (await imageInfo(d.file)).snapshots.some((s) => s.name === r.name)) holding.push(d);
    }
    if (!holding.length) return;
    touched.disks = true;
    if (isActive(vm.state)) {
      const qmp = vm.liveQmp('deleting a snapshot');
      const live = await liveDisks(qmp);
      const inQemu = holding.filter((d) => live.get(d.diskId)?.chain[0] === d.file);
      if (inQemu.length) {
        await runJob(qmp, 'snapshot-delete', { tag: r.name, devices: inQemu.map((d) => liveDisk(live, d.diskId).node) }, `deleting snapshot "${r.name}"`, 'see the VM log');
      }
      for (const d of holding.filter((x) => !inQemu.includes(x))) await imageSnapshot('delete', d.file, r.name);
      return;
    }
    for (const d of holding) await imageSnapshot('delete', d.file, r.name);
  }

  /**
   * Merges an external snapshot's frozen file F away, per disk: nothing reads F (deleted), one
   * file reads through F (that child is committed into F, which takes its place), or several do
   * (F's data is streamed into each, then F goes). A file of the running QEMU's chain is merged by
   * QEMU itself (block-commit / block-stream jobs), any other by qemu-img.
   */
  private async deleteExternal(vm: VmInstance, r: SnapshotRecord, data: SnapshotFile, touched: { disks: boolean }): Promise<void> {
    const active = isActive(vm.state);
    const qmp = active ? vm.liveQmp('deleting a snapshot') : null;
    touched.disks = true;
    for (const d of r.disks) {
      const F = d.file;
      const children: Array<{ file: string; owner: SnapshotRecord | 'current' }> = [];
      for (const s of data.snapshots) {
        const c = s.parent === r.id ? s.disks.find((x) => x.diskId === d.diskId) : undefined;
        if (c) children.push({ file: c.file, owner: s });
      }
      const top = vm.definition.disks.find((x) => x.id === d.diskId);
      if (data.current === r.id && top && (await imageInfo(top.file)).backingFile === F) children.push({ file: top.file, owner: 'current' });
      const live = qmp ? (await liveDisks(qmp)).get(d.diskId) : undefined;
      const fInfo = await imageInfo(F);
      if (children.length === 1) {
        const c = children[0]!;
        this.progress(vm, 'delete', r.name, `merging ${c.file} into ${F}`, 0);
        if (qmp && live && live.chain.includes(c.file)) {
          const isTop = live.chain[0] === c.file;
          const cNode = await nodeOfFile(qmp, c.file);
          const args: Record<string, unknown> = { device: live.node, 'base-node': await nodeOfFile(qmp, F), 'auto-dismiss': false };
          if (!isTop) args['top-node'] = await nodeOfFile(qmp, c.file);
          // Ready, F holds everything C does and QEMU mirrors new writes into it: the definitions name F
          // before QEMU pivots to it, so no moment exists in which QEMU writes a file they do not name
          // (a core that dies before the pivot leaves it to the re-attach, which follows QEMU's real top).
          const files = new Map([[d.diskId, { file: F, format: fInfo.format }]]);
          const named = { saved: vm.definition, running: vm.runningDefinition };
          try {
            await runJob(qmp, 'block-commit', args, `merging ${c.file} into ${F}`, 'check the free space where the disks are', {
              completeWhenReady: isTop,
              beforeComplete: async () => {
                await this.deps.save(vm, withDiskFiles(vm.definition, files));
                await vm.setRunningDefinition(withDiskFiles(vm.runningDefinition, files));
                crashPointForTests('merge-before-pivot');
              },
              onProgress: (dn, t) => { killQemuForTests('merging', vm.pid); this.progress(vm, 'delete', r.name, `merging into ${F}`, t > 0 ? dn / t : 0, dn, t); },
            });
          } catch (e) {
            if (isTop && vm.definition !== named.saved) {
              await this.deps.save(vm, named.saved).catch(() => {});
              await vm.setRunningDefinition(named.running).catch(() => {});
            }
            throw e;
          }
          await dropNode(qmp, cNode);
        } else {
          await commitImage(c.file);
        }
        // Whatever read through C now reads the same data from F (QEMU already re-pointed the one in its chain).
        for (const g of this.childrenOf(data, c, d.diskId, vm)) {
          if ((await imageInfo(g)).backingFile === c.file) await rebaseImage(g, F, fInfo.format, { unsafe: true, shared: active });
        }
        crashPointForTests('merge-done');
        // F takes C's place everywhere.
        if (c.owner === 'current') {
          const files = new Map([[d.diskId, { file: F, format: fInfo.format }]]);
          await this.deps.save(vm, withDiskFiles(vm.definition, files));
          if (active) await vm.setRunningDefinition(withDiskFiles(vm.runningDefinition, files));
        } else {
          const rec = c.owner.disks.find((x) => x.diskId === d.diskId)!;
          rec.file = F;
          rec.format = fInfo.format;
        }
        await writeSnapshotFile(vm.stored.dir, data);
        if (data.overlays.includes(c.file) && !vm.definition.disks.some((x) => x.file === c.file)) {
          await unlink(c.file).catch(() => {});
          data.overlays = data.overlays.filter((x) => x !== c.file);
        }
        continue;
      }
      const fNode = qmp && live?.chain.includes(F) ? await nodeOfFile(qmp, F) : null;
      for (const c of children) {
        this.progress(vm, 'delete', r.name, `copying ${F} into ${c.file}`, 0);
        if (qmp && live && live.chain.includes(c.file)) {
          const args: Record<string, unknown> = { device: await nodeOfFile(qmp, c.file), 'auto-dismiss': false };
          if (fInfo.backingFile) args['base-node'] = await nodeOfFile(qmp, fInfo.backingFile);
          await runJob(qmp, 'block-stream', args, `copying ${F} into ${c.file}`, 'check the free space where the disks are',
            { onProgress: (dn, t) => this.progress(vm, 'delete', r.name, `copying into ${c.file}`, t > 0 ? dn / t : 0, dn, t) });
        } else {
          await rebaseImage(c.file, fInfo.backingFile ?? null, fInfo.backingFormat ?? undefined, { shared: active });
        }
      }
      if (qmp && fNode) await dropNode(qmp, fNode);
      // Nothing reads F now: an overlay Hangar made goes, and so does the VM's own first image; a disk imported in place stays where it is.
      const ownedAtSnapshot = (r.definition.disks as Array<{ id: string; owned?: boolean }> | undefined)?.find((x) => x.id === d.diskId)?.owned === true;
      // Never a file the definition names (a delete finished after an interrupted merge finds F as the current top).
      if ((data.overlays.includes(F) || (ownedAtSnapshot && isInside(vm.stored.dir, F))) && !stillNamed(vm, data, F, r.id)) {
        await unlink(F).catch(() => {});
        data.overlays = data.overlays.filter((x) => x !== F);
      }
    }
  }

  /**
   * Overlays Hangar made that nothing names any more (a merge interrupted after its pivot leaves the
   * merged overlay behind): deleted, unless the running QEMU still has them in a disk's chain.
   */
  private async sweepOverlays(vm: VmInstance, data: SnapshotFile): Promise<void> {
    const chains = isActive(vm.state) && vm.pid !== undefined
      ? await liveDisks(vm.liveQmp('tidying snapshot files')).then((m) => [...m.values()].flatMap((d) => d.chain), () => null) : [];
    if (chains === null) return; // cannot tell what QEMU holds: keep everything
    const qmp = chains.length ? vm.liveQmp('tidying snapshot files') : null;
    for (const f of [...data.overlays]) {
      if (vm.definition.disks.some((d) => d.file === f) || data.snapshots.some((s) => s.disks.some((d) => d.file === f)) || chains.includes(f)) continue;
      // A node a merge left in QEMU (outside every chain) still holds the file: dropped first.
      if (qmp) await nodeOfFile(qmp, f).then((n) => dropNode(qmp, n), () => {});
      await unlink(f).catch(() => {});
      data.overlays = data.overlays.filter((x) => x !== f);
      await vm.log(`removed ${f}: an overlay nothing reads any more`);
    }
  }

  /** The files that read through child c (its own snapshot children, and the current state if it is current). */
  private childrenOf(data: SnapshotFile, c: { file: string; owner: SnapshotRecord | 'current' }, diskId: string, vm: VmInstance): string[] {
    if (c.owner === 'current') return [];
    const owner = c.owner;
    const out = data.snapshots.filter((s) => s.parent === owner.id).map((s) => s.disks.find((x) => x.diskId === diskId)?.file).filter((f): f is string => Boolean(f));
    if (data.current === owner.id) {
      const top = vm.definition.disks.find((x) => x.id === diskId);
      if (top) out.push(top.file);
    }
    return out;
  }
}
