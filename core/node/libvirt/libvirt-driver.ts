// A libvirtd's domains behind Hangar's CoreApi (virt-manager's vmmConnection, cockpit-machines'
// libvirtApi): list, details, lifecycle, autostart and undefine through virsh, events from
// `virsh event --loop` (polling without it). What a libvirt domain cannot do through Hangar
// throws 'unsupported' with the reason (unsupported.ts), and capabilities() lists those reasons.
import { EventEmitter } from 'node:events';
import { rm } from 'node:fs/promises';
import { coreApiMethods } from '../../common/api.ts';
import type { CoreApi, CreatePreview, CreateVmRequest, DeleteOptions, MigrateRequest, MigrationProgress, MigrationResult, ShutdownOptions, StartOptions, VmInfo, VmSummary } from '../../common/api.ts';
import type { LibvirtMigration } from './libvirt-migrate.ts';
import { connectionLabel, parseConnectionUri } from '../../common/connections.ts';
import type { DriverCapabilities } from '../../common/connections.ts';
import { HangarError } from '../../common/errors.ts';
import { assertCan } from '../../common/state.ts';
import type { VmAction } from '../../common/state.ts';
import type { DomainDiskSource } from './domain-facts.ts';
import { LIBVIRT_STATE, libvirtActive } from './states.ts';
import type { LibvirtStatus } from './states.ts';
import { libvirtUnsupported, unsupportedError } from './unsupported.ts';
import type { LibvirtSupported } from './unsupported.ts';
import { runVirsh, runVirshBatch } from './virsh.ts';
import { parseDomstats, parseDominfo, parseNameList, parseUuidNameList, statusFromStats, summaryFromStats } from './virsh-parse.ts';
import { DomainWatcher } from './watch.ts';

export { libvirtUnsupported } from './unsupported.ts';

export interface LibvirtDriverOptions {
  /** How often to list the domains when `virsh event` is not available (default 2000 ms). */
  pollMs?: number;
  /** The connection's name as the user saved it (capabilities().connection); default: the URI. */
  connectionName?: string;
  /** false: poll only, never start `virsh event` (default true: events, polling only as the fallback). */
  events?: boolean;
  /** Completes and checks a create request without writing anything (default: this computer's Hangar core's previewCreate). */
  previewCreate?: (req: CreateVmRequest) => Promise<CreatePreview>;
}

/** previewCreate on this computer's core: the one place that fills defaults and checks files. */
async function localPreview(req: CreateVmRequest): Promise<CreatePreview> {
  const { connectCore } = await import('../rpc/client.ts');
  const c = await connectCore({ autostart: true });
  try {
    return await c.api.previewCreate(req);
  } finally {
    c.close();
  }
}

/** The model's default (VmDefinition.shutdownTimeoutSec): libvirt keeps no such setting per domain. */
const DEFAULT_SHUTDOWN_TIMEOUT_SEC = 60;
const STATS = ['domstats', '--state', '--balloon', '--vcpu', '--nowait'];
const START_TIMEOUT_MS = 180_000;
const SAVE_TIMEOUT_MS = 600_000;

/** One domain as libvirt reports it now. */
interface DomainStatus {
  summary: VmSummary;
  raw: LibvirtStatus;
  /** libvirt's id of the running QEMU ('-' when inactive): a new start gives a new id. */
  runId: string;
  autostart: boolean;
  persistent: boolean;
}

export class LibvirtDriver extends EventEmitter {
  readonly uri: string;
  readonly connectionName: string;
  private readonly label: string;
  /** libvirtd on this computer: its plain files are ours to remove (qemu+ssh: only through libvirt). */
  private readonly local: boolean;
  private readonly mode: 'system' | 'session';
  private readonly previewCreate: (req: CreateVmRequest) => Promise<CreatePreview>;
  /** Migrations this driver runs, by domain UUID. */
  private readonly migrations = new Map<string, LibvirtMigration>();
  private readonly watcher: DomainWatcher;
  private closed = false;
  /** Shutdowns asked through this driver: shown as shutting-down until the run ends; forced off at the deadline. */
  private readonly shutdowns = new Map<string, { runId: string; timer?: NodeJS.Timeout }>();

