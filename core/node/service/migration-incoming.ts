// Destination side of a live migration between Hangar cores. prepare() defines the VM from the
// source's running definition (same id, uuid and name) and starts its QEMU with -incoming defer;
// QEMU then waits on unix sockets in the VM's runtime dir (migrate-incoming, and for copy-storage
// an NBD server exporting each new disk) that migration-tunnel.ts feeds from the source core. The
// start stays in `starting` (its lock held) until the source says finish (the guest resumes here,
// or stays paused) or abort (QEMU killed, the half-made VM removed: only files made here go).
//
// Disks: shared storage keeps the source's paths (the files must be there: the source checked).
// Copy-storage makes each writable disk afresh in this core's VM folder, same file name, format
// and virtual size (qemu-img), owned by the VM here; the source's files are never touched.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rename, rm, rmdir, unlink, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import type { IncomingMigrationRequest, IncomingMigrationTicket, VmInfo } from '../../common/api.ts';
import { parseDefinition } from '../../common/definition.ts';
import { HangarError } from '../../common/errors.ts';
import { UEFI_VARS_FILE } from '../host/firmware.ts';
import { diskNodeNames } from '../qemu/devices/disk.ts';
import type { QmpClient } from '../qmp/client.ts';
import { createImage } from '../store/qemu-img.ts';
import { DEFINITION_FILE, MIGRATED_AWAY_FILE } from '../store/vm-store.ts';
import type { StoredVm, VmStore } from '../store/vm-store.ts';
import { tokensEqual } from './migration-tunnel.ts';
import type { MigrationStreamKind, MigrationStreamTargets } from './migration-tunnel.ts';
import type { VmInstance } from './vm-instance.ts';

/** Marks a VM folder made by an incoming migration not finished yet (a core restarted meanwhile removes it). */
export const INCOMING_MARKER_FILE = 'incoming-migration.json';

const POLL_MS = 250;
/** How long the incoming QEMU waits for the source's stream to begin. */
const CONNECT_WAIT_MS = 120_000;
/** After QEMU has the whole state: how long to wait for the source's finish before keeping the guest paused here. */
const FINISH_WAIT_MS = 60_000;

export interface IncomingDeps {
  store: () => VmStore;
  byId(id: string): VmInstance | undefined;
  byName(name: string): VmInstance | undefined;
  add(stored: StoredVm): VmInstance;
  /** Drops the VM from the core (its files are already gone). */
  drop(vm: VmInstance): void;
}

interface Incoming {
  vm: VmInstance;
  token: string;
  copyStorage: boolean;
  ramSocket: string;
  nbdSocket: string;
  exports: IncomingMigrationTicket['exports'];
  /** Files made here, removed again on abort. */
  made: string[];
  /** The folder was this core's own, left by an earlier migration away (migrated-away.json). */
  reusedFolder: boolean;
  finish: ((resume: boolean) => void) | null;
  abort: ((reason: string) => void) | null;
  started: Promise<void>;
}

interface MigrateInfo { status?: string; 'error-desc'?: string }

export class IncomingMigrations implements MigrationStreamTargets {
  private readonly pending = new Map<string, Incoming>();

  constructor(private readonly deps: IncomingDeps) {}

  socketFor(vmId: string, token: string, stream: MigrationStreamKind): string {
    const inc = this.pending.get(vmId);
    if (!inc || !tokensEqual(inc.token, token)) {
      throw new HangarError('not-found', `no incoming migration of VM ${vmId} with this token here`, 'start the migration from the source core (hangar migrate)');
    }
    if (stream === 'nbd' && !inc.copyStorage) throw new HangarError('invalid-input', 'this migration copies no storage: no NBD stream');
    return stream === 'ram' ? inc.ramSocket : inc.nbdSocket;
  }

  private get(vmId: string, token: string): Incoming {
    const inc = this.pending.get(vmId);
    if (!inc || !tokensEqual(inc.token, token)) throw new HangarError('not-found', `no incoming migration of VM ${vmId} with this token here`);
    return inc;
  }

