// The core service: owns every VM, implements the API contract that the CLI, the desktop app
// and browser mode all use.
import { connectionLabel, LOCAL_CONNECTION } from '../../common/connections.ts';
import type { ConnectionInfo, DriverCapabilities } from '../../common/connections.ts';
import { addConnection, connectionInfos, removeConnection } from '../connections/connection-store.ts';
import { EventEmitter } from 'node:events';
import { randomUUID, randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { constants, copyFile, readdir, readFile, stat } from 'node:fs/promises';
import { cpus as osCpus, homedir } from 'node:os';
import { join } from 'node:path';
import { sendKeys, takeScreenshot } from '../display/display-ops.ts';
import { withDisplayDefaults } from '../../common/display.ts';
import { AGENT_CHANNEL_NAME, agentInstallHint, withAgentChannel } from '../../common/guest-agent.ts';
import type { AgentExecOptions, AgentExecResult, AgentInfo, ShutdownMode } from '../../common/guest-agent.ts';
import { agentExec, pingAgent, queryAgentInfo, readAgentInfo } from '../agent/agent-ops.ts';
import { AgentWatch, agentPollFromEnv } from '../agent/agent-watch.ts';
import { videoFor, withCpuModelDefault } from '../../common/os-presets.ts';
import type {
  AddDeviceOptions, CloneRequest, CloudInitRequest, StartOptions, CoreApi, DeviceChange, DeviceKindName, RemoveDeviceOptions, CreatePreview, CreateVmRequest, DirListing, EditOptions, HostInfo, InspectExpect, PathInspection, DaemonStatus, ImportDiskRequest, DeleteOptions, DoctorCheckInfo, ShutdownOptions, AgentInfoOptions, VmInfo, VmSummary,
  Screenshot, SerialLogPage, SerialLogReadOptions,
} from '../../common/api.ts';
import type { CpuMemoryChangeResult, CpuModelList, HostCpuMemory } from '../../common/api.ts';
import { resizeMemory, setPinning, setVcpus } from './cpu-memory-ops.ts';
import type { CpuMemoryChange, CpuMemoryDeps } from './cpu-memory-ops.ts';
import { hostCpuMemory } from '../host/host-memory.ts';
import { cpuModels } from '../host/cpu-models.ts';
import { runHostChange } from '../host/privileged.ts';
import { HangarError } from '../../common/errors.ts';
import type { CreateSnapshotRequest, SnapshotInfo, SnapshotList, SnapshotProgress } from '../../common/snapshots.ts';
import { SnapshotOps, listSnapshots, snapshotScreenshot } from '../snapshots/snapshot-ops.ts';
import { autostartOnce } from './autostart.ts';
import { cloneVm, sweepCloneStaging } from './clone-vm.ts';
import type { AutostartReport } from './autostart.ts';
import { parseDefinition } from '../../common/definition.ts';
import { MODEL_VERSION, SSH_PUBKEY_RE } from '../../common/model.ts';
import type { CloudInitDefinition, VmDefinition } from '../../common/model.ts';
import type { OsListEntry } from '../../common/os-types.ts';
import { assertCan, isActive } from '../../common/state.ts';
import type { VmState } from '../../common/state.ts';
import { SerialLog } from '../console/serial-log.ts';
import { readLogPage } from '../console/serial-log-reader.ts';
import { probeAccelerators } from '../host/accel.ts';
import type { AccelProbe } from '../host/accel.ts';
import { runDoctor } from '../host/doctor.ts';
import { resolveFirmware } from '../host/firmware.ts';
import { buildArgv } from '../qemu/vm-argv.ts';
import { previewHardening } from '../sandbox/qemu-hardening.ts';
import { requireBinary } from '../host/binaries.ts';
import { DEFAULT_BRIDGE_HELPER, findBridgeHelper } from '../host/bridges.ts';
import { bytesNeeded, checkFreeSpace, formatBytes, inspectImportSource } from '../store/import-disk.ts';
import type { ImportSource } from '../store/import-disk.ts';
import { cancelledError, convertImage, createImage } from '../store/qemu-img.ts';
import { DEFINITION_FILE, VmStore } from '../store/vm-store.ts';
import { VmInstance } from './vm-instance.ts';
import { addDevice, editDevice, removeDevice } from './device-ops.ts';
import type { DeviceOpsDeps, DeviceOutcome } from './device-ops.ts';
import { buildSeedIso, resolveCloudInit, withSeedCdrom } from '../cloud-init/seed.ts';
import { hostInfo } from '../host/host-info.ts';
import type { ResolvedFirmware } from '../host/firmware.ts';
import { findOs, listOses } from '../osinfo/osinfo-db.ts';
import { vmRuntimePaths } from '../paths.ts';
import { inspectPath, listDir } from '../store/inspect-path.ts';
import { checkDefinitionFiles, checkDefinitionFits, checkDiskFile, checkHostFit, checkNewDiskSpace, checkVmName } from './validate-request.ts';
import type { ValidationContext } from './validate-request.ts';
import type { HostChangeResult, HostDeviceReport } from '../../common/host-devices.ts';
import * as hostOps from './host-device-ops.ts';
import type { HostSummary, StatsHistory, StatsSample } from '../../common/stats.ts';
import { readMeminfo } from '../stats/host-stats.ts';
import { residentBytes } from '../stats/proc-stats.ts';
import { StatsHub, statsIntervalFromEnv } from '../stats/stats-hub.ts';
import { diskUnavailableReason, nicUnavailableReason } from '../stats/vm-sampler.ts';
import type { StatsTarget } from '../stats/vm-sampler.ts';
import { prometheusText } from '../stats/prometheus.ts';
import type { HostRoots, VmView } from './host-device-ops.ts';
import type { IncomingMigrationRequest, IncomingMigrationTicket, MigrateRequest, MigrationProgress, MigrationResult } from '../../common/api.ts';
import { IncomingMigrations, keepMigratedAway } from './migration-incoming.ts';
import { migrateVm } from './migration-source.ts';
import type { MigrationHandle } from './migration-source.ts';

export const HANGAR_VERSION = '0.1.0';

/** One collator for all sorts: String#localeCompare builds one per call, slow for 1000 VMs. */
const byName = new Intl.Collator(undefined, { numeric: true });

/** The bridge helper a shown command line names: the one start would use, else Debian's path. */
const previewBridgeHelper = (): string => findBridgeHelper() ?? DEFAULT_BRIDGE_HELPER;

export interface CoreServiceOptions {
  dataDir: string;
  runtimeDir: string;
  socketPath?: string;
}

export type CoreServiceEvents = {
  vmChanged: [{ id: string; name: string; state: VmState }];
  vmListChanged: [];
  createProgress: [{ requestId: string; step: string; fraction: number }];
  snapshotProgress: [SnapshotProgress];
  statsSample: [StatsSample];
  /** Emitted after each stats round only while someone listens (a connection watching stats). */
  hostStats: [HostSummary];
  migrationProgress: [MigrationProgress];
};

export class CoreService extends EventEmitter<CoreServiceEvents> implements CoreApi {
  readonly store: VmStore;
  private readonly vms = new Map<string, VmInstance>();
  /** mtime of each vm.json when last loaded, to pick up edits made behind the core's back. */
  private readonly loadedMtime = new Map<string, number>();
  private probePromise: Promise<AccelProbe> | null = null;
  private createLock: Promise<unknown> = Promise.resolve();
  /** Creates that can be cancelled (they carry a requestId), queued or running. */
  private readonly createAborts = new Map<string, AbortController>();
  private readonly startedAt = new Date().toISOString();
  /** Set by the daemon so daemonStop can end the process. */
  onStopRequested: (() => void) | null = null;

  constructor(readonly opts: CoreServiceOptions) {
    super();
    this.store = new VmStore(opts.dataDir);
    this.stats = new StatsHub({
      intervalMs: statsIntervalFromEnv(),
      targets: () => [...this.vms.values()].map((vm) => vm.statsTarget()).filter((t): t is StatsTarget => t !== null),
      onSample: (s) => this.emit('statsSample', s),
      onRound: () => { if (this.listenerCount('hostStats') > 0) this.emit('hostStats', this.hostSummaryNow()); },
    });
    this.agentWatch = new AgentWatch({
      fastMs: agentPollFromEnv(),
      query: (sock) => queryAgentInfo(sock, undefined, { background: true }),
      changed: (id) => { const vm = this.vms.get(id); if (vm) this.emit('vmChanged', { id: vm.id, name: vm.name, state: vm.state }); },
    });
  }

  /** Polls running guests' agents for the list (agent-watch.ts). */
  private readonly agentWatch: AgentWatch;

  /** Samples the running VMs and keeps their history (stats-hub.ts). */
  readonly stats: StatsHub;

  async init(): Promise<void> {
    await this.store.init();
    await sweepCloneStaging(this.store.vmsDir, await readdir(this.store.vmsDir).catch(() => [] as string[]));
    await this.refresh();
    await Promise.all([...this.vms.values()].map((vm) => vm.reattach().catch(() => {})));
    // Half-made VMs of incoming migrations a dead core never finished (their QEMU is gone).
    await this.incomingMigrations.sweep([...this.vms.values()]).catch(() => {});
    for (const vm of this.vms.values()) this.agentWatch.track(vm);
    this.stats.start();
  }

  /** Starts the VMs marked autostart, once per host boot (after the core listens: starts take a while). */
  autostart(): Promise<AutostartReport> {
    return autostartOnce(this.opts.runtimeDir, () => [...this.vms.values()], (line) => console.log(line));
  }

  /** Clones a stopped or paused VM (clone-vm.ts); progress and cancel as for create (requestId). */
  async clone(ref: string, req: CloneRequest): Promise<VmInfo> {
    const src = await this.findFresh(ref);
    const requestId = req.requestId;
    const abort = this.cancellable(requestId);
    try {
      // The source's lock: it cannot start, resume or change while its disks are read.
      const def = await src.exclusive('clone', () => cloneVm(src, req, {
        vmsDir: this.store.vmsDir,
        randomMac,
        check: async (d) => {
          const ctx = this.validationContext();
          checkVmName(d.name, ctx, d.id);
          await checkDefinitionFits(d, ctx);
        },
        progress: (step, fraction) => { if (requestId !== undefined) this.emit('createProgress', { requestId, step, fraction }); },
      }, abort?.signal));
      const vm = this.addInstance(await this.store.load(def.id));
      this.loadedMtime.set(vm.id, await stat(join(vm.stored.dir, DEFINITION_FILE)).then((s) => s.mtimeMs));
      await vm.log(`cloned from VM "${src.name}"${req.linked ? ' (linked: its disks read through that VM\'s images)' : ''}`);
      this.emit('vmListChanged');
      return vm.info();
    } finally {
      if (requestId !== undefined) this.createAborts.delete(requestId);
    }
  }

  /**
   * A VM whose images linked clones read through must not change them: writing (start, snapshot,
   * disk changes) or deleting it is refused while those clones exist.
   */
  private refuseIfLinkedClones(vm: VmInstance, what: string): void {
    const clones = [...this.vms.values()].filter((o) => o.stored.definition?.linkedTo === vm.id).map((o) => o.name);
    if (!clones.length) return;
    throw new HangarError('invalid-state', `cannot ${what} VM "${vm.name}": linked clone${clones.length > 1 ? 's' : ''} ${clones.map((c) => `"${c}"`).join(', ')} read${clones.length > 1 ? '' : 's'} through its disk images, which must not change`,
      `delete the linked clone${clones.length > 1 ? 's' : ''} first (or clone ${clones.length > 1 ? 'them' : 'it'} as a full copy with \`hangar clone\`, then delete the linked one)`);
  }

  /** Marks a VM to start with the core (any state: it changes no hardware). */
  async setAutostart(ref: string, on: boolean): Promise<VmInfo> {
    const vm = await this.findFresh(ref);
    const def = vm.definition;
    if (def.autostart !== on) await this.saveDefinition(vm, { ...def, autostart: on });
    return vm.info();
  }

  probe(): Promise<AccelProbe> {
    this.probePromise ??= probeAccelerators().catch((e: unknown) => {
      this.probePromise = null;
      throw e;
    });
    return this.probePromise;
  }

  private addInstance(stored: Awaited<ReturnType<VmStore['load']>>): VmInstance {
    const vm = new VmInstance(stored, {
      runtimeDir: this.opts.runtimeDir,
      probe: () => this.probe(),
      onChange: (v) => {
        this.agentWatch.track(v);
        this.emit('vmChanged', { id: v.id, name: v.name, state: v.state });
      },
      assignments: () => hostOps.hostAssignments(this.vmViews()),
      otherGuestsMiB: (self) => this.guestsMiB(self),
      saveDefinition: (v, def) => this.saveDefinition(v, def),
    });
    this.vms.set(stored.id, vm);
    return vm;
  }

  /** Re-reads definitions changed on disk (by hand or another tool); cheap: one stat per VM. */
  async refresh(): Promise<void> {
    const ids = new Set(await this.store.listIds());
    let changed = false;
    // Synchronous stats: for a thousand VMs this is a few ms, far less than a thread-pool round trip each.
    const stale = [...ids].filter((id) => {
      const mtime = statSync(join(this.store.vmDir(id), DEFINITION_FILE), { throwIfNoEntry: false })?.mtimeMs ?? -1;
      return !(this.vms.has(id) && this.loadedMtime.get(id) === mtime);
    });
    await Promise.all(stale.map(async (id) => {
      const mtime = await stat(join(this.store.vmDir(id), DEFINITION_FILE)).then((s) => s.mtimeMs).catch(() => -1);
      const existing = this.vms.get(id);
      if (existing && isActive(existing.state)) return; // never swap a running VM's definition under it
      const stored = await this.store.load(id);
      this.loadedMtime.set(id, mtime);
      if (existing) {
        existing.stored = stored;
        if (!stored.definition) { existing.state = 'broken'; existing.reason = stored.error; }
        else if (existing.state === 'broken') { existing.state = 'stopped'; existing.reason = undefined; }
      } else {
        this.addInstance(stored);
      }
      changed = true;
    }));
    for (const [id, vm] of this.vms) {
      if (!ids.has(id) && !isActive(vm.state)) {
        this.vms.delete(id);
        changed = true;
      }
    }
    if (changed) this.emit('vmListChanged');
  }

  /** Finds a VM by id or exact name. */
  private find(ref: string): VmInstance {
    if (typeof ref !== 'string' || ref === '') throw new HangarError('invalid-input', 'a VM name or id is required');
    const byId = this.vms.get(ref);
    if (byId) return byId;
    for (const vm of this.vms.values()) if (vm.stored.definition?.name === ref) return vm;
    throw new HangarError('not-found', `no VM named "${ref}"`, '`hangar list` shows the VMs');
  }

  private async findFresh(ref: string): Promise<VmInstance> {
    await this.refresh();
    return this.find(ref);
  }

  async list(): Promise<VmSummary[]> {
    await this.refresh();
    return [...this.vms.values()].map((vm) => this.withGuest(vm.summary())).sort((a, b) => byName.compare(a.name, b.name));
  }

  async get(ref: string): Promise<VmInfo> {
    return this.withGuest((await this.findFresh(ref)).info());
  }

  /** Adds what the background agent poll last learned (running or paused VMs with the channel). */
  private withGuest<T extends VmSummary>(s: T): T {
    const guest = this.agentWatch.summary(s.id);
    return guest ? { ...s, guest } : s;
  }

  /** What the one validation (validate-request.ts) needs to know about the other VMs. */
  validationContext(allowOvercommit = false): ValidationContext {
    return {
      allowOvercommit,
      others: [...this.vms.values()].map((vm) => ({ id: vm.id, name: vm.stored.definition?.name ?? vm.name, ...(vm.stored.definition ? { definition: vm.stored.definition } : {}) })),
    };
  }

  /** A create or clone named by the client's request id: cancelCreate(requestId) aborts it. The caller deletes the entry when done. */
  private cancellable(requestId: string | undefined): AbortController | undefined {
    if (requestId === undefined) return undefined;
    if (this.createAborts.has(requestId)) throw new HangarError('already-exists', `a create with request id "${requestId}" is already running`);
    const abort = new AbortController();
    this.createAborts.set(requestId, abort);
    return abort;
  }

  /** Creates a VM: fills defaults, validates, makes its folder and disks; on failure leaves nothing behind. */
  async create(req: CreateVmRequest): Promise<VmInfo> {
    if (!req || typeof req !== 'object' || typeof req.definition !== 'object' || req.definition === null) {
      throw new HangarError('invalid-input', 'create needs a definition object');
    }
    const requestId = req.requestId;
    const abort = this.cancellable(requestId);
    const run = this.createLock.then(() => {
      if (abort?.signal.aborted) throw cancelledError();
      return this.createLocked(req, abort?.signal);
    }).finally(() => { if (requestId !== undefined) this.createAborts.delete(requestId); });
    this.createLock = run.catch(() => {});
    return run;
  }

  /** Cancels a queued or running create: its qemu-img is killed and nothing is left behind. */
  async cancelCreate(requestId: string): Promise<boolean> {
    const abort = this.createAborts.get(requestId);
    if (!abort || abort.signal.aborted) return false;
    abort.abort();
    return true;
  }

  /**
   * Everything create decides before writing a byte: the parsed definition, the disks to make
   * or copy, the firmware. Shared by create and previewCreate, so the preview is what create does.
   */
  private async planCreate(req: CreateVmRequest): Promise<CreatePlan> {
    await this.refresh();
    const id = typeof req.definition.id === 'string' ? req.definition.id : randomUUID();
    const ctx = this.validationContext(req.allowOvercommit === true);
    // The name first: the clearest refusal for the most common mistake.
    checkVmName(req.definition.name, ctx, id);
    // Files as typed, before defaults: exist, readable/writable, and what they are used as.
    const raw: Record<string, unknown> = await checkDefinitionFiles({ ...req.definition });
    if (req.cloudInit) raw.cloudInit = await resolveCloudInitRequest(req.cloudInit);
    // cloud-init: the seed ISO rides on an extra read-only CD-ROM in the VM folder.
    const os = typeof raw.osId === 'string' ? await findOs(raw.osId).catch(() => undefined) : undefined;
    // No CPU model given: the one for this OS and accelerator (host under KVM, max under TCG, qemu64 for old OSes).
    const accel = raw.accel === 'kvm' || raw.accel === 'tcg' ? raw.accel : (await this.probe()).best;
    const input = withSeedCdrom(withAgentChannel(withDisplayDefaults(withCpuModelDefault(raw, os, accel), videoFor(os))), this.store.vmDir(id));
    const disks = Array.isArray(input.disks) ? [...(input.disks as Record<string, unknown>[])] : [];
    const newDisks = req.newDisks ?? [];
    const dir = this.store.vmDir(id);
    const diskIds = new Set(disks.map((d) => d.id));
    const made: Record<string, unknown>[] = [];
    // Imported images come first (before new blank disks): the disk to boot from.
    const imports = await this.prepareImports(req.importDisks ?? [], dir, diskIds);
    await checkNewDiskSpace(this.opts.dataDir, newDisks.map((nd) => nd.sizeBytes), ctx);
    for (const nd of newDisks) {
      let n = 0;
      while (diskIds.has(`disk${n}`)) n++;
      diskIds.add(`disk${n}`);
      const format = nd.format ?? 'qcow2';
      made.push({ id: `disk${n}`, file: join(dir, `disk${n}.${format}`), format, bus: nd.bus ?? 'virtio-blk', owned: true, sizeBytes: nd.sizeBytes });
    }
    const nics = Array.isArray(input.nics) ? (input.nics as Record<string, unknown>[]).map((n) => ({ ...n, mac: n.mac ?? randomMac() })) : [];
    const def = parseDefinition({
      version: MODEL_VERSION,
      ...input,
      id,
      nics,
      disks: [...disks, ...imports.map((i) => i.disk), ...made.map(({ sizeBytes: _s, ...d }) => d)],
      createdAt: new Date().toISOString(),
    });
    if (this.vms.has(id)) throw new HangarError('already-exists', `a VM with id ${id} already exists`);
    await checkDefinitionFits(def, ctx);
    // Resolve the firmware before anything is written: a host without OVMF fails cleanly.
    const firmware = resolveFirmware(def, dir);
    return { def, dir, firmware, made, imports };
  }

  private async createLocked(req: CreateVmRequest, signal?: AbortSignal): Promise<VmInfo> {
    const { def, dir, firmware, made, imports } = await this.planCreate(req);
    const id = def.id;
    if (signal?.aborted) throw cancelledError();
    await this.store.create(def);
    try {
      // Each UEFI VM owns a copy of the variable store (boot entries, Secure Boot keys).
      if (firmware) await copyFile(firmware.varsTemplate.filename, firmware.vars.filename, constants.COPYFILE_EXCL);
      if (def.cloudInit) await buildSeedIso(def, dir);
      for (const d of made) await createImage(d.file as string, d.format as 'qcow2' | 'raw', d.sizeBytes as number);
      for (const i of imports) if (i.copy) await this.copyImport(i, req.requestId, signal);
      if (signal?.aborted) throw cancelledError();
    } catch (e) {
      await this.store.remove({ id, dir, definition: def }, true).catch(() => {});
      throw e;
    }
    const stored = await this.store.load(id);
    this.loadedMtime.set(id, await stat(join(dir, DEFINITION_FILE)).then((s) => s.mtimeMs));
    const vm = this.addInstance(stored);
    this.emit('vmListChanged');
    return vm.info();
  }

  /** What create would make (validated the same way) and the command line it would run; writes nothing. */
  async previewCreate(req: CreateVmRequest): Promise<CreatePreview> {
    const { def, dir, firmware } = await this.planCreate(req);
    const accel = def.accel === 'auto' ? (await this.probe()).best : def.accel;
    let binary = 'qemu-system-x86_64';
    try { binary = requireBinary('qemu-system-x86_64'); } catch { /* show the plain name */ }
    const paths = vmRuntimePaths(this.opts.runtimeDir, def.id);
    return { definition: def, commandLine: [binary, ...buildArgv(def, { accel, paths, vmDir: dir, firmware, swtpmSocket: paths.swtpmSocket, bridgeHelper: previewBridgeHelper(), hardening: previewHardening(def, binary) })] };
  }

  hostInfo(): Promise<HostInfo> {
    return hostInfo({ dataDir: this.opts.dataDir });
  }

  async osList(): Promise<OsListEntry[]> {
    const oses = await listOses({ tolerateMissingDb: true });
    return oses.map(({ media: _m, ...o }) => o);
  }

  inspectPath(path: string, expect: InspectExpect): Promise<PathInspection> {
    return inspectPath(path, expect, homedir());
  }

  listDir(path: string, opts: { showHidden?: boolean } = {}): Promise<DirListing> {
    return listDir(path, { ...opts, homeDir: homedir() });
  }

  /** Checks every image to import (before anything is written) and plans its disk entry. */
  private async prepareImports(reqs: ImportDiskRequest[], dir: string, diskIds: Set<unknown>): Promise<PlannedImport[]> {
    const planned: PlannedImport[] = [];
    let needBytes = 0;
    for (const r of reqs) {
      if (r.mode === 'in-place' && r.format !== undefined) {
        throw new HangarError('invalid-input', `an image used in place keeps its own format: format=${r.format} only applies to copy or convert`, `drop format=, or copy/convert ${r.source}`);
      }
      const src = await inspectImportSource(r.source);
      let n = 0;
      while (diskIds.has(`disk${n}`)) n++;
      const id = `disk${n}`;
      diskIds.add(id);
      const bus = r.bus ?? 'virtio-blk';
      if (r.mode === 'in-place') {
        // Used where it is: the VM writes to it, so the same checks as any disk it opens.
        const checked = await checkDiskFile({ file: src.path }, `imported disk ${src.path}`);
        planned.push({ disk: { id, file: checked.file, format: checked.format, bus, owned: false } });
        continue;
      }
      const format = r.format ?? (r.mode === 'copy' && (src.format === 'qcow2' || src.format === 'raw') ? src.format : 'qcow2');
      const file = join(dir, `${id}.${format}`);
      planned.push({ disk: { id, file, format, bus, owned: true }, copy: { src, format } });
      needBytes += bytesNeeded(src);
    }
    const copies = planned.filter((p) => p.copy);
    if (copies.length) {
      await checkFreeSpace(this.opts.dataDir, needBytes, copies.map(({ disk, copy }) =>
        `${disk.id as string} (${formatBytes(bytesNeeded(copy!.src))} of data, virtual size ${formatBytes(copy!.src.info.virtualSize)})`).join(', '));
    }
    return planned;
  }

  /** qemu-img convert into the VM folder, with createProgress events (≥1% steps). */
  private async copyImport(i: PlannedImport, requestId: string | undefined, signal?: AbortSignal): Promise<void> {
    const { src, format } = i.copy!;
    const step = `${src.format === format ? 'copying' : 'converting'} ${i.disk.id as string}`;
    let last = -1;
    const report = (fraction: number): void => {
      if (requestId === undefined || (fraction - last < 0.01 && !(fraction === 1 && last < 1))) return;
      last = fraction;
      this.emit('createProgress', { requestId, step, fraction });
    };
    report(0);
    await convertImage(src.path, src.format, i.disk.file as string, format, { onProgress: report, ...(signal ? { signal } : {}) });
    report(1);
  }

  /** Applies a partial change to a stopped VM's definition (deep-merged at the top-level objects). */
  async edit(ref: string, patch: Record<string, unknown>, opts: EditOptions = {}): Promise<VmInfo> {
    const vm = await this.findFresh(ref);
    if (patch.disks !== undefined) this.refuseIfLinkedClones(vm, 'change the disks of');
    return vm.exclusive('edit', async () => {
      const old = vm.definition;
      if (patch.id !== undefined && patch.id !== old.id) throw new HangarError('invalid-input', 'the id of a VM cannot change');
      const ctx = this.validationContext(opts.allowOvercommit === true);
      if (patch.name !== undefined) checkVmName(patch.name, ctx, vm.id);
      let merged: Record<string, unknown> = { ...old };
      for (const [k, v] of Object.entries(patch)) {
        const cur = (old as Record<string, unknown>)[k];
        // One level of JSON merge patch: a null inside an object takes that setting away.
        merged[k] = isPlainObject(cur) && isPlainObject(v) ? Object.fromEntries(Object.entries({ ...cur, ...v }).filter(([, x]) => x !== null)) : v;
      }
      // Only the files the patch names are checked again: the others were checked when they came in.
      merged = await checkDefinitionFiles(merged, new Set(Object.keys(patch)));
      const def: VmDefinition = parseDefinition(merged);
      checkVmName(def.name, ctx, vm.id);
      if (patch.memoryMiB !== undefined || patch.cpu !== undefined) checkHostFit(def, ctx);
      await this.saveDefinition(vm, def);
      return vm.info();
    });
  }

  private async saveDefinition(vm: VmInstance, def: VmDefinition): Promise<void> {
    await this.store.save(def);
    vm.stored = { ...vm.stored, definition: def };
    this.loadedMtime.set(vm.id, await stat(join(vm.stored.dir, DEFINITION_FILE)).then((s) => s.mtimeMs));
    this.emit('vmChanged', { id: vm.id, name: vm.name, state: vm.state });
  }

  private readonly deviceDeps: DeviceOpsDeps = {
    save: (vm, def) => this.saveDefinition(vm, def), randomMac,
    validation: (allowOvercommit) => this.validationContext(allowOvercommit), dataDir: () => this.opts.dataDir,
  };

  /** One device change under the VM's lock, answered with the VM's fresh info. */
  private async deviceChange(ref: string, op: (vm: VmInstance) => Promise<DeviceOutcome>, kind?: DeviceKindName): Promise<DeviceChange> {
    const vm = await this.findFresh(ref);
    if (kind === 'disk') this.refuseIfLinkedClones(vm, 'change the disks of');
    const outcome = await vm.exclusive('change-device', () => op(vm));
    return { ...outcome, info: vm.info() };
  }

  async addDevice(ref: string, kind: DeviceKindName, device: Record<string, unknown>, opts?: AddDeviceOptions): Promise<DeviceChange> {
    return this.deviceChange(ref, (vm) => addDevice(vm, this.deviceDeps, kind, device, opts), kind);
  }

  async editDevice(ref: string, kind: DeviceKindName, id: string, patch: Record<string, unknown>): Promise<DeviceChange> {
    return this.deviceChange(ref, (vm) => editDevice(vm, this.deviceDeps, kind, id, patch), kind);
  }

  async removeDevice(ref: string, kind: DeviceKindName, id: string, opts?: RemoveDeviceOptions): Promise<DeviceChange> {
    return this.deviceChange(ref, (vm) => removeDevice(vm, this.deviceDeps, kind, id, opts), kind);
  }

  async setBalloon(ref: string, targetMiB: number): Promise<{ targetMiB: number; actualMiB: number }> {
    return (await this.findFresh(ref)).setBalloon(targetMiB);
  }

  async resizeDisk(ref: string, diskId: string, sizeBytes: number): Promise<{ oldBytes: number; newBytes: number; online: boolean }> {
    const vm = await this.findFresh(ref);
    this.refuseIfLinkedClones(vm, 'resize a disk of');
    const r = await vm.resizeDisk(diskId, sizeBytes);
    this.emit('vmChanged', { id: vm.id, name: vm.name, state: vm.state });
    return r;
  }

  /** Runs one lifecycle action on a VM and answers with its fresh info. */
  private async act(ref: string, action: (vm: VmInstance) => Promise<void>): Promise<VmInfo> {
    const vm = this.find(ref);
    await action(vm);
    return vm.info();
  }

  async start(ref: string, opts: StartOptions = {}): Promise<VmInfo> {
    const vm = await this.findFresh(ref);
    this.refuseIfLinkedClones(vm, 'start');
    await vm.start(opts);
    return vm.info();
  }

  async save(ref: string): Promise<VmInfo> {
    const vm = this.find(ref);
    await vm.save((done, total) => this.emit('snapshotProgress', { vm: vm.name, op: 'save', snapshot: '', step: 'saving the RAM and device state', fraction: total > 0 ? Math.min(1, done / total) : 0, doneBytes: done, totalBytes: total }));
    return vm.info();
  }

  /** What the guest agent says (OS, hostname, interfaces); available: false with the reason and the fix when it cannot say. */
  async agentInfo(ref: string, opts: AgentInfoOptions = {}): Promise<AgentInfo> {
    const vm = this.find(ref);
    const hint = agentInstallHint(vm.stored.definition?.osId);
    if (!isActive(vm.state) || vm.state === 'paused') {
      return { available: false, interfaces: [], reason: `VM "${vm.name}" is ${vm.state}: the guest agent answers only while the guest runs` };
    }
    const sock = vm.agentSocket();
    if (!sock) {
      return { available: false, interfaces: [], reason: `VM "${vm.name}" has no guest agent channel (${AGENT_CHANNEL_NAME})`,
        fix: `\`hangar device add ${vm.name} channel ${AGENT_CHANNEL_NAME}\`, restart the VM, then ${hint}` };
    }
    const info = await readAgentInfo(sock, opts.timeoutMs);
    this.agentWatch.record(vm.id, vm.pid, info);
    if (!info.available) info.fix = hint;
    return info;
  }

  /** Runs a program in the guest through the agent (guest-exec) and returns its exit code and output. */
  async agentExec(ref: string, argv: string[], opts: AgentExecOptions = {}): Promise<AgentExecResult> {
    return agentExec(this.runningAgentSocket(ref), argv, opts);
  }

  /** How Shut Down and Reboot ask the guest; any state (it changes no hardware, and the next Shut Down reads it). */
  async setShutdownMode(ref: string, mode: ShutdownMode): Promise<VmInfo> {
    const vm = await this.findFresh(ref);
    const def = vm.definition;
    if ((def.shutdownMode ?? 'auto') !== mode) await this.saveDefinition(vm, { ...def, shutdownMode: mode });
    return vm.info();
  }

  /** guest-ping: resolves when the agent answers; a 'timeout' error (with how to install one) when not. */
  async agentPing(ref: string): Promise<void> {
    await pingAgent(this.runningAgentSocket(ref));
  }

  private runningAgentSocket(ref: string): string {
    const vm = this.find(ref);
    if (!isActive(vm.state) || vm.state === 'paused') throw new HangarError('invalid-state', `VM "${vm.name}" is ${vm.state}: the guest agent answers only while the guest runs`);
    const sock = vm.agentSocket();
    if (!sock) {
      throw new HangarError('invalid-state', `VM "${vm.name}" has no guest agent channel (${AGENT_CHANNEL_NAME})`,
        `\`hangar device add ${vm.name} channel ${AGENT_CHANNEL_NAME}\`, then restart the VM`);
    }
    return sock;
  }

  async shutdown(ref: string, opts: ShutdownOptions = {}): Promise<VmInfo> {
    const vm = this.find(ref);
    if (opts.timeoutSec !== undefined && (!Number.isFinite(opts.timeoutSec) || opts.timeoutSec <= 0)) {
      throw new HangarError('invalid-input', `shutdown timeout must be a positive number of seconds, got ${opts.timeoutSec}`);
    }
    await vm.shutdown(opts.timeoutSec, opts.wait ?? false);
    return vm.info();
  }

  destroy(ref: string): Promise<VmInfo> {
    return this.act(ref, (vm) => vm.destroy());
  }

  reboot(ref: string): Promise<VmInfo> {
    return this.act(ref, async (vm) => {
      // Pending hardware changes need a new QEMU: the reboot becomes a clean shutdown and a start.
      if (vm.state === 'running' && vm.info().pending?.length) {
        await vm.shutdown(undefined, true);
        await vm.start();
        return;
      }
      await vm.reboot();
    });
  }

  reset(ref: string): Promise<VmInfo> {
    return this.act(ref, (vm) => vm.reset());
  }

  pause(ref: string): Promise<VmInfo> {
    return this.act(ref, (vm) => vm.pause());
  }

  resume(ref: string): Promise<VmInfo> {
    return this.act(ref, (vm) => vm.resume());
  }

  async delete(ref: string, opts: DeleteOptions = {}): Promise<{ deletedFiles: string[]; keptFiles: string[] }> {
    const vm = await this.findFresh(ref);
    return vm.exclusive('delete', async () => {
      assertCan('delete', vm.state, vm.name);
      this.refuseIfLinkedClones(vm, 'delete');
      const result = await this.store.remove(vm.stored, opts.deleteDisks ?? false);
      this.dropVm(vm);
      return result;
    });
  }

  async commandLine(ref: string): Promise<string[]> {
    const vm = await this.findFresh(ref);
    // A running VM: the argv its QEMU really runs (the saved definition may hold pending changes).
    const running = vm.pid && isActive(vm.state) ? await readFile(`/proc/${vm.pid}/cmdline`, 'utf8').catch(() => null) : null;
    if (running) return running.split('\0').filter((a, i, all) => a !== '' || i < all.length - 1);
    const def = vm.definition;
    let accel: 'kvm' | 'tcg' = 'tcg';
    if (def.accel === 'kvm') accel = 'kvm';
    else if (def.accel === 'auto') accel = (await this.probe()).best;
    let binary = 'qemu-system-x86_64';
    try { binary = requireBinary('qemu-system-x86_64'); } catch { /* show the plain name */ }
    const firmware = resolveFirmware(def, vm.stored.dir, { checkFiles: false });
    return [binary, ...buildArgv(def, { accel, paths: vm.paths, vmDir: vm.stored.dir, firmware, swtpmSocket: vm.paths.swtpmSocket, bridgeHelper: previewBridgeHelper(), hardening: previewHardening(def, binary) })];
  }

  async serialLog(ref: string, maxBytes?: number): Promise<string> {
    const vm = await this.findFresh(ref);
    await vm.console.log.flush().catch(() => {});
    // Never the whole log in one reply (at most its last 8 MiB): past the message limit it would
    // fail and bloat the core; serialLogRead pages through all of it.
    return (await SerialLog.tail(vm.stored.dir, maxBytes ?? 8 * 1024 * 1024)).toString('base64');
  }

  async serialLogRead(ref: string, opts: SerialLogReadOptions = {}): Promise<SerialLogPage> {
    const vm = await this.findFresh(ref);
    await vm.console.log.flush().catch(() => {});
    return { ...await readLogPage(vm.stored.dir, opts), active: isActive(vm.state) };
  }

  /** The live console of a VM, for the daemon's console streams. */
  screenshot(ref: string): Promise<Screenshot> {
    return takeScreenshot(this.find(ref));
  }

  sendKeys(ref: string, keys: string[]): Promise<void> {
    return sendKeys(this.find(ref), keys);
  }

  consoleOf(ref: string): VmInstance {
    return this.find(ref);
  }

  async doctor(): Promise<DoctorCheckInfo[]> {
    const probe = await this.probe().catch(() => undefined);
    const report = await runDoctor({ dataDir: this.opts.dataDir, ...(probe ? { probe } : {}) });
    return report.checks;
  }

  // ---- host devices (VFIO, SR-IOV, mdev, USB) ------------------------------------------------

  /** sysfs/procfs/devfs roots: the real ones, or fixture trees named by HANGAR_SYSFS_ROOT ... */
  get hostRoots(): HostRoots {
    return hostOps.hostRootsFromEnv();
  }

  /** Every VM as the host-device rules see it (a running VM's devices are the guest's). */
  vmViews(): VmView[] {
    return [...this.vms.values()].map((vm) => ({ id: vm.id, name: vm.name, definition: vm.stored.definition, active: isActive(vm.state) }));
  }

  private readonly cpuMemoryDeps: CpuMemoryDeps = { save: (vm, def) => this.saveDefinition(vm, def) };

  /** One CPU or memory change under the VM's lock, answered with the VM's fresh info. */
  private async cpuMemoryChange(ref: string, op: (vm: VmInstance) => Promise<CpuMemoryChange>): Promise<CpuMemoryChangeResult> {
    const vm = await this.findFresh(ref);
    const r = await vm.exclusive('tune', () => op(vm));
    this.emit('vmChanged', { id: vm.id, name: vm.name, state: vm.state });
    return { ...r, info: vm.info() };
  }

  setVcpus(ref: string, count: number): Promise<CpuMemoryChangeResult> {
    return this.cpuMemoryChange(ref, (vm) => setVcpus(vm, count, this.cpuMemoryDeps));
  }

  setCpuPinning(ref: string, pinning: { vcpus?: Array<string | null>; emulator?: string } | null): Promise<CpuMemoryChangeResult> {
    return this.cpuMemoryChange(ref, (vm) => setPinning(vm, pinning, this.cpuMemoryDeps));
  }

  resizeMemory(ref: string, mib: number): Promise<CpuMemoryChangeResult> {
    return this.cpuMemoryChange(ref, (vm) => resizeMemory(vm, mib, this.cpuMemoryDeps));
  }

  async hostCpuMemory(): Promise<HostCpuMemory> {
    const host = await hostCpuMemory(this.hostRoots);
    const vms = this.activeVms().map((v) => {
      const d = v.runningDefinition;
      const b = v.info().balloon;
      return {
        name: d.name, memoryMiB: d.memoryMiB, merge: d.memory?.merge !== false, ...(d.memory?.hugepages ? { hugepages: d.memory.hugepages } : {}),
        ...(b && d.balloon ? { balloon: { ...b, freePageReporting: d.balloon.freePageReporting } } : {}),
      };
    });
    return { ...host, committed: { totalMiB: this.guestsMiB(), vms } };
  }

  async cpuModels(accel?: 'kvm' | 'tcg'): Promise<CpuModelList> {
    const a = accel ?? (await this.probe()).best;
    return { accel: a, models: await cpuModels(a) };
  }

  setKsm(on: boolean): Promise<HostChangeResult> {
    return runHostChange('set-ksm', [on ? '1' : '0'], { sysRoot: this.hostRoots.sysRoot });
  }

  setHugepages(size: '2M' | '1G', count: number): Promise<HostChangeResult> {
    return runHostChange('set-hugepages', [size, String(count)], { sysRoot: this.hostRoots.sysRoot });
  }

  async hostDevices(): Promise<HostDeviceReport> {
    await this.refresh();
    return hostOps.hostDeviceReport(this.hostRoots, this.vmViews());
  }

  bindVfio(address: string): Promise<HostChangeResult> {
    return hostOps.bindVfio(this.hostRoots, this.vmViews(), address);
  }

  releaseVfio(address: string): Promise<HostChangeResult> {
    return hostOps.releaseVfio(this.hostRoots, this.vmViews(), address);
  }

  setSriovVfs(pf: string, count: number): Promise<HostChangeResult> {
    return hostOps.setSriovVfs(this.hostRoots, this.vmViews(), pf, count);
  }

  setVfConfig(pf: string, vf: number, cfg: { mac?: string; vlan?: number }): Promise<HostChangeResult> {
    return hostOps.setVfConfig(this.hostRoots, pf, vf, cfg);
  }

  createMdev(parent: string, type: string, uuid?: string): Promise<HostChangeResult> {
    return hostOps.createMdev(this.hostRoots, parent, type, uuid);
  }

  removeMdev(uuid: string): Promise<HostChangeResult> {
    return hostOps.removeMdev(this.hostRoots, this.vmViews(), uuid);
  }

  private readonly snapshots = new SnapshotOps({
    save: (vm, def) => this.saveDefinition(vm, def),
    progress: (e) => this.emit('snapshotProgress', e),
  });

  async listSnapshots(ref: string): Promise<SnapshotList> {
    return listSnapshots(await this.findFresh(ref));
  }

  async createSnapshot(ref: string, req: CreateSnapshotRequest): Promise<SnapshotInfo> {
    const vm = await this.findFresh(ref);
    this.refuseIfLinkedClones(vm, 'snapshot');
    const s = await this.snapshots.create(vm, req);
    this.emit('vmChanged', { id: vm.id, name: vm.name, state: vm.state });
    return s;
  }

  async revertSnapshot(ref: string, snapshot: string): Promise<VmInfo> {
    const vm = await this.findFresh(ref);
    this.refuseIfLinkedClones(vm, 'revert');
    await this.snapshots.revert(vm, snapshot);
    this.emit('vmChanged', { id: vm.id, name: vm.name, state: vm.state });
    return vm.info();
  }

  async deleteSnapshot(ref: string, snapshot: string): Promise<SnapshotList> {
    const vm = await this.findFresh(ref);
    this.refuseIfLinkedClones(vm, 'delete a snapshot of');
    await this.snapshots.delete(vm, snapshot);
    this.emit('vmChanged', { id: vm.id, name: vm.name, state: vm.state });
    return listSnapshots(vm);
  }

  async snapshotScreenshot(ref: string, snapshot: string): Promise<Screenshot> {
    return snapshotScreenshot(await this.findFresh(ref), snapshot);
  }

  async statsHistory(ref: string, rangeSeconds = 600): Promise<StatsHistory> {
    const vm = await this.findFresh(ref);
    // Disks and NICs without counters: as the newest sample found them, else as the definition says.
    const latest = this.stats.latest(vm.id);
    const def = vm.stored.definition;
    const disks = latest
      ? (latest.disksUnavailable ?? [])
      : (def?.disks ?? []).filter((d) => d.bus === 'vhost-user-blk').map((d) => ({ id: d.id, reason: diskUnavailableReason(d) }));
    const nics = latest
      ? latest.nics.flatMap((n) => (n.available ? [] : [{ id: n.id, reason: n.reason }]))
      : (def?.nics ?? []).flatMap((n) => { const reason = nicUnavailableReason(n.network); return reason ? [{ id: n.id, reason }] : []; });
    const unavailable = [...disks.map((d) => ({ ...d, kind: 'disk' as const })), ...nics.map((n) => ({ ...n, kind: 'nic' as const }))];
    return this.stats.history(vm.id, vm.name, rangeSeconds, unavailable);
  }

  async statsLatest(): Promise<StatsSample[]> {
    return [...this.vms.values()].flatMap((vm) => this.stats.latest(vm.id) ?? []);
  }

  /** Per connection: the RPC endpoint keeps each connection's choice (endpoint.ts); here only the names are checked. */
  async watchStats(refs: string[] | null): Promise<void> {
    for (const r of refs ?? []) this.find(r);
  }

  /** Resolves watchStats' refs to VM ids. */
  statsWatchIds(refs: string[] | null): Set<string> | null {
    return refs === null ? null : new Set(refs.map((r) => this.find(r).id));
  }

  async statsMetrics(): Promise<string> {
    const latest = await this.statsLatest();
    return prometheusText(latest, [...this.vms.values()].filter((v) => v.statsTarget()).length);
  }

  /**
   * The host now: memory and the VMs' figures are read at the call; CPU busy is the stats hub's
   * figure between its last two rounds (null only in the first interval after the core starts).
   */
  async hostSummary(): Promise<HostSummary> {
    return this.hostSummaryNow();
  }

  private hostSummaryNow(): HostSummary {
    const mem = readMeminfo();
    if (!mem) throw new HangarError('io-error', 'cannot read the host memory figures from /proc/meminfo', 'Hangar needs a Linux host with /proc mounted');
    const active = this.activeVms();
    // RSS as this round's samples read it; /proc only for a VM not sampled yet.
    const rss = active.reduce((a, v) => a + (this.stats.latest(v.id)?.rssBytes ?? (v.pid ? residentBytes(v.pid) ?? 0 : 0)), 0);
    const cpu = this.stats.hostCpu;
    return {
      t: Date.now(), cpus: cpu.cpus || osCpus().length, cpuPercent: cpu.percent,
      memTotalBytes: mem.totalBytes, memAvailableBytes: mem.availableBytes,
      committedBytes: this.guestsMiB() * 1024 * 1024, guestRssBytes: rss, runningVms: active.length, definedVms: this.vms.size,
    };
  }

  /** VMs with a QEMU process (running, paused, and on their way up or down): they commit their memory. */
  private activeVms(): VmInstance[] {
    return [...this.vms.values()].filter((v) => isActive(v.state));
  }

  /** Guest memory the active VMs commit (all but `except`), MiB. */
  private guestsMiB(except?: VmInstance): number {
    return this.activeVms().filter((v) => v !== except).reduce((a, v) => a + v.runningDefinition.memoryMiB, 0);
  }

  // ---- live migration between Hangar cores (migration-source.ts, migration-incoming.ts) ---------

  /** Destination side: incoming migrations waiting or running here; the socket's migration channels find their QEMU through it. */
  readonly incomingMigrations = new IncomingMigrations({
    store: () => this.store,
    byId: (id) => this.vms.get(id),
    byName: (name) => [...this.vms.values()].find((v) => v.stored.definition?.name === name),
    add: (stored) => {
      // A refresh between the definition's write and here may have picked it up already: one instance.
      const vm = this.vms.get(stored.id) ?? this.addInstance(stored);
      this.loadedMtime.set(vm.id, statSync(join(stored.dir, DEFINITION_FILE), { throwIfNoEntry: false })?.mtimeMs ?? -1);
      this.emit('vmListChanged');
      return vm;
    },
    drop: (vm) => this.dropVm(vm),
  });

  private readonly outgoing = new Map<string, MigrationHandle>();

  private dropVm(vm: VmInstance): void {
    vm.detach();
    this.vms.delete(vm.id);
    this.stats.forget(vm.id);
    this.agentWatch.forget(vm.id);
    this.loadedMtime.delete(vm.id);
    this.emit('vmListChanged');
  }

  async migrate(ref: string, req: MigrateRequest): Promise<MigrationResult> {
    const vm = await this.findFresh(ref);
    return migrateVm(vm, req, {
      self: `Hangar core ${this.opts.socketPath ?? this.opts.dataDir}`,
      progress: (p) => this.emit('migrationProgress', p),
      forget: async (v, to) => {
        const kept = await keepMigratedAway(v.stored.dir, to);
        this.dropVm(v);
        return kept;
      },
    }, (h) => { if (h) this.outgoing.set(vm.id, h); else this.outgoing.delete(vm.id); });
  }

  async cancelMigration(ref: string): Promise<boolean> {
    const vm = this.find(ref);
    const h = this.outgoing.get(vm.id);
    if (!h) return false;
    h.cancel();
    return true;
  }

  prepareIncomingMigration(req: IncomingMigrationRequest): Promise<IncomingMigrationTicket> {
    return this.incomingMigrations.prepare(req);
  }

  finishIncomingMigration(vmId: string, token: string, opts: { resume: boolean }): Promise<VmInfo> {
    return this.incomingMigrations.finish(vmId, token, opts.resume);
  }

  abortIncomingMigration(vmId: string, token: string, reason: string): Promise<void> {
    return this.incomingMigrations.abort(vmId, token, reason);
  }

  /** This core can do everything the API names; a connection layer in front of it sets the connection's name. */
  async capabilities(): Promise<DriverCapabilities> {
    return { driver: 'hangar', connection: LOCAL_CONNECTION, label: connectionLabel({ kind: 'local' }), unsupported: {} };
  }

  async connections(): Promise<ConnectionInfo[]> {
    return connectionInfos();
  }

  async addConnection(name: string, uri: string): Promise<ConnectionInfo[]> {
    await addConnection(name, uri);
    return connectionInfos();
  }

  async removeConnection(name: string): Promise<ConnectionInfo[]> {
    await removeConnection(name);
    return connectionInfos();
  }

  async daemonStatus(): Promise<DaemonStatus> {
    const vms = [...this.vms.values()];
    return {
      pid: process.pid,
      version: HANGAR_VERSION,
      startedAt: this.startedAt,
      dataDir: this.opts.dataDir,
      runtimeDir: this.opts.runtimeDir,
      socketPath: this.opts.socketPath ?? '',
      vmCount: vms.length,
      runningCount: vms.filter((v) => isActive(v.state)).length,
      rssBytes: process.memoryUsage.rss(),
    };
  }

  async daemonStop(): Promise<void> {
    setImmediate(() => this.onStopRequested?.());
  }

  /** Lets go of every VM without stopping them: QEMU outlives the core. */
  close(): void {
    this.stats.stop();
    this.agentWatch.close();
    for (const vm of this.vms.values()) vm.detach();
  }
}

interface CreatePlan {
  def: VmDefinition;
  dir: string;
  firmware: ResolvedFirmware | null;
  /** New blank disks (with their sizeBytes). */
  made: Record<string, unknown>[];
  imports: PlannedImport[];
}

/** The wizard's cloud-init fields -> the stored request (password hashed by the core, keys checked). */
async function resolveCloudInitRequest(ci: CloudInitRequest): Promise<CloudInitDefinition> {
  const keys = (ci.sshKeys ?? []).map((k) => k.trim()).filter(Boolean);
  for (const k of keys) {
    if (k.includes('PRIVATE KEY')) throw new HangarError('invalid-input', 'cloud-init: that is a PRIVATE key; it must never leave this machine', 'paste the public key (the .pub file) instead');
    if (!SSH_PUBKEY_RE.test(k)) throw new HangarError('invalid-input', `cloud-init: "${k.slice(0, 40)}" is not an OpenSSH public key`, 'paste one line like "ssh-ed25519 AAAA... you@host" from a .pub file');
  }
  const { sshKeys: _k, ...rest } = ci;
  const resolved = await resolveCloudInit({ ...rest, sshKeyFiles: [] }).catch((e: unknown) => {
    // resolveCloudInit names CLI flags; with keys only, an empty request is still valid.
    if (keys.length && e instanceof HangarError && /needs at least one setting/.test(e.message)) return { sshKeys: [] } as CloudInitDefinition;
    throw e;
  });
  return { ...resolved, sshKeys: keys };
}

interface PlannedImport {
  disk: Record<string, unknown>;
  /** For copy/convert: what qemu-img converts into disk.file. */
  copy?: { src: ImportSource; format: 'qcow2' | 'raw' };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A random locally administered unicast MAC in QEMU's customary 52:54:00 prefix. */
export function randomMac(): string {
  const b = randomBytes(3);
  return `52:54:00:${[...b].map((x) => x.toString(16).padStart(2, '0')).join(':')}`;
}