  constructor(uri: string, opts: LibvirtDriverOptions = {}) {
    super();
    const target = parseConnectionUri(uri);
    if (target.kind !== 'libvirt') {
      throw new HangarError('invalid-input', `"${uri}" is not a libvirt URI`, 'use qemu:///system, qemu:///session or qemu+ssh://[user@]host/system');
    }
    this.uri = target.uri;
    this.connectionName = opts.connectionName ?? this.uri;
    this.label = connectionLabel(target);
    this.local = target.host === undefined;
    this.mode = target.mode;
    this.previewCreate = opts.previewCreate ?? localPreview;
    this.watcher = new DomainWatcher(this.uri, () => this.list(), {
      vmChanged: (s) => this.emit('vmChanged', { id: s.id, name: s.name, state: s.state }),
      vmListChanged: () => this.emit('vmListChanged'),
    }, opts.pollMs ?? 2000, opts.events ?? true);
    // Watch libvirtd only while someone listens: an idle driver runs no child processes.
    this.on('newListener', (event: string) => {
      if ((event === 'vmChanged' || event === 'vmListChanged') && !this.closed) this.watcher.start();
    });
    this.on('removeListener', () => {
      if (this.listenerCount('vmChanged') + this.listenerCount('vmListChanged') === 0) this.watcher.stop();
    });
  }

  /** How the driver follows changes now: 'events' (virsh event), 'polling', or 'idle' (no listeners). */
  get watchMode(): 'idle' | 'events' | 'polling' {
    return this.watcher.mode;
  }

  /** Stops watching (kills the `virsh event` child) and the pending force-off timers. */
  close(): void {
    this.closed = true;
    this.watcher.stop();
    for (const s of this.shutdowns.values()) clearTimeout(s.timer);
    this.shutdowns.clear();
  }

  /** The CoreApi: every method of coreApiMethods, the ones libvirt cannot do throwing 'unsupported'. */
  api(): CoreApi {
    const supported: Pick<CoreApi, LibvirtSupported> = {
      list: () => this.list(),
      get: (ref) => this.get(ref),
      create: (req) => this.create(req),
      migrate: (ref, req) => this.migrate(ref, req),
      cancelMigration: (ref) => this.cancelMigration(ref),
      start: (ref, opts) => this.start(ref, opts),
      save: (ref) => this.simple(ref, 'save', ['managedsave'], SAVE_TIMEOUT_MS),
      shutdown: (ref, opts) => this.shutdown(ref, opts),
      destroy: (ref) => this.destroy(ref),
      reboot: (ref) => this.simple(ref, 'reboot', ['reboot']),
      reset: (ref) => this.simple(ref, 'reset', ['reset']),
      pause: (ref) => this.simple(ref, 'pause', ['suspend']),
      resume: (ref) => this.resume(ref),
      setAutostart: (ref, on) => this.setAutostart(ref, on),
      delete: (ref, opts) => this.delete(ref, opts),
      capabilities: () => this.capabilities(),
    };
    const api: Record<string, unknown> = {};
    for (const m of coreApiMethods) {
      api[m] = m in supported ? supported[m as LibvirtSupported] : async () => { throw unsupportedError(m); };
    }
    return api as unknown as CoreApi;
  }

  async capabilities(): Promise<DriverCapabilities> {
    return { driver: 'libvirt', connection: this.connectionName, label: this.label, unsupported: libvirtUnsupported };
  }