  async prepare(req: IncomingMigrationRequest): Promise<IncomingMigrationTicket> {
    let def = parseDefinition(req.definition);
    const same = this.deps.byId(def.id) ?? this.deps.byName(def.name);
    if (same) {
      throw new HangarError('already-exists', `this core already has VM "${same.name}" (${same.id}, ${same.state})`,
        'delete the stale copy here first, or rename one of the VMs');
    }
    const dir = this.deps.store().vmDir(def.id);
    const reusedFolder = existsSync(join(dir, MIGRATED_AWAY_FILE)) && !existsSync(join(dir, DEFINITION_FILE));
    const made: string[] = [];
    const exports: IncomingMigrationTicket['exports'] = [];
    if (req.copyStorage) {
      const taken = new Set<string>();
      const disks = [];
      for (const d of def.disks) {
        if (d.readOnly) { disks.push(d); continue; }
        const size = req.disks?.find((x) => x.id === d.id);
        if (!size) throw new HangarError('invalid-input', `copy-storage: no size given for disk "${d.id}"`);
        let file = join(dir, basename(d.file));
        for (let i = 1; taken.has(file) || existsSync(file); i++) file = join(dir, `${basename(d.file, extname(d.file))}-migrated${i}${extname(d.file)}`);
        taken.add(file);
        disks.push({ ...d, file, format: size.format, owned: true });
        exports.push({ diskId: d.id, name: d.id, file });
      }
      def = { ...def, disks };
    }
    // A stale ghost of the same id: nothing runs there (checked above), the folder is ours.
    if (reusedFolder) await this.deps.store().save(def);
    else await this.deps.store().create(def);
    made.push(join(dir, DEFINITION_FILE));
    const sizes = new Map((req.disks ?? []).map((x) => [x.id, x] as const));
    try {
      await writeFile(join(dir, INCOMING_MARKER_FILE), JSON.stringify({ from: req.from ?? '', at: new Date().toISOString(), made: [] }) + '\n', { mode: 0o600 });
      made.push(join(dir, INCOMING_MARKER_FILE));
      for (const e of exports) {
        const d = def.disks.find((x) => x.id === e.diskId)!;
        await createImage(e.file, d.format as 'qcow2' | 'raw', sizes.get(e.diskId)!.virtualSizeBytes);
        made.push(e.file);
      }
      if (req.uefiVarsBase64 !== undefined) {
        const vars = join(dir, UEFI_VARS_FILE);
        if (existsSync(vars) && !reusedFolder) throw new HangarError('already-exists', `${vars} exists already`);
        await writeFile(vars, Buffer.from(req.uefiVarsBase64, 'base64'), { mode: 0o600 });
        made.push(vars);
      }
      await writeFile(join(dir, INCOMING_MARKER_FILE), JSON.stringify({ from: req.from ?? '', at: new Date().toISOString(), made }) + '\n', { mode: 0o600 });
    } catch (e) {
      await removeMade(dir, made, reusedFolder);
      throw e;
    }
    const vm = this.deps.add(await this.deps.store().load(def.id));
    const inc: Incoming = {
      vm, token: randomBytes(32).toString('hex'), copyStorage: req.copyStorage,
      ramSocket: join(vm.paths.dir, 'migin.sock'), nbdSocket: join(vm.paths.dir, 'nbd.sock'),
      exports, made, reusedFolder, finish: null, abort: null, started: Promise.resolve(),
    };
    vm.migration = { direction: 'incoming', peer: req.from ?? 'another Hangar core', phase: 'preparing' };
    await vm.log(`arriving by live migration from ${req.from ?? 'another Hangar core'}${req.copyStorage ? ' (disks copied here)' : ' (shared storage)'}`);
    this.pending.set(def.id, inc);
    let signalReady!: () => void;
    const ready = new Promise<void>((r) => { signalReady = r; });
    inc.started = vm.startIncoming((qmp) => this.receive(inc, qmp, signalReady)).then(
      async () => {
        this.pending.delete(def.id);
        vm.migration = undefined;
        await unlink(join(dir, INCOMING_MARKER_FILE)).catch(() => {});
        if (reusedFolder) await unlink(join(dir, MIGRATED_AWAY_FILE)).catch(() => {});
        await vm.log(`live migration arrived (${vm.state})`);
      },
      async (e: unknown) => {
        this.pending.delete(def.id);
        vm.migration = undefined;
        await this.remove(inc, e instanceof Error ? e.message : String(e));
        throw e;
      },
    );
    inc.started.catch(() => {});
    // Ready when QEMU listens; a start that fails first answers with its error.
    await Promise.race([ready, inc.started]);
    return { vmId: def.id, token: inc.token, exports };
  }

  /** beforeCont of the incoming start: listen, then wait for the whole state and the source's word. */
  private async receive(inc: Incoming, qmp: QmpClient, ready: () => void): Promise<boolean> {
    let finished: boolean | null = null;
    let aborted: string | null = null;
    // The loop below wakes at once on the source's word or a status change (the guest's pause is short).
    let wake: (() => void) | null = null;
    const pause = (ms: number): Promise<void> => new Promise((r) => {
      const t = setTimeout(r, ms);
      wake = () => { clearTimeout(t); r(); };
    });
    inc.finish = (resume) => { finished = resume; wake?.(); };
    inc.abort = (reason) => { aborted = reason; wake?.(); };
    const off = qmp.onEvent('MIGRATION', () => wake?.());
    try {
      return await this.receiveLoop(inc, qmp, ready, () => finished, () => aborted, pause);
    } finally {
      off();
    }
  }