  /** All domains with their states: one virsh process however many domains there are. */
  async list(): Promise<VmSummary[]> {
    const [ids, saved, stats] = await runVirshBatch(this.uri, [
      ['list', '--all', '--uuid', '--name'],
      ['list', '--all', '--name', '--with-managed-save'],
      STATS,
    ]);
    const savedNames = new Set(parseNameList(saved!));
    const byName = parseDomstats(stats!);
    const out: VmSummary[] = [];
    for (const { uuid, name } of parseUuidNameList(ids!)) {
      const st = byName.get(name);
      if (!st) continue; // undefined between the two commands
      out.push(this.overlay(summaryFromStats(uuid, name, st, savedNames.has(name))));
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** A domain's details: its state, and its XML read into Hangar's model (what does not fit is left out). */
  async get(ref: string): Promise<VmInfo> {
    const [st, xml] = await Promise.all([this.status(ref), runVirsh(this.uri, ['dumpxml', '--inactive', '--domain', ref])]);
    const info: VmInfo = { ...st.summary, dir: '' };
    try {
      // The XML reader (and the model's schema) load on the first get(): a plain list never needs them.
      const { readDomainXml } = await import('./domain-xml-read.ts');
      const { definition } = readDomainXml(xml);
      info.definition = { ...definition, autostart: st.autostart };
    } catch (e) {
      // Shown, not fatal: the domain still lists and runs; only its details are missing.
      info.reason ??= `Hangar cannot read this domain's XML: ${(e as Error).message}`;
    }
    return info;
  }

  private async status(ref: string): Promise<DomainStatus> {
    const [infoText, statsText] = await runVirshBatch(this.uri, [['dominfo', '--domain', ref], [...STATS, '--domain', ref]]);
    const info = parseDominfo(infoText!);
    const uuid = info.get('UUID');
    const name = info.get('Name');
    if (!uuid || !name) throw new HangarError('internal', `virsh dominfo ${ref} printed no UUID or name`, undefined, { infoText });
    const stats = [...parseDomstats(statsText!).values()][0] ?? new Map<string, string>();
    const managedSave = info.get('Managed save') === 'yes';
    return {
      summary: this.overlay(summaryFromStats(uuid.toLowerCase(), name, stats, managedSave)),
      raw: statusFromStats(stats, managedSave),
      runId: info.get('Id') ?? '-',
      autostart: info.get('Autostart') === 'enable',
      persistent: info.get('Persistent') === 'yes',
    };
  }

  /** A shutdown asked through this driver shows as shutting-down while libvirt still says running. */
  private overlay(s: VmSummary): VmSummary {
    const pending = this.shutdowns.get(s.id);
    if (!pending) return s;
    if (s.state === 'running') return { ...s, state: 'shutting-down' };
    // Off (or saved, crashed): that run is over. Paused or libvirt's own shutting-down: still pending.
    if (s.state === 'stopped' || s.state === 'crashed' || s.state === 'saved') this.forgetShutdown(s.id);
    return s;
  }

  private forgetShutdown(id: string): void {
    const s = this.shutdowns.get(id);
    if (s) clearTimeout(s.timer);
    this.shutdowns.delete(id);
  }

  /** Checks the state with Hangar's rules (so the error reads as it does for Hangar's own VMs), then runs one virsh command. */
  private async simple(ref: string, action: VmAction, command: string[], timeoutMs?: number): Promise<VmInfo> {
    const st = await this.status(ref);
    assertCan(action, st.summary.state, st.summary.name);
    await runVirsh(this.uri, [...command, '--domain', st.summary.id], timeoutMs !== undefined ? { timeoutMs } : {});
    return this.get(st.summary.id);
  }

  async start(ref: string, opts: StartOptions = {}): Promise<VmInfo> {
    const st = await this.status(ref);
    assertCan('start', st.summary.state, st.summary.name);
    const id = st.summary.id;
    this.forgetShutdown(id);
    // on_crash=preserve keeps a crashed QEMU: clear it first, as Hangar's start does after a crash.
    if (st.raw.state === LIBVIRT_STATE.crashed) await runVirsh(this.uri, ['destroy', '--domain', id]);
    const args = ['start', '--domain', id];
    if (opts.discardSaved && st.summary.state === 'saved') args.push('--force-boot');
    await runVirsh(this.uri, args, { timeoutMs: START_TIMEOUT_MS });
    return this.get(id);
  }

  async resume(ref: string): Promise<VmInfo> {
    const st = await this.status(ref);
    assertCan('resume', st.summary.state, st.summary.name);
    // A guest suspended to RAM (S3) is woken, not resumed: libvirt refuses `resume` for it.
    const cmd = st.raw.state === LIBVIRT_STATE.pmsuspended ? 'dompmwakeup' : 'resume';
    await runVirsh(this.uri, [cmd, '--domain', st.summary.id]);
    return this.get(st.summary.id);
  }

  async destroy(ref: string): Promise<VmInfo> {
    const st = await this.status(ref);
    assertCan('destroy', st.summary.state, st.summary.name);
    this.forgetShutdown(st.summary.id);
    // A crash libvirt already cleaned up (shut off, reason crashed) has no QEMU left to stop.
    if (libvirtActive(st.raw)) await runVirsh(this.uri, ['destroy', '--domain', st.summary.id]);
    return this.get(st.summary.id);
  }

  /**
   * ACPI (or agent, as libvirt picks) shutdown; forced off after timeoutSec (ShutdownOptions: the
   * seconds before forcing off; default 60, the model's default, as libvirt stores none). With
   * wait, resolves once the domain is off; without, the force-off timer runs in this process.
   */
  async shutdown(ref: string, opts: ShutdownOptions = {}): Promise<VmInfo> {
    const timeoutSec = opts.timeoutSec ?? DEFAULT_SHUTDOWN_TIMEOUT_SEC;
    if (!(Number.isFinite(timeoutSec) && timeoutSec > 0)) {
      throw new HangarError('invalid-input', `shutdown timeout must be a positive number of seconds, got ${timeoutSec}`);
    }
    const st = await this.status(ref);
    assertCan('shutdown', st.summary.state, st.summary.name);
    const id = st.summary.id;
    await runVirsh(this.uri, ['shutdown', '--domain', id]);
    this.forgetShutdown(id);
    const entry: { runId: string; timer?: NodeJS.Timeout } = { runId: st.runId };
    this.shutdowns.set(id, entry);
    this.emit('vmChanged', { id, name: st.summary.name, state: 'shutting-down' });
    if (!opts.wait) {
      // The timer only acts while this shutdown is still the pending one (not destroyed, restarted
      // or shut down again through the driver meanwhile).
      entry.timer = setTimeout(() => {
        if (this.shutdowns.get(id) === entry) void this.forceOff(id, st.runId).catch(() => {});
      }, timeoutSec * 1000);
      entry.timer.unref(); // a CLI that asked without --wait may exit; a daemon keeps the timer
      return this.get(id);
    }
    const deadline = Date.now() + timeoutSec * 1000;
    while (Date.now() < deadline) {
      const now = await this.status(id);
      if (!libvirtActive(now.raw) || now.runId !== st.runId) {
        this.forgetShutdown(id);
        return this.get(id);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    await this.forceOff(id, st.runId);
    return this.get(id);
  }

  /** Destroys the domain if the same run (libvirt id) is still up: one restarted meanwhile is left alone. */
  private async forceOff(id: string, runId: string): Promise<void> {
    this.forgetShutdown(id);
    const now = await this.status(id).catch(() => null);
    if (!now || now.runId !== runId || !libvirtActive(now.raw)) return;
    try {
      await runVirsh(this.uri, ['destroy', '--domain', id]);
    } catch (e) {
      // It went off by itself between the check and the destroy: that is what was wanted.
      if (!(e instanceof HangarError && e.code === 'invalid-state')) throw e;
    }
  }

  /** Defines a domain from Hangar's model (libvirt-create.ts); local libvirtd only (new disks are files here). */
  async create(req: CreateVmRequest): Promise<VmInfo> {
    if (!this.local) {
      throw new HangarError('unsupported', 'creating a VM on a libvirt on another host is not available: its disks would have to be made there',
        `define it on that host (virt-install, or hangar --connect qemu:///${this.mode} create ... run there)`);
    }
    const { createOnLibvirt } = await import('./libvirt-create.ts');
    const made = await createOnLibvirt(this.uri, this.mode, req, this.previewCreate);
    const info = await this.get(made.name);
    this.emit('vmListChanged');
    return made.notCarried.length ? { ...info, startNotes: made.notCarried.map((n) => `not carried over to libvirt: ${n}`) } : info;
  }

  /** virsh migrate --live to another libvirt connection (libvirt-migrate.ts); migrationProgress events meanwhile. */
  async migrate(ref: string, req: MigrateRequest): Promise<MigrationResult> {
    const { resolveConnection } = await import('../connections/connection-store.ts');
    const dest = resolveConnection(req.to);
    if (dest.target.kind !== 'libvirt') {
      throw new HangarError('unsupported', `a libvirt domain migrates to another libvirt host, and "${req.to}" is a Hangar core`,
        'migrate to a libvirt URI (qemu+ssh://host/system), or move it into Hangar: shut it down and run hangar import --from-libvirt on that computer');
    }
    const st = await this.status(ref);
    const { id, name, state } = st.summary;
    if (state !== 'running' && state !== 'paused') {
      throw new HangarError('invalid-state', `libvirt domain "${name}" is ${state}: only a running or paused domain migrates live`, `start it first, or move its definition: virsh dumpxml ${name}`);
    }
    if (this.migrations.has(id)) throw new HangarError('busy', `libvirt domain "${name}" is already migrating`, 'wait for it, or cancel it');
    const { runLibvirtMigration } = await import('./libvirt-migrate.ts');
    const report = (p: Omit<MigrationProgress, 'vmId' | 'vm' | 'to'>): void => { this.emit('migrationProgress', { vmId: id, vm: name, to: req.to, ...p }); };
    report({ phase: 'preparing', transferredBytes: 0, totalBytes: 0, remainingBytes: 0, dirtyRateBytesPerSec: 0, expectedDowntimeMs: 0 });
    const run = runLibvirtMigration(this.uri, name, dest.target.uri, req, report);
    this.migrations.set(id, run);
    try {
      const r = await run.done;
      const there = new LibvirtDriver(dest.target.uri, { events: false });
      let destination: VmInfo;
      try { destination = await there.get(name); } finally { there.close(); }
      report({ phase: 'done', transferredBytes: r.transferredBytes, totalBytes: r.transferredBytes, remainingBytes: 0, dirtyRateBytesPerSec: 0, expectedDowntimeMs: 0, downtimeMs: r.downtimeMs });
      this.emit('vmListChanged');
      // libvirt keeps no copy here (--undefinesource): the definition lives on the destination.
      return { id, name, to: req.to, destination, totalTimeMs: r.totalTimeMs, downtimeMs: r.downtimeMs, transferredBytes: r.transferredBytes, definitionKeptAt: '' };
    } catch (e) {
      const cancelled = e instanceof HangarError && e.code === 'cancelled';
      report({ phase: cancelled ? 'cancelled' : 'failed', transferredBytes: 0, totalBytes: 0, remainingBytes: 0, dirtyRateBytesPerSec: 0, expectedDowntimeMs: 0, message: (e as Error).message });
      throw e;
    } finally {
      this.migrations.delete(id);
    }
  }

  async cancelMigration(ref: string): Promise<boolean> {
    const st = await this.status(ref);
    const run = this.migrations.get(st.summary.id);
    if (!run) return false;
    await run.cancel();
    return true;
  }

  async setAutostart(ref: string, on: boolean): Promise<VmInfo> {
    const st = await this.status(ref);
    if (!st.persistent) {
      throw new HangarError('invalid-state', `cannot mark domain "${st.summary.name}" to start with libvirtd: it is transient (not defined)`,
        `define it first: virsh -c ${this.uri} dumpxml ${st.summary.name} > ${st.summary.name}.xml && virsh -c ${this.uri} define ${st.summary.name}.xml`);
    }
    await runVirsh(this.uri, on ? ['autostart', '--domain', st.summary.id] : ['autostart', '--disable', '--domain', st.summary.id]);
    return this.get(st.summary.id);
  }

  /**
   * Undefines a stopped domain (its NVRAM, TPM state, managed save image and snapshot metadata
   * with it). deleteDisks also removes its writable, unshared disk images; CD-ROMs, read-only and
   * shareable disks and block devices are kept and listed.
   */
  async delete(ref: string, opts: DeleteOptions = {}): Promise<{ deletedFiles: string[]; keptFiles: string[] }> {
    const st = await this.status(ref);
    assertCan('delete', st.summary.state, st.summary.name);
    if (libvirtActive(st.raw)) {
      // libvirt 'crashed' with on_crash=preserve: QEMU is still there; undefine would only make it transient.
      throw new HangarError('invalid-state', `cannot delete domain "${st.summary.name}": its crashed QEMU is still there`,
        'force it off (destroy) first');
    }
    const id = st.summary.id;
    const { readDomainFacts } = await import('./domain-facts.ts');
    const facts = readDomainFacts(await runVirsh(this.uri, ['dumpxml', '--inactive', '--domain', id]));
    const args = ['undefine', '--domain', id, '--managed-save', '--snapshots-metadata', '--checkpoints-metadata'];
    if (facts.hasNvram) args.push('--nvram');
    if (facts.hasTpmState) args.push('--tpm');
    await runVirsh(this.uri, args);
    this.forgetShutdown(id);
    const deletedFiles: string[] = [];
    const keptFiles: string[] = [];
    for (const d of facts.disks) {
      const label = diskLabel(d);
      if (!label) continue;
      if (!opts.deleteDisks || !deletable(d)) {
        keptFiles.push(label);
        continue;
      }
      if (await this.removeDisk(d)) deletedFiles.push(label);
      else keptFiles.push(label);
    }
    this.emit('vmListChanged');
    return { deletedFiles, keptFiles };
  }

  /** A storage volume through libvirt (works remotely too); a plain file of a local URI with rm. */
  private async removeDisk(d: DomainDiskSource): Promise<boolean> {
    try {
      if (d.type === 'volume' && d.pool && d.volume) await runVirsh(this.uri, ['vol-delete', '--pool', d.pool, '--vol', d.volume]);
      else await runVirsh(this.uri, ['vol-delete', '--vol', d.file!]);
      return true;
    } catch {
      // Not in any libvirt pool: only a local libvirtd's files are this computer's to remove.
      if (d.type !== 'file' || !d.file || !this.local) return false;
      try {
        await rm(d.file);
        return true;
      } catch {
        return false;
      }
    }
  }
}

function diskLabel(d: DomainDiskSource): string | undefined {
  if (d.file) return d.file;
  if (d.dev) return d.dev;
  if (d.pool && d.volume) return `${d.pool}/${d.volume}`;
  return undefined;
}

/** Only a writable, unshared image of the domain's own (never a CD-ROM or a host block device). */
function deletable(d: DomainDiskSource): boolean {
  return d.device === 'disk' && !d.readonly && !d.shareable && (d.type === 'file' || d.type === 'volume');
}