  private async receiveLoop(inc: Incoming, qmp: QmpClient, ready: () => void, finishedOf: () => boolean | null, abortedOf: () => string | null, pause: (ms: number) => Promise<void>): Promise<boolean> {
    let finished: boolean | null;
    await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
    await unlink(inc.ramSocket).catch(() => {});
    await qmp.execute('migrate-incoming', { uri: `unix:${inc.ramSocket}` });
    if (inc.copyStorage) {
      await unlink(inc.nbdSocket).catch(() => {});
      await qmp.execute('nbd-server-start', { addr: { type: 'unix', data: { path: inc.nbdSocket } } });
      for (const e of inc.exports) {
        await qmp.execute('block-export-add', { type: 'nbd', id: `mig-${e.diskId}`, 'node-name': diskNodeNames(e.diskId).format, name: e.name, writable: true });
      }
    }
    inc.vm.migration = { direction: 'incoming', peer: inc.vm.migration?.peer ?? '', phase: 'memory' };
    ready();
    const since = Date.now();
    let completedAt = 0;
    for (;;) {
      const aborted = abortedOf();
      finished = finishedOf();
      if (aborted !== null) throw new HangarError('cancelled', `the incoming migration was stopped: ${aborted}`);
      const m = await qmp.execute<MigrateInfo>('query-migrate');
      if (m.status === 'failed' || m.status === 'cancelled') {
        throw new HangarError('qemu-failed', `the incoming migration ${m.status}${m['error-desc'] ? `: ${m['error-desc']}` : ''}`);
      }
      if (!m.status || m.status === 'none' || m.status === 'setup') {
        if (Date.now() - since > CONNECT_WAIT_MS) throw new HangarError('timeout', `no migration stream arrived within ${CONNECT_WAIT_MS / 1000} s`);
      }
      if (m.status === 'completed' && !completedAt) completedAt = Date.now();
      if (completedAt && finished !== null) break;
      if (completedAt && Date.now() - completedAt > FINISH_WAIT_MS) {
        // The guest's state is here, the source never said it let go: never run it twice, keep it paused.
        await inc.vm.log(`the migration stream completed but the source core did not confirm within ${FINISH_WAIT_MS / 1000} s: kept paused`);
        finished = false;
        break;
      }
      await pause(POLL_MS);
    }
    if (inc.copyStorage) {
      for (const e of inc.exports) await qmp.execute('block-export-del', { id: `mig-${e.diskId}` }).catch(() => {});
      await qmp.execute('nbd-server-stop').catch(() => {});
      await unlink(inc.nbdSocket).catch(() => {});
    }
    await unlink(inc.ramSocket).catch(() => {});
    return !finished;
  }

  /** The source completed: the guest runs on here (resume) or stays paused. */
  async finish(vmId: string, token: string, resume: boolean): Promise<VmInfo> {
    const inc = this.get(vmId, token);
    if (!inc.finish) throw new HangarError('invalid-state', 'the incoming QEMU is not listening yet');
    inc.finish(resume);
    await inc.started;
    return inc.vm.info();
  }

  /** The source gave up (failed or cancelled): QEMU is killed, the VM removed here. */
  async abort(vmId: string, token: string, reason: string): Promise<void> {
    const inc = this.pending.get(vmId);
    if (!inc || !tokensEqual(inc.token, token)) return; // already gone
    if (inc.abort) inc.abort(reason);
    await inc.started.catch(() => {});
  }

  /** After a failed incoming start (QEMU already stopped): removes only what prepare made here. */
  private async remove(inc: Incoming, why: string): Promise<void> {
    const { vm } = inc;
    await vm.log(`incoming migration abandoned: ${why}`).catch(() => {});
    await removeMade(vm.stored.dir, inc.made, inc.reusedFolder);
    this.deps.drop(vm);
  }

  /** Core start: a VM folder left by an incoming migration a dead core never finished (its QEMU gone) is removed. */
  async sweep(vms: VmInstance[]): Promise<void> {
    for (const vm of vms) {
      const marker = join(vm.stored.dir, INCOMING_MARKER_FILE);
      if (!existsSync(marker) || vm.state === 'running' || vm.state === 'paused' || vm.state === 'starting') continue;
      let made: string[] = [];
      try { made = (JSON.parse(await readFile(marker, 'utf8')) as { made?: string[] }).made ?? []; } catch { /* nothing known */ }
      const reused = existsSync(join(vm.stored.dir, MIGRATED_AWAY_FILE));
      await removeMade(vm.stored.dir, [...made, join(vm.stored.dir, DEFINITION_FILE), marker], reused);
      this.deps.drop(vm);
    }
  }
}

async function removeMade(dir: string, made: string[], reusedFolder: boolean): Promise<void> {
  for (const f of made) {
    if (!f.startsWith(`${dir}/`)) continue; // only files in this VM's own folder
    await rm(f, { force: true }).catch(() => {});
  }
  if (reusedFolder) return; // the folder and what was in it stay as they were
  await rm(join(dir, 'logs'), { recursive: true, force: true }).catch(() => {});
  await rmdir(dir).catch(() => {});
}

/** The source side's record of a VM it gave away: its definition file moves aside in its folder. */
export async function keepMigratedAway(dir: string, to: string): Promise<string> {
  const src = join(dir, DEFINITION_FILE);
  const dest = join(dir, MIGRATED_AWAY_FILE);
  const def = JSON.parse(await readFile(src, 'utf8')) as unknown;
  await writeFile(`${dest}.tmp`, JSON.stringify({ migratedTo: to, at: new Date().toISOString(), definition: def }, null, 2) + '\n', { mode: 0o600 });
  await rename(`${dest}.tmp`, dest);
  await unlink(src);
  return dest;
}
