// One VM under supervision: its state machine, its QEMU process (spawned or re-attached), QMP
// events, and its serial console. All lifecycle actions for a VM go through here. A start runs in
// named phases (libvirt's qemu_process.c); the back ends beside QEMU are sidecars (sidecar.ts),
// started from one list and stopped in reverse by endRun() on every path a run ends by.
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile, readdir, rm, rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { displayCapabilities } from '../../common/display.ts';
import { HangarError } from '../../common/errors.ts';
import type { DiskDefinition, VmDefinition } from '../../common/model.ts';
import { assertCan, isActive } from '../../common/state.ts';
import { imageInfo, resizeImage } from '../store/qemu-img.ts';
import { diskNodeNames } from '../qemu/devices/disk.ts';
import type { VmAction, VmState } from '../../common/state.ts';
import type { VmInfo, VmSummary } from '../../common/api.ts';
import { SerialConsole } from '../console/serial-console.ts';
import { ioErrorPauseReason, serialLogReason } from '../io-error-reason.ts';
import type { AccelProbe } from '../host/accel.ts';
import { QEMU_SERVED_SOCKET_RE, ensurePrivateDir, vmRuntimePaths } from '../paths.ts';
import type { VmRuntimePaths } from '../paths.ts';
import { QmpClient } from '../qmp/client.ts';
import type { RunState } from '../qmp/client.ts';
import { withQmpHealth } from '../qmp/health.ts';
import type { StatsTarget } from '../stats/vm-sampler.ts';
import { buildArgv } from '../qemu/vm-argv.ts';
import { qemuHardening, sandboxPlugBlocker } from '../sandbox/qemu-hardening.ts';
import type { StoredVm } from '../store/vm-store.ts';
import { writeFileAtomic } from '../store/atomic-write.ts';
import {
  findQemuByUuid, hasExited, isOurQemu, isStoppedProcess, killQemu, sleep, qemuErrorTail, readPidfile, spawnQemu, waitForExit, waitForSocket,
} from './qemu-process.ts';
import type { SpawnedQemu } from './qemu-process.ts';
import type { HostAssignment } from '../../common/host-devices.ts';
import { checkSidecars, reattachSidecars, sidecarArgv, sidecarProcesses, startSidecars, stopSidecars } from './sidecar.ts';
import type { Sidecar, SidecarContext, SidecarStartContext } from './sidecar.ts';
import { SIDECARS } from './sidecar-list.ts';
import { checkHost, connectQmp, overcommitNote, prepareDomain } from './start-phases.ts';
import { crashPointForTests, killQemuForTests } from './test-crash.ts';
import { liveDisks } from '../snapshots/block-nodes.ts';
import { qemuInfo } from '../host/binaries.ts';
import { applyPinning } from './cpu-pinning.ts';
import { liveHotplugBlocker, pluggedCount } from './cpu-memory-ops.ts';
import { discardSavedState, hasSavedState, readSavedMeta, restoreState, saveBlocker, saveState } from './saved-state.ts';
import type { Domain } from './start-phases.ts';
import { plugBlocker, plugDevice, releaseBackends, unplugBlocker } from './hotplug.ts';
import type { LiveHardware } from './hotplug.ts';
import { findDevice, isListKind, listKindFields, pendingChanges } from '../../common/device-edit.ts';
import type { DeviceKindName } from '../../common/api.ts';
import { parseDefinition } from '../../common/definition.ts';
import { AGENT_CHANNEL_NAME, agentInstallHint } from '../../common/guest-agent.ts';
import { agentShutdown, agentSyncTime } from '../agent/agent-ops.ts';

export interface InstanceDeps {
  runtimeDir: string;
  /** Memoized accelerator probe. */
  probe: () => Promise<AccelProbe>;
  onChange: (vm: VmInstance) => void;
  /** Every host device the VM definitions name, and whether their VMs run (VFIO start checks). */
  assignments?: () => HostAssignment[];
  /** Everything that lives beside QEMU, in start order; default SIDECARS (tests add fakes). */
  sidecars?: readonly Sidecar[];
  /** Guest memory (MiB) of the other VMs that run now: the overcommit note at start. */
  otherGuestsMiB?: (self: VmInstance) => number;
  /** Writes the VM's definition (a re-attach that finds QEMU writing other disk files than recorded). */
  saveDefinition?: (vm: VmInstance, def: VmDefinition) => Promise<void>;
}

const SAVED_REASON = 'its RAM and device state are saved in its folder: start restores it';

const INTERNAL_ERROR_REASON =
  'the guest stopped with an internal error: the accelerator (KVM) cannot run it on this host. ' +
  'Force it off (`hangar destroy`), set its accelerator to tcg (`hangar edit NAME --accel tcg`) and start it again.';

type Intent = 'poweroff' | 'reboot' | null;

/** How long a resume waits before asking whether the guest really runs (a disk still full pauses it again at once). */
const RESUME_SETTLE_MS = 500;
/** How long a restarted core tries to reach a live QEMU's monitor before it shows the VM as not responding. */
const REATTACH_CONNECT_MS = 5000;
/** How often the back-end processes of a running VM are checked (a kill(0) each). */
const BACKEND_WATCH_MS = 2000;

const MIB = 1024 * 1024;

interface Session {
  pid: number;
  /** null when QEMU lives but its monitor does not answer: only force-off remains. */
  qmp: QmpClient | null;
  spawned?: SpawnedQemu;
  accel?: 'kvm' | 'tcg';
  accelNote?: string;
  /** vCPU device ids the guest released during this QEMU run. */
  releasedVcpus?: Set<string>;
  /** Things the user should know about this start (e.g. NVRAM recreated). */
  startNotes?: string[];
  /** Set when Hangar itself asked QEMU to exit, so the exit is not a crash. */
  expectExit: boolean;
  /** Set when the guest powered off (SHUTDOWN event). */
  guestShutdown: boolean;
  intent: Intent;
  timer?: NodeJS.Timeout;
  /** Why the run ended, when Hangar ended it for a reason the user should see (e.g. forced off after the shutdown timeout). */
  stopNote?: string;
  /** The run ended by a managed save: the VM is `saved`, not stopped. */
  saved?: boolean;
}

type LiveSession = Session & { qmp: QmpClient };

/** One start in progress: what its phases share, and the QEMU it spawned (for the failure path). */
interface StartRun extends SidecarStartContext {
  spawned?: SpawnedQemu;
  beforeCont?: StartOptions['beforeCont'];
  incoming?: boolean;
}

export interface StartOptions {
  /** Runs on QEMU stopped at -S before the guest runs; true = leave the guest paused. */
  beforeCont?: (qmp: QmpClient) => Promise<boolean>;
  /** QEMU waits for a migration stream (restoring a saved state). */
  incoming?: boolean;
}

/** Whether `file` is somewhere in the backing chain below `image`. */
async function backingChainHas(image: string, file: string): Promise<boolean> {
  let cur: string | undefined = image;
  for (let depth = 0; cur && depth < 32; depth++) {
    cur = await imageInfo(cur).then((i) => i.backingFile, () => undefined);
    if (cur === file) return true;
  }
  return false;
}

export class VmInstance extends EventEmitter<{ state: [VmState] }> {
  state: VmState = 'stopped';
  reason: string | undefined;
  stored: StoredVm;
  readonly paths: VmRuntimePaths;
  private session: Session | null = null;
  private busy: VmAction | null = null;
  private consoleInstance: SerialConsole | null = null;
  /** What the running QEMU has (its start definition plus hotplugs); null when no QEMU runs. */
  private hardware: LiveHardware | null = null;
  /** The balloon of the running QEMU, in bytes: the target asked for and what the guest holds. */
  private balloonBytes: { target: number; actual: number } | null = null;
  /** Watches the back-end processes of the run (started or adopted); see watchBackends. */
  private backendWatch: NodeJS.Timeout | null = null;
  /** A back end that died while QEMU runs: part of the VM's reason until the run ends. */
  private backendNote: string | undefined;
  /** Why the last restore of the saved state failed (the VM's reason while it stays saved). */
  private restoreFailure: string | undefined;
  /** A live migration of this VM in progress (migration-source.ts / migration-incoming.ts set it). */
  migration: VmInfo['migration'] | undefined;

  constructor(stored: StoredVm, private readonly deps: InstanceDeps) {
    super();
    this.stored = stored;
    this.paths = vmRuntimePaths(deps.runtimeDir, stored.id);
    if (!stored.definition) {
      this.state = 'broken';
      this.reason = stored.error;
    } else if (hasSavedState(stored.dir)) {
      this.state = 'saved';
      this.reason = SAVED_REASON;
    }
  }

  get id(): string {
    return this.stored.id;
  }

  get name(): string {
    return this.stored.definition?.name ?? `(broken ${this.stored.id})`;
  }

  get definition(): VmDefinition {
    if (!this.stored.definition) throw new HangarError('broken-definition', `VM ${this.stored.id} is broken: ${this.stored.error}`, 'fix or delete its definition file');
    return this.stored.definition;
  }

  get pid(): number | undefined {
    return this.session?.pid;
  }

  get console(): SerialConsole {
    if (!this.consoleInstance) {
      this.consoleInstance = new SerialConsole({ socketPath: this.paths.serialSocket, vmDir: this.stored.dir });
      // A serial log that cannot be written (disk full, read-only data dir) is the VM's reason, never a crash.
      this.consoleInstance.on('log-status', (e) => this.setState(this.state, serialLogReason(this.reason, e)));
    }
    return this.consoleInstance;
  }

  summary(): VmSummary {
    const s: VmSummary = { id: this.id, name: this.name, state: this.state };
    const reason = withQmpHealth(this.session?.qmp, this.backendNote && this.reason ? `${this.backendNote}; ${this.reason}` : this.backendNote ?? this.reason);
    if (reason) s.reason = reason;
    if (this.stored.definition) {
      s.vcpus = this.stored.definition.cpu.vcpus;
      s.memoryMiB = this.stored.definition.memoryMiB;
      s.display = displayCapabilities(this.stored.definition).vnc;
    }
    if (this.session) s.pid = this.session.pid;
    return s;
  }

  info(): VmInfo {
    const i: VmInfo = { ...this.summary(), dir: this.stored.dir };
    if (this.stored.definition) i.definition = this.stored.definition;
    if (this.session?.accel) i.accelInUse = this.session.accel;
    if (this.session?.accelNote) i.accelNote = this.session.accelNote;
    if (this.session?.startNotes?.length) i.startNotes = this.session.startNotes;
    if (this.hardware && this.stored.definition && isActive(this.state)) i.pending = pendingChanges(this.hardware.definition, this.stored.definition);
    if (this.hardware?.definition.balloon && this.balloonBytes && isActive(this.state)) {
      i.balloon = { targetMiB: Math.round(this.balloonBytes.target / MIB), actualMiB: Math.round(this.balloonBytes.actual / MIB) };
    }
    if (this.migration) i.migration = this.migration;
    return i;
  }

  private setState(state: VmState, reason?: string): void {
    // Without a QEMU, a VM whose saved state is in its folder is saved, whichever path ended the run
    // (a refused restore may end QEMU on its own: that is no crash, and the state file still counts).
    if ((state === 'stopped' || state === 'crashed') && this.stored.definition && hasSavedState(this.stored.dir)) {
      state = 'saved';
      reason = this.restoreFailure ?? SAVED_REASON;
    }
    if (this.state === state && this.reason === reason) return;
    this.state = state;
    this.reason = reason;
    this.emit('state', state);
    this.deps.onChange(this);
  }

  /** Runs an action under the per-VM lock: a second concurrent action gets 'busy', never a race. */
  async exclusive<T>(action: VmAction, fn: () => Promise<T>): Promise<T> {
    if (this.busy) {
      throw new HangarError('busy', `VM "${this.name}" is busy: a ${this.busy} is in progress`, 'wait for it to finish and try again');
    }
    assertCan(action, this.state, this.name);
    this.busy = action;
    try {
      return await fn();
    } finally {
      this.busy = null;
    }
  }

  /** Waits until the VM reaches a state matching pred (or rejects after timeoutMs). */
  waitFor(pred: (s: VmState) => boolean, timeoutMs: number): Promise<void> {
    if (pred(this.state)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onState = (s: VmState): void => {
        if (!pred(s)) return;
        clearTimeout(t);
        this.off('state', onState);
        resolve();
      };
      const t = setTimeout(() => {
        this.off('state', onState);
        reject(new HangarError('timeout', `VM "${this.name}" is still ${this.state} after ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      this.on('state', onState);
    });
  }

  // ---- start: init -> prepare domain -> prepare host -> launch -> finish start-up -------------

  /**
   * Starts the VM; one with a saved state is restored from it (never booted afresh behind the
   * user's back: that would throw the state away). discardSaved boots afresh, deleting it.
   */
  start(opts: { discardSaved?: boolean } = {}): Promise<void> {
    return this.exclusive('start', async () => {
      if (opts.discardSaved && hasSavedState(this.stored.dir)) {
        await discardSavedState(this.stored.dir);
        this.restoreFailure = undefined;
        await this.logEvent('saved state discarded; booting afresh');
      }
      if (!hasSavedState(this.stored.dir)) {
        await this.startLocked();
        return;
      }
      const meta = await readSavedMeta(this.stored.dir);
      try {
        await this.startLocked({
          incoming: true,
          beforeCont: async (qmp) => {
            try {
              await restoreState(qmp, this.paths.stateSocket, this.stored.dir);
            } catch (e) {
              this.restoreFailure = `restoring the saved state failed: ${e instanceof Error ? e.message : String(e)}`;
              throw e;
            }
            // QEMU holds the state now: the file goes before the guest runs, so that a core dying
            // from here on can never restore it again over a guest that has moved on.
            await discardSavedState(this.stored.dir);
            this.restoreFailure = undefined;
            return meta?.paused ?? false;
          },
        });
      } catch (e) {
        // The file stays: the user chooses to try again or to discard it and boot.
        const why = e instanceof Error ? e.message : String(e);
        this.restoreFailure ??= `restoring the saved state failed: ${why}`;
        this.setState('saved', this.restoreFailure);
        await this.logEvent(`restoring the saved state failed: ${why}`);
        throw new HangarError(e instanceof HangarError ? e.code : 'qemu-failed', `VM "${this.name}" could not be restored from its saved state: ${why}`,
          `\`hangar start ${this.name} --discard-saved\` discards the saved state and boots afresh (what the guest had in RAM is lost)`);
      }
      await this.logEvent(`restored from the state saved ${meta?.savedAt ?? ''}`.trim());
      this.syncGuestTime('restore');
    });
  }

  /** The unix socket of the running VM's guest agent channel; null without the channel. */
  agentSocket(): string | null {
    const i = this.runningDefinition.channels.findIndex((c) => c.name === AGENT_CHANNEL_NAME);
    return i < 0 ? null : this.paths.channelSocket(i);
  }

  /**
   * The guest's clock stood still while paused or saved: the agent sets it from the RTC (QEMU's
   * clock follows the host's). Best effort, in the background: a guest without an agent just
   * keeps its old time, and the log says so.
   */
  private syncGuestTime(after: string): void {
    const sock = this.agentSocket();
    if (!sock) return;
    void agentSyncTime(sock).then(
      () => this.logEvent(`guest clock set through the guest agent after ${after}`),
      (e: unknown) => this.logEvent(`guest clock not set after ${after}: ${(e as Error).message}`),
    ).catch(() => {});
  }

  /**
   * Managed save: QEMU's state into the VM's folder, then QEMU ends; the VM is `saved` and the
   * next start restores it. Refused for devices whose state cannot be saved.
   */
  save(onProgress?: (done: number, total: number) => void): Promise<void> {
    return this.exclusive('save', async () => {
      const s = this.live();
      const def = this.runningDefinition;
      const blocker = saveBlocker(def, (await qemuInfo().catch(() => undefined))?.version) ?? await liveHotplugBlocker(s.qmp);
      if (blocker) throw new HangarError('invalid-state', `cannot save VM "${this.name}": ${blocker}`, 'shut it down instead, or remove those devices');
      if (this.info().pending?.length) {
        throw new HangarError('invalid-state', `cannot save VM "${this.name}": it has changes pending for its next boot, and a saved state only restores into the hardware it was saved from`,
          'restart it to apply them (or undo them), then save');
      }
      const paused = this.state === 'paused';
      const meta = await saveState(s.qmp, this.paths.stateSocket, this.stored.dir, paused, (done, total) => {
        killQemuForTests('save-streaming', s.pid);
        onProgress?.(done, total);
      });
      crashPointForTests('save-written');
      await this.logEvent(`state saved (${meta.bytes} bytes${paused ? ', paused' : ''}); QEMU ends`);
      s.expectExit = true;
      s.saved = true;
      this.setState('stopping');
      await s.qmp.quit({ timeoutMs: 5000 }).catch(() => {});
      if (!(await waitForExit(s.pid, 10_000))) killQemu(s.pid, this.id, 'SIGKILL');
      await this.waitFor((st) => st === 'saved', 15_000);
    });
  }

  // ---- live migration: small entry points; the work is in migration-source.ts / migration-incoming.ts

  /** Devices were hotplugged into this QEMU run (a destination started from the definition would place them elsewhere). */
  get hasHotplugged(): boolean {
    return Object.keys(this.hardware?.slots ?? {}).length > 0;
  }

  /** Destination of a live migration: QEMU started with -incoming defer; beforeCont feeds it and answers whether to stay paused. */
  startIncoming(beforeCont: (qmp: QmpClient) => Promise<boolean>): Promise<void> {
    return this.exclusive('start', () => this.startLocked({ incoming: true, beforeCont }));
  }

  /** Source of a completed live migration (the caller holds the lock): its QEMU quits, the run ends as a clean stop. */
  async endAfterMigration(note: string): Promise<void> {
    const s = this.live();
    s.expectExit = true;
    s.stopNote = note;
    clearTimeout(s.timer);
    this.setState('stopping');
    await s.qmp.quit({ timeoutMs: 5000 }).catch(() => {});
    if (!(await waitForExit(s.pid, 10_000))) killQemu(s.pid, this.id, 'SIGKILL');
    await this.waitFor((st) => !isActive(st), 15_000);
  }

  /**
   * The start itself, for an operation that already holds the VM's lock (a snapshot revert).
   * opts.beforeCont runs on QEMU stopped at -S, before the guest runs (e.g. loading a RAM
   * snapshot); it answers true when the guest must stay paused.
   */
  async startLocked(opts: StartOptions = {}): Promise<void> {
    await this.refuseSecondQemu();
    const run = this.initStart();
    if (opts.beforeCont) run.beforeCont = opts.beforeCont;
    if (opts.incoming) run.incoming = true;
    try {
      const domain = await prepareDomain(run, this.deps.probe);
      const bridgeHelper = await this.prepareHost(run);
      const session = await this.launch(run, domain, bridgeHelper);
      await this.finishStartup(run, session);
    } catch (e) {
      throw await this.abortStart(run, e);
    }
  }

  /** A live QEMU of this VM (recorded or not) is never started twice: both would write the same disks. */
  private async refuseSecondQemu(): Promise<void> {
    if (this.session) {
      throw new HangarError('invalid-state', `VM "${this.name}" still has a QEMU process running (pid ${this.session.pid})`,
        `force it off first (\`hangar destroy ${this.name}\`), then start it`);
    }
    const pids = await findQemuByUuid(this.id, this.paths.dir);
    if (!pids.length) return;
    // Not Hangar's (its run dir was removed by hand, or another tool started it): not Hangar's to kill either.
    throw new HangarError('invalid-state', `VM "${this.name}" is already running in a QEMU Hangar does not supervise (pid ${pids.join(', ')})`,
      `stop that QEMU (kill ${pids.join(' ')}) if nothing needs it, then start the VM`);
  }

  /** init: the definition this start uses (the saved one may change meanwhile) and the phases' shared context. */
  private initStart(): StartRun {
    if (this.state === 'saved' && !hasSavedState(this.stored.dir)) this.reason = undefined;
    const def = this.definition;
    this.setState('starting');
    return { ...this.sidecarContext(), def, notes: [], assignments: () => this.deps.assignments?.() ?? [] };
  }

  /** prepare host: refuse what the host cannot give while nothing runs, then clear leftovers and start the sidecars. */
  private async prepareHost(run: StartRun): Promise<string | undefined> {
    await checkSidecars(this.sidecars, run);
    const bridgeHelper = await checkHost(run);
    const over = await overcommitNote(run.def, this.deps.otherGuestsMiB?.(this) ?? 0);
    if (over) {
      run.notes.push(over);
      await run.log(over);
    }
    await this.endRun();
    ensurePrivateDir(this.paths.dir);
    await startSidecars(this.sidecars, run);
    crashPointForTests('after-sidecars');
    return bridgeHelper;
  }

  /** launch: QEMU stopped at -S, with its QMP connection and events bound. */
  private async launch(run: StartRun, domain: Domain, bridgeHelper: string | undefined): Promise<LiveSession> {
    const argv = buildArgv(run.def, {
      accel: domain.accel, paths: this.paths, vmDir: this.stored.dir, firmware: domain.firmware, bridgeHelper, ...sidecarArgv(this.sidecars, run),
      hardening: qemuHardening(run.def, domain.qemu), incoming: run.incoming,
    });
    const spawned = spawnQemu(domain.qemu, argv, this.stored.dir);
    run.spawned = spawned;
    crashPointForTests('after-spawn');
    await waitForSocket(this.paths.qmpSocket, spawned.pid, this.stored.dir, 20_000);
    const qmp = await connectQmp(this.paths.qmpSocket, spawned.pid);
    const session: LiveSession = { pid: spawned.pid, qmp, spawned, accel: domain.accel, expectExit: false, guestShutdown: false, intent: null };
    if (domain.accelNote) session.accelNote = domain.accelNote;
    if (run.notes.length) session.startNotes = run.notes;
    this.bindSession(session);
    return session;
  }

  /** finish start-up: what a restarted core must know, balloon and console, then the guest runs. */
  private async finishStartup(run: StartRun, session: LiveSession): Promise<void> {
    const { def } = run;
    await this.saveHardware({ definition: def, slots: {} });
    if (def.balloon) this.balloonBytes = { target: def.memoryMiB * MIB, actual: def.memoryMiB * MIB };
    if (def.serial.enabled) await this.console.attach({ connectTimeoutMs: 10_000 });
    // Threads pinned before the guest runs a single instruction.
    if (def.cpu.pinning) await applyPinning(session.qmp, session.pid, def.cpu.pinning);
    crashPointForTests('before-cont');
    const stayPaused = run.beforeCont ? await run.beforeCont(session.qmp) : false;
    if (stayPaused) {
      this.setState('paused');
    } else {
      await session.qmp.cont();
      this.setState('running');
    }
    await this.logEvent(`started (QEMU pid ${session.pid}, ${session.accel ?? 'tcg'})${stayPaused ? ', paused' : ''}`);
    await this.watchBackends(session);
  }

  /**
   * Notices a back end (passt, swtpm ...) that dies while its QEMU runs: the guest's devices it
   * serves stop working although QEMU runs on, so the VM says so (its reason and event log). The
   * same watch is set up by a restarted core for the back ends it adopted.
   */
  private async watchBackends(session: Session): Promise<void> {
    this.stopBackendWatch();
    const procs = await sidecarProcesses(this.sidecars, this.sidecarContext()).catch(() => []);
    if (!procs.length || this.session !== session) return;
    const timer = setInterval(() => {
      if (this.session !== session || this.backendWatch !== timer) {
        clearInterval(timer);
        return;
      }
      const dead = procs.filter((p) => hasExited(p.pid));
      // Back ends end with their QEMU (--one-off, --terminate): only a death while QEMU lives is news.
      if (!dead.length || !isOurQemu(session.pid, this.id) || session.expectExit) return;
      this.stopBackendWatch();
      this.backendNote = `back end ${dead.map((p) => `${p.label} (pid ${p.pid})`).join(', ')} exited while the VM runs: `
        + 'the devices it served no longer work (see its log in the VM\'s logs/); shut the VM down and start it again';
      void this.logEvent(this.backendNote);
      this.deps.onChange(this);
    }, BACKEND_WATCH_MS);
    timer.unref();
    this.backendWatch = timer;
  }

  private stopBackendWatch(): void {
    if (this.backendWatch) clearInterval(this.backendWatch);
    this.backendWatch = null;
  }

  /** The one failure path of start: QEMU (if spawned) and every sidecar stopped; returns the error to throw. */
  private async abortStart(run: StartRun, e: unknown): Promise<unknown> {
    let error = e;
    const { spawned } = run;
    if (spawned) {
      if (this.session) this.session.expectExit = true;
      // QEMU opens its QMP socket before it sets up devices: one that dies then (a vfio-pci
      // device it cannot open ...) breaks the QMP connection, but its log says why.
      const died = e instanceof HangarError && e.code === 'qemu-failed' ? null
        : await Promise.race([spawned.exited, sleep(1000).then(() => null)]);
      if (died) error = new HangarError('qemu-failed', `QEMU exited during start-up: ${await qemuErrorTail(this.stored.dir)}`, 'fix the VM definition or host problem named above (see also `hangar doctor`)');
      killQemu(spawned.pid, this.id);
      await waitForExit(spawned.pid, 5000);
      this.session?.qmp?.close();
      this.session = null;
    }
    await this.endRun();
    this.setState('stopped');
    return error;
  }

  /** Appends a line to the VM's own event log (<vmdir>/logs/hangar.log). */
  private async logEvent(text: string): Promise<void> {
    const dir = join(this.stored.dir, 'logs');
    await mkdir(dir, { recursive: true }).catch(() => {});
    await appendFile(join(dir, 'hangar.log'), `${new Date().toISOString()} ${text}\n`).catch(() => {});
  }

  /**
   * Grows a disk: qemu-img resize while the VM is off, QMP block_resize while it runs (the guest
   * sees the new size at once; growing its partitions and file systems is the guest's job).
   * Never shrinks: that would cut off the end of the guest's data.
   */
  async resizeDisk(diskId: string, sizeBytes: number): Promise<{ oldBytes: number; newBytes: number; online: boolean }> {
    return this.exclusive('resize-disk', async () => {
      // While QEMU runs, the disk must be one it has (not one pending for the next boot).
      const def = isActive(this.state) ? this.runningDefinition : this.definition;
      const disk = def.disks.find((d) => d.id === diskId);
      if (!disk) throw new HangarError('not-found', `VM "${def.name}" has no disk "${diskId}"`, `its disks: ${def.disks.map((d) => d.id).join(', ') || 'none'}`);
      if (disk.readOnly) throw new HangarError('invalid-input', `disk "${diskId}" is read-only`, 'make it writable first (edit the definition)');
      const newBytes = Math.ceil(sizeBytes / 512) * 512;
      const oldBytes = (await imageInfo(disk.file)).virtualSize;
      if (newBytes <= oldBytes) {
        throw new HangarError('invalid-input', `disk "${diskId}" is already ${oldBytes} bytes; ${newBytes} would ${newBytes === oldBytes ? 'change nothing' : 'shrink it and cut off the end of its data'}`,
          'give a larger size (shrink a disk from inside the guest first, then with qemu-img resize --shrink by hand)');
      }
      const qmp = this.session?.qmp;
      if (!isActive(this.state)) {
        await resizeImage(disk.file, disk.format, newBytes);
        return { oldBytes, newBytes, online: false };
      }
      if (disk.bus === 'vhost-user-blk') {
        throw new HangarError('invalid-state', `disk "${diskId}" is served by qemu-storage-daemon while the VM runs`, 'shut the VM down, then resize it');
      }
      if (!qmp) throw new HangarError('invalid-state', `VM "${def.name}" has no QMP connection right now`, 'try again in a moment');
      // The node the device writes through now (after a live external snapshot, its newest overlay).
      const node = (await liveDisks(qmp)).get(disk.id)?.node ?? diskNodeNames(disk.id).format;
      await qmp.execute('block_resize', { 'node-name': node, size: newBytes });
      await this.logEvent(`disk ${diskId} grown online from ${oldBytes} to ${newBytes} bytes`);
      return { oldBytes, newBytes, online: true };
    });
  }

  // ---- hardware of the running QEMU: hotplug, unplug, media, balloon --------------------------

  private get hardwareFile(): string {
    return join(this.paths.dir, 'hardware.json');
  }

  /** The definition the running QEMU has (the saved one when no QEMU runs). */
  get runningDefinition(): VmDefinition {
    return this.hardware?.definition ?? this.definition;
  }

  /** Kept in the runtime dir, so a restarted core knows what was hotplugged. */
  private async saveHardware(hw: LiveHardware): Promise<void> {
    this.hardware = hw;
    ensurePrivateDir(this.paths.dir);
    await writeFileAtomic(this.hardwareFile, JSON.stringify(hw), 0o600);
  }

  private async loadHardware(): Promise<LiveHardware> {
    try {
      const raw = JSON.parse(await readFile(this.hardwareFile, 'utf8')) as { definition: unknown; slots?: Record<string, string> };
      return { definition: parseDefinition(raw.definition), slots: raw.slots ?? {} };
    } catch {
      // Started by a Hangar without this file, or it was lost: assume what is saved.
      return { definition: this.definition, slots: {} };
    }
  }

  private liveHardware(): { qmp: QmpClient; hw: LiveHardware } {
    const s = this.live();
    if (!this.hardware) throw new HangarError('invalid-state', `VM "${this.name}" is not running`, 'start it first');
    return { qmp: s.qmp, hw: this.hardware };
  }

  private withDevice(def: VmDefinition, kind: DeviceKindName, device: Record<string, unknown> | null, id: string): VmDefinition {
    const raw = { ...def } as unknown as Record<string, unknown>;
    if (isListKind(kind)) {
      const field = listKindFields[kind];
      const list = (raw[field] as Array<Record<string, unknown>>).filter((d) => d.id !== id);
      raw[field] = device ? [...list, device] : list;
    } else if (device) raw[kind] = device;
    else if (kind === 'video') raw.video = { model: 'none' };
    else delete raw[kind];
    return raw as unknown as VmDefinition;
  }

  /** The running QEMU's hardware changed under an operation holding the lock (a live snapshot moved a disk onto a new overlay). */
  async setRunningDefinition(def: VmDefinition): Promise<void> {
    if (this.hardware) await this.saveHardware({ ...this.hardware, definition: def });
  }

  /** Plugs a device into the running QEMU (the caller holds the VM's lock); throws when QEMU refuses. */
  async plug(kind: DeviceKindName, device: Record<string, unknown>, bridgeHelper?: string): Promise<void> {
    const { qmp, hw } = this.liveHardware();
    const slot = await plugDevice(qmp, kind, device, hw, bridgeHelper);
    const id = device.id as string;
    await this.saveHardware({ definition: this.withDevice(hw.definition, kind, device, id), slots: slot ? { ...hw.slots, [id]: slot } : hw.slots });
    await this.logEvent(`hotplugged ${kind} ${id}`);
  }

  /** Why a device cannot be plugged into the running QEMU now, or null. */
  plugBlocker(kind: DeviceKindName, device: Record<string, unknown>): string | null {
    return this.hardware ? sandboxPlugBlocker(kind, device, this.session?.pid) ?? plugBlocker(kind, device, this.hardware) : 'the VM is not running';
  }

  /** Why a device of the running QEMU cannot be unplugged, or null (also null when QEMU does not have it). */
  unplugBlocker(kind: DeviceKindName, id: string): string | null {
    const hw = this.hardware;
    const dev = hw ? findDevice(hw.definition, kind, id) : undefined;
    return hw && dev ? unplugBlocker(kind, dev, hw) : null;
  }

  /** Whether the running QEMU has this device. */
  hasLive(kind: DeviceKindName, id: string): boolean {
    return Boolean(this.hardware && findDevice(this.hardware.definition, kind, id));
  }

  /**
   * Asks the guest to release a device and waits up to timeoutMs for it (DEVICE_DELETED).
   * true = gone; false = the guest has not let go yet (it is removed whenever it does).
   */
  async unplug(kind: DeviceKindName, id: string, timeoutMs: number): Promise<boolean> {
    const { qmp } = this.liveHardware();
    const gone = this.waitForRelease(kind, id, timeoutMs);
    try {
      await qmp.deviceDel(id);
    } catch (e) {
      if (!/is already in the process of unplug/i.test((e as Error).message)) {
        throw new HangarError('qmp-error', `QEMU refused to unplug ${kind} "${id}": ${(e as Error).message}`, 'it is removed at next boot instead');
      }
    }
    await this.logEvent(`asked the guest to release ${kind} ${id}`);
    return gone;
  }

  private waitForRelease(kind: DeviceKindName, id: string, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.hasLive(kind, id)) return;
        clearTimeout(t);
        this.off('hardware', check);
        resolve(true);
      };
      const t = setTimeout(() => { this.off('hardware', check); resolve(false); }, timeoutMs);
      this.on('hardware', check);
    });
  }

  private async onDeviceDeleted(session: LiveSession, deviceId: string): Promise<void> {
    const hw = this.hardware;
    if (this.session !== session || !hw) return;
    if (deviceId.startsWith('vcpu-')) {
      // A hotplugged vCPU the guest let go (maybe long after it was asked): the running VM has one fewer.
      (session.releasedVcpus ??= new Set()).add(deviceId);
      const vcpus = await pluggedCount(session.qmp).catch(() => hw.definition.cpu.vcpus - 1);
      await this.saveHardware({ ...hw, definition: { ...hw.definition, cpu: { ...hw.definition.cpu, vcpus } } }).catch(() => {});
      await this.logEvent(`the guest released vCPU ${deviceId}; ${vcpus} vCPUs now`);
      this.emit('hardware');
      this.deps.onChange(this);
      return;
    }
    for (const kind of Object.keys(listKindFields) as Array<keyof typeof listKindFields>) {
      const dev = findDevice(hw.definition, kind, deviceId);
      if (!dev) continue;
      await releaseBackends(session.qmp, kind, dev);
      const { [deviceId]: _freed, ...slots } = hw.slots;
      await this.saveHardware({ definition: this.withDevice(hw.definition, kind, null, deviceId), slots }).catch(() => {});
      await this.logEvent(`the guest released ${kind} ${deviceId}; it is unplugged`);
      this.emit('hardware');
      this.deps.onChange(this);
      return;
    }
  }

  /** Puts a medium in (or takes it out of) a CD-ROM drive of the running VM. */
  async changeMedium(id: string, file: string | undefined): Promise<void> {
    const { qmp, hw } = this.liveHardware();
    const cd = hw.definition.cdroms.find((c) => c.id === id);
    if (!cd) throw new HangarError('invalid-state', `the running VM has no CD-ROM "${id}" yet`, 'it is added at next boot');
    try {
      if (file) await qmp.execute('blockdev-change-medium', { id, filename: file, format: 'raw', 'read-only-mode': 'read-only' });
      else await qmp.execute('eject', { id, force: true });
    } catch (e) {
      throw new HangarError('qmp-error', `QEMU could not ${file ? `insert ${file} into` : 'eject'} CD-ROM "${id}": ${(e as Error).message}`,
        file ? 'check that the file is a readable ISO image' : 'the guest may have locked the tray; eject it from inside the guest');
    }
    const next = { ...cd, file };
    if (!file) delete next.file;
    await this.saveHardware({ ...hw, definition: this.withDevice(hw.definition, 'cdrom', next, id) });
    await this.logEvent(file ? `CD-ROM ${id}: medium ${file} inserted` : `CD-ROM ${id}: medium ejected`);
  }

  /** Sets the balloon's target; answers with the target and what the guest has now. */
  async setBalloon(targetMiB: number): Promise<{ targetMiB: number; actualMiB: number }> {
    return this.exclusive('change-device', async () => {
      if (!isActive(this.state)) throw new HangarError('invalid-state', `VM "${this.name}" is not running`, 'the balloon target applies to a running VM: start it first');
      const { qmp, hw } = this.liveHardware();
      if (!hw.definition.balloon) throw new HangarError('invalid-state', `VM "${this.name}" runs without a memory balloon`, 'add a balloon device (hangar device add NAME balloon) and restart the VM');
      if (targetMiB > hw.definition.memoryMiB) {
        throw new HangarError('invalid-input', `a balloon target of ${targetMiB} MiB is more than the VM's ${hw.definition.memoryMiB} MiB`, `give at most ${hw.definition.memoryMiB} MiB (the balloon only gives memory back)`);
      }
      await qmp.execute('balloon', { value: targetMiB * MIB });
      const q = await qmp.execute<{ actual: number }>('query-balloon');
      // Asking again for the same target (a client following the guest) is not news for the log.
      if (this.balloonBytes?.target !== targetMiB * MIB) await this.logEvent(`balloon target set to ${targetMiB} MiB`);
      this.balloonBytes = { target: targetMiB * MIB, actual: q.actual };
      this.deps.onChange(this);
      return { targetMiB, actualMiB: Math.round(q.actual / MIB) };
    });
  }

  // ---- attach to a running QEMU ------------------------------------------------------------

  /**
   * Called at core start: adopts a QEMU left running by an earlier core, or settles what a run
   * left behind. A live QEMU is never taken for dead (libvirt's reconnect): one that does not
   * answer its monitor (SIGSTOPped, hung, still starting up) is shown as not responding and asked
   * again until it answers, so nothing can start a second QEMU beside it.
   */
  async reattach(): Promise<void> {
    if (!this.stored.definition) return;
    const recorded = await readPidfile(this.paths.pidfile);
    // The pidfile's QEMU, else one found by its -uuid (spawned by a core killed before QEMU wrote
    // its pidfile). Only where a run dir exists (made before any spawn): /proc is not scanned for
    // each of a thousand stopped VMs.
    const pid = recorded !== null && isOurQemu(recorded, this.id) ? recorded
      : existsSync(this.paths.dir) ? (await findQemuByUuid(this.id, this.paths.dir))[0] ?? null : null;
    if (pid === null) {
      await this.settleLeftovers(recorded);
      if (hasSavedState(this.stored.dir) && this.state !== 'saved') this.setState('saved', SAVED_REASON);
      return;
    }
    const session: Session = { pid, qmp: null, expectExit: false, guestShutdown: false, intent: null };
    this.session = session;
    if (await this.adopt(session, REATTACH_CONNECT_MS)) return;
    this.setState('running', `not responding: QEMU (pid ${pid}) is alive but has not answered its monitor since the Hangar core restarted `
      + '(stopped with SIGSTOP, hung or overloaded); Hangar keeps asking and shows its real state once it answers; Force Off still works');
    await this.logEvent(`QEMU (pid ${pid}) does not answer its monitor; re-attach keeps trying`);
    void this.keepTryingQmp(session);
  }

  /** No QEMU of this VM lives: stops what a run left behind, and says so when QEMU went away unwatched. */
  private async settleLeftovers(recordedPid: number | null): Promise<void> {
    const previous = await this.readStatusFile();
    if (recordedPid !== null) {
      // QEMU went away while no core watched. A guest poweroff keeps it alive (-no-shutdown), so it
      // was killed or crashed, when and why is unknown: as libvirt's "shut off (unknown)", the VM
      // is stopped with a note, and the user is never stuck in a state only a start can leave.
      await rm(this.paths.statusFile, { force: true });
      await this.endRun();
      const note = 'QEMU exited while the Hangar core was not running (why is unknown: see logs/qemu.log)';
      await this.logEvent(`${note}; its back ends were stopped`);
      this.setState('stopped', note);
      return;
    }
    // Back ends of a start the core did not finish (killed before QEMU ran), stale sockets.
    if (existsSync(this.paths.dir)) await this.endRun();
    if (previous?.state === 'crashed') this.setState('crashed', previous.reason);
  }

  /**
   * Connects to the monitor of the session's QEMU and takes the VM over. False when QEMU did not
   * answer within connectTimeoutMs (the caller tries again); true when adopted, or moot (the
   * session was replaced meanwhile, e.g. by a force off).
   */
  private async adopt(session: Session, connectTimeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + connectTimeoutMs;
    let qmp: QmpClient | null = null;
    while (!qmp) {
      try {
        qmp = await QmpClient.connect(this.paths.qmpSocket, { connectTimeoutMs: Math.max(500, deadline - Date.now()) });
      } catch (e) {
        // A QEMU still starting up has no socket yet: ask again shortly, within the budget.
        if (Date.now() >= deadline || !/ENOENT|ECONNREFUSED/.test((e as Error).message) || !isOurQemu(session.pid, this.id)) return false;
        await sleep(100);
      }
    }
    if (this.session !== session) {
      qmp.close();
      return true;
    }
    session.qmp = qmp;
    const live = session as LiveSession;
    this.bindSession(live);
    this.hardware = await this.loadHardware();
    await this.followLiveDisks(qmp);
    // Back ends of a running VM keep running: a sidecar may adopt its own, none is restarted.
    await reattachSidecars(this.sidecars, { ...this.sidecarContext(), def: this.hardware.definition })
      .catch((e: unknown) => this.logEvent(`re-attaching the back ends failed: ${(e as Error).message}`));
    await this.watchBackends(session);
    if (this.hardware.definition.balloon) {
      const actual = await qmp.execute<{ actual: number }>('query-balloon').then((b) => b.actual, () => this.hardware!.definition.memoryMiB * MIB);
      this.balloonBytes = { target: actual, actual };
    }
    const status = await qmp.queryStatus().catch(() => null);
    if (!status || this.session !== session) return true; // QEMU went away meanwhile: onQmpClosed settles it
    if (this.stored.definition?.serial.enabled) await this.console.attach({ seedFromLog: true, connectTimeoutMs: 5000 }).catch(() => {});
    await this.logEvent(`re-attached to QEMU (pid ${session.pid}, ${status.status})`);
    if (status.status === 'shutdown') {
      // The guest powered off while no core was watching: finish the job (onQmpClosed stops the back ends, once).
      live.guestShutdown = true;
      live.expectExit = true;
      live.stopNote = 'the guest powered off while the Hangar core was not running';
      this.setState('stopping');
      await qmp.quit().catch(() => {});
      return true;
    }
    if (status.status === 'postmigrate' && hasSavedState(this.stored.dir)) {
      // A save completed while no core watched: finish it (QEMU must not run on past its saved state).
      live.saved = true;
      live.expectExit = true;
      this.setState('stopping');
      await qmp.quit().catch(() => {});
      return true;
    }
    if (status.status === 'prelaunch') {
      // A start was interrupted before `cont` (its back ends run: they start before QEMU): carry it through.
      await qmp.cont();
      await this.logEvent(`a start interrupted before the guest ran was carried through (QEMU pid ${session.pid})`);
    }
    this.applyRunState(status.status === 'prelaunch' ? 'running' : status.status);
    return true;
  }

  /**
   * A core killed during a snapshot merge can leave QEMU writing another file of a disk's chain
   * than the records name, and a block job of its own still running: the records follow QEMU (the
   * file it really writes; logged), never the reverse, and the dead core's jobs are cancelled (a
   * ready commit cancelled does not pivot) so that the interrupted delete can be run again.
   */
  private async followLiveDisks(qmp: QmpClient): Promise<void> {
    const jobs = await qmp.execute<Array<{ id: string; status: string }>>('query-jobs').catch(() => []);
    for (const j of jobs.filter((x) => x.id.startsWith('hangar-'))) {
      if (j.status !== 'concluded') await qmp.execute('job-cancel', { id: j.id }).catch(() => {});
      for (let i = 0; i < 50; i++) {
        const now = (await qmp.execute<Array<{ id: string; status: string }>>('query-jobs').catch(() => [])).find((x) => x.id === j.id);
        if (!now || now.status === 'concluded' || now.status === 'null') break;
        await sleep(100);
      }
      await qmp.execute('job-dismiss', { id: j.id }).catch(() => {});
      await this.logEvent(`cancelled block job ${j.id} left by a core that stopped`);
    }
    const live = await liveDisks(qmp).catch(() => null);
    const hw = this.hardware;
    if (!live || !hw) return;
    const moved = new Map<string, { file: string; format: string }>();
    for (const d of hw.definition.disks) {
      const l = live.get(d.id);
      const top = l?.chain[0];
      // Only a file of the same chain (an overlay above the recorded file, or a base below it) is followed.
      if (!l || !top || top === d.file || top.startsWith('json:')) continue;
      if (l.chain.includes(d.file) || await backingChainHas(d.file, top)) moved.set(d.id, { file: top, format: l.format });
    }
    if (!moved.size) return;
    const follow = (def: VmDefinition): VmDefinition => ({ ...def, disks: def.disks.map((d) => { const m = moved.get(d.id); return m ? { ...d, file: m.file, format: m.format as DiskDefinition['format'] } : d; }) });
    await this.saveHardware({ ...hw, definition: follow(hw.definition) });
    if (this.stored.definition) await this.deps.saveDefinition?.(this, follow(this.stored.definition)).catch(() => {});
    for (const [id, m] of moved) await this.logEvent(`disk ${id}: QEMU writes ${m.file}, not the recorded file (an interrupted snapshot operation); the definition now names it`);
  }

  /** Asks a silent QEMU again and again until it answers (adopted) or goes away (stopped); a force off ends it. */
  private async keepTryingQmp(session: Session): Promise<void> {
    while (this.session === session && !session.expectExit) {
      if (!isOurQemu(session.pid, this.id)) {
        this.session = null;
        await this.endRun();
        const note = `QEMU (pid ${session.pid}) exited before it answered its monitor again (why is unknown: see logs/qemu.log)`;
        await this.logEvent(`${note}; its back ends were stopped`);
        this.setState('stopped', note);
        return;
      }
      if (await this.adopt(session, REATTACH_CONNECT_MS)) return;
      await sleep(1000);
    }
  }

  private bindSession(session: LiveSession): void {
    this.session = session;
    const { qmp } = session;
    qmp.onEvent('SHUTDOWN', (d) => { void this.onGuestShutdown(session, d.reason); });
    qmp.onEvent('STOP', () => { void this.refreshRunState(session); });
    qmp.onEvent('RESUME', () => { if (this.state === 'paused' || this.state === 'guest-error') this.setState('running'); });
    qmp.onEvent('GUEST_PANICKED', () => { this.setState('guest-error', 'the guest kernel panicked; reset or force off the VM'); });
    // The action itself (reset, pause ...) arrives as its own events; this says why it happened.
    // poweroff is QEMU exiting at once (no SHUTDOWN event, -no-shutdown ignored): a clean stop, not a crash.
    qmp.onEvent('WATCHDOG', (d) => {
      if (d.action === 'poweroff') session.guestShutdown = true;
      void this.logEvent(`the guest's watchdog expired; action: ${d.action}`);
    });
    // A device the guest let go of (an unplug, maybe long after the request timed out): free its back ends.
    qmp.onEvent('DEVICE_DELETED', (d) => { if (d.device) void this.onDeviceDeleted(session, d.device); });
    // The guest giving memory back (or taking it again): clients see the figure move.
    qmp.onEvent('BALLOON_CHANGE', (d) => {
      if (this.session !== session) return;
      this.balloonBytes = { target: this.balloonBytes?.target ?? d.actual, actual: d.actual };
      this.deps.onChange(this);
    });
    qmp.on('close', () => { void this.onQmpClosed(session); });
    // A silent monitor (SIGSTOP, hang) changes the VM's reason: clients refetch and show it.
    qmp.on('health', () => { if (this.session === session) this.deps.onChange(this); });
  }

  private applyRunState(status: RunState): void {
    switch (status) {
      case 'running':
        this.setState('running');
        break;
      case 'internal-error':
        this.setState('guest-error', INTERNAL_ERROR_REASON);
        break;
      case 'guest-panicked':
        this.setState('guest-error', 'the guest kernel panicked; reset or force off the VM');
        break;
      case 'io-error': {
        this.setState('paused', 'paused by an I/O error on a disk (full or failing host storage); fix it, then resume');
        // Then which disk, and whether its host file system is full (query-block io-status).
        const session = this.session;
        if (session?.qmp) {
          void ioErrorPauseReason(session.qmp, this.runningDefinition.disks)
            .then((r) => { if (r && this.session === session && this.state === 'paused') this.setState('paused', r); }, () => {});
        }
        break;
      }
      case 'shutdown':
        break;
      default:
        this.setState('paused');
    }
  }

  private async refreshRunState(session: LiveSession): Promise<void> {
    if (this.session !== session || this.state === 'stopping' || this.state === 'starting') return;
    try {
      const st = await session.qmp.queryStatus();
      if (this.session === session && (this.state as VmState) !== 'stopping') this.applyRunState(st.status);
    } catch { /* QEMU going away: onQmpClosed handles it */ }
  }

  private async onGuestShutdown(session: LiveSession, reason: string): Promise<void> {
    if (this.session !== session || reason === 'host-qmp-quit' || session.expectExit) return;
    session.guestShutdown = true;
    if (session.intent === 'reboot') {
      clearTimeout(session.timer);
      session.intent = null;
      session.guestShutdown = false;
      await session.qmp.systemReset().catch(() => {});
      await session.qmp.cont().catch(() => {});
      this.setState('running');
      return;
    }
    clearTimeout(session.timer);
    session.expectExit = true;
    this.setState('stopping');
    await session.qmp.quit({ timeoutMs: 5000 }).catch(() => {});
  }

  private async onQmpClosed(session: Session): Promise<void> {
    if (this.session !== session) return;
    clearTimeout(session.timer);
    const exited = await waitForExit(session.pid, 5000);
    if (!exited) {
      // QMP is gone but the process lingers: it cannot be supervised any more.
      killQemu(session.pid, this.id, 'SIGKILL');
      await waitForExit(session.pid, 3000);
    }
    let how = '';
    if (session.spawned) {
      const r = await Promise.race([session.spawned.exited, new Promise<null>((res) => setTimeout(() => res(null), 1000))]);
      if (r) how = r.signal ? ` (killed by ${r.signal})` : ` (exit code ${r.code})`;
    }
    this.session = null;
    this.consoleInstance?.detach();
    await this.endRun();
    if (session.saved && hasSavedState(this.stored.dir)) {
      await rm(this.paths.statusFile, { force: true });
      await this.logEvent('saved; its back ends were stopped');
      this.setState('saved', SAVED_REASON);
    } else if (session.expectExit || session.guestShutdown) {
      await rm(this.paths.statusFile, { force: true });
      await this.logEvent(`stopped${session.stopNote ? ` (${session.stopNote})` : ''}; its back ends were stopped`);
      this.setState('stopped', session.stopNote);
    } else {
      const tail = session.spawned ? await qemuErrorTail(this.stored.dir) : '';
      const reason = `QEMU exited unexpectedly${how}${tail && !tail.startsWith('no message') ? `: ${tail}` : ''}`;
      await this.logEvent(`crashed: ${reason}; its back ends were stopped`);
      await this.markCrashed(reason);
    }
  }

  private async markCrashed(reason: string): Promise<void> {
    ensurePrivateDir(this.paths.dir);
    await writeFileAtomic(this.paths.statusFile, JSON.stringify({ state: 'crashed', reason, at: new Date().toISOString() }), 0o600).catch(() => {});
    this.setState('crashed', reason);
  }

  private async readStatusFile(): Promise<{ state: VmState; reason?: string } | null> {
    try {
      return JSON.parse(await readFile(this.paths.statusFile, 'utf8')) as { state: VmState; reason?: string };
    } catch {
      return null;
    }
  }

  // ---- sidecars and the end of a run --------------------------------------------------------

  private get sidecars(): readonly Sidecar[] {
    return this.deps.sidecars ?? SIDECARS;
  }

  private sidecarContext(): SidecarContext {
    return { vmDir: this.stored.dir, paths: this.paths, log: (text) => this.logEvent(text) };
  }

  /**
   * Every path a QEMU run ends by comes here once QEMU is gone (clean stop, force off, crash or
   * SIGKILL, failed start, a re-attach finding QEMU dead), and a start before its sidecars run
   * (leftovers): the sidecars stop in reverse order, then QEMU's own files go.
   */
  private async endRun(): Promise<void> {
    this.hardware = null;
    this.balloonBytes = null;
    this.stopBackendWatch();
    this.backendNote = undefined;
    await unlink(this.hardwareFile).catch(() => {});
    await this.stopSidecars();
    for (const name of await readdir(this.paths.dir).catch(() => [] as string[])) {
      if (QEMU_SERVED_SOCKET_RE.test(name)) await unlink(join(this.paths.dir, name)).catch(() => {});
    }
    for (const f of [this.paths.qmpSocket, this.paths.serialSocket, this.paths.pidfile]) {
      await unlink(f).catch(() => {});
    }
    // An empty run dir is a leftover too (it stays when it still holds something, e.g. a crashed VM's status).
    await rmdir(this.paths.dir).catch(() => {});
  }

  /** Only once QEMU is gone: a device goes back to the host after the guest let go of it. */
  private stopSidecars(): Promise<void> {
    return stopSidecars(this.sidecars, this.sidecarContext());
  }

  /** The QMP client of a running (or paused) VM, for operations outside the lifecycle (screen, keys). */
  /** The accelerator the running QEMU uses. */
  get runningAccel(): 'kvm' | 'tcg' | undefined {
    return this.session?.accel;
  }

  /** vCPU device ids the guest released during this QEMU run (their slots may not take a vCPU again under TCG). */
  releasedVcpus(): Set<string> {
    const s = this.session;
    if (!s) return new Set();
    return (s.releasedVcpus ??= new Set());
  }

  /** What the statistics sampler reads of the running QEMU; null while none runs or its monitor does not answer. */
  statsTarget(): StatsTarget | null {
    const s = this.session;
    if (!s?.qmp || !this.hardware || !isActive(this.state) || this.state === 'starting' || this.state === 'stopping') return null;
    return {
      id: this.id, name: this.name, pid: s.pid, qmp: s.qmp, definition: this.hardware.definition,
      ...(this.hardware.definition.balloon && this.balloonBytes ? { balloonActualBytes: this.balloonBytes.actual } : {}),
    };
  }

  liveQmp(what: string): QmpClient {
    const qmp = this.session?.qmp;
    if (!qmp || !isActive(this.state) || this.state === 'starting' || this.state === 'stopping') {
      throw new HangarError('invalid-state', `VM "${this.name}" is not running (${this.state}): ${what} needs a running VM`, `start it with \`hangar start ${this.name}\``);
    }
    return qmp;
  }

  private live(): LiveSession {
    const s = this.session;
    if (s?.qmp) return s as LiveSession;
    if (s) {
      throw new HangarError('invalid-state', `VM "${this.name}" is not responding: its QEMU (pid ${s.pid}) does not answer its monitor`,
        `wait until it answers (a SIGSTOPped QEMU needs SIGCONT), or force it off with \`hangar destroy ${this.name}\``);
    }
    throw new HangarError('invalid-state', `VM "${this.name}" has no QEMU process to talk to`);
  }

  // ---- lifecycle actions --------------------------------------------------------------------

  /**
   * ACPI power button; forced off after timeoutSec. Resolves when the request is made (or, with
   * wait, when stopped). A QEMU that does not even take the button within the timeout (hung,
   * SIGSTOPped) is forced off then: the timeout is the promise, whatever hangs.
   */
  async shutdown(timeoutSec?: number, wait = false): Promise<void> {
    const timeout = timeoutSec ?? this.definition.shutdownTimeoutSec;
    await this.exclusive('shutdown', async () => {
      const s = this.live();
      // shutdownMode: the guest agent (guest-shutdown) when it answers, ACPI otherwise (auto);
      // agent only; ACPI only.
      const mode = this.definition.shutdownMode ?? 'auto';
      const agentSock = mode === 'acpi' ? null : this.agentSocket();
      if (mode === 'agent' && !agentSock) {
        throw new HangarError('invalid-state', `VM "${this.name}" shuts down through the guest agent, but it has no guest agent channel`,
          `add it (\`hangar device add ${this.name} channel ${AGENT_CHANNEL_NAME}\`, then restart), or set shutdownMode to auto or acpi`);
      }
      const before = this.state;
      s.intent = 'poweroff';
      this.setState('shutting-down');
      clearTimeout(s.timer);
      const forceOff = (why: string): void => {
        if (this.session === s && this.state === 'shutting-down') void this.forceOff(`forced off: ${why}`).catch(() => {});
      };
      // One timeout for the whole shutdown, whichever way the guest is asked: the timeout is the promise.
      type Step = 'agent' | 'agent-asked' | 'acpi' | 'acpi-pressed';
      let step: Step = agentSock ? 'agent' : 'acpi';
      const timedOut: Record<Step, string> = {
        'agent': `the guest agent did not take the shutdown within ${timeout} s`,
        'agent-asked': `the guest did not power off within ${timeout} s of the guest agent's shutdown`,
        'acpi': `QEMU did not take the ACPI power button within ${timeout} s (not responding)`,
        'acpi-pressed': `the guest did not power off within ${timeout} s of the ACPI power button`,
      };
      s.timer = setTimeout(() => forceOff(timedOut[step]), timeout * 1000);
      if (agentSock) {
        try {
          await agentShutdown(agentSock, 'powerdown');
          step = 'agent-asked';
          await this.logEvent('shutdown requested through the guest agent');
          return;
        } catch (e) {
          const why = (e as Error).message;
          if (mode === 'agent') {
            clearTimeout(s.timer);
            s.intent = null;
            if (this.session === s && this.state === 'shutting-down') this.setState(before);
            throw new HangarError('timeout', `VM "${this.name}" could not be shut down through the guest agent: ${why}`,
              `${agentInstallHint(this.definition.osId)}; or set shutdownMode to auto (ACPI when the agent does not answer)`);
          }
          step = 'acpi';
          await this.logEvent(`guest agent did not take the shutdown (${why}): ACPI power button instead`);
        }
      }
      try {
        await s.qmp.execute('system_powerdown', undefined, { timeoutMs: timeout * 1000 });
        step = 'acpi-pressed';
      } catch (e) {
        if (e instanceof HangarError && e.code === 'qmp-closed') return; // QEMU is exiting: onQmpClosed settles it
        clearTimeout(s.timer);
        forceOff(`QEMU did not take the ACPI power button within ${timeout} s (${(e as Error).message})`);
      }
    });
    if (wait) await this.waitFor((st) => !isActive(st), (timeout + 15) * 1000);
  }

  /** Force off: quit through QMP, SIGKILL if QEMU does not go. */
  destroy(): Promise<void> {
    return this.exclusive('destroy', () => this.forceOff());
  }

  /** Force off for an operation that already holds the VM's lock (a revert to a disk-only snapshot). */
  forceOffLocked(note: string): Promise<void> {
    return this.forceOff(note);
  }

  /** A stopped VM's problem the user should see (e.g. its autostart failed): its reason and a line in its event log. */
  async noteProblem(text: string): Promise<void> {
    await this.logEvent(text);
    if (!isActive(this.state)) this.setState(this.state, text);
  }

  /** A line in the VM's event log (logs/hangar.log). */
  log(text: string): Promise<void> {
    return this.logEvent(text);
  }

  /**
   * Quits a QEMU that answers; kills one that is stopped (SIGSTOP), silent or does not go (SIGKILL
   * works on a stopped process), then its back ends stop as on every other path. With no QEMU
   * (crashed, or one that went away unwatched), clears what is left: the VM is plainly stopped.
   */
  private async forceOff(note?: string): Promise<void> {
    const s = this.session;
    if (!s) {
      for (const pid of await findQemuByUuid(this.id, this.paths.dir)) {
        killQemu(pid, this.id, 'SIGKILL');
        await waitForExit(pid, 5000);
      }
      await rm(this.paths.statusFile, { force: true });
      await this.endRun();
      this.setState('stopped');
      return;
    }
    s.expectExit = true;
    if (note) s.stopNote = note;
    clearTimeout(s.timer);
    this.setState('stopping');
    const qmp = s.qmp;
    const answers = qmp !== null && !qmp.transport.notResponding && !isStoppedProcess(s.pid);
    const quit = answers ? await qmp.quit({ timeoutMs: 3000 }).then(() => true, () => false) : false;
    if (!(await waitForExit(s.pid, quit ? 5000 : 0))) {
      killQemu(s.pid, this.id, 'SIGKILL');
      await waitForExit(s.pid, 5000);
    }
    if (!s.qmp && this.session === s) {
      // No monitor connection whose close would settle it (onQmpClosed): settled here.
      this.session = null;
      this.consoleInstance?.detach();
      await this.endRun();
      await this.logEvent(`stopped (${note ?? 'forced off'}); its back ends were stopped`);
      this.setState('stopped', s.stopNote);
    }
    await this.waitFor((st) => !isActive(st), 10_000);
  }

  /**
   * Reboot through the guest agent when it answers (shutdownMode as for shutdown): the guest
   * restarts itself and QEMU keeps running, as when the guest reboots on its own. Otherwise ACPI:
   * power button, and when the guest has shut down, reset and continue.
   */
  reboot(): Promise<void> {
    return this.exclusive('reboot', async () => {
      const s = this.live();
      const mode = this.definition.shutdownMode ?? 'auto';
      const agentSock = mode === 'acpi' ? null : this.agentSocket();
      if (mode === 'agent' && !agentSock) {
        throw new HangarError('invalid-state', `VM "${this.name}" reboots through the guest agent, but it has no guest agent channel`,
          `add it (\`hangar device add ${this.name} channel ${AGENT_CHANNEL_NAME}\`, then restart), or set shutdownMode to auto or acpi`);
      }
      if (agentSock && this.state === 'running') {
        try {
          await agentShutdown(agentSock, 'reboot');
          await this.logEvent('reboot requested through the guest agent');
          return;
        } catch (e) {
          const why = (e as Error).message;
          if (mode === 'agent') {
            throw new HangarError('timeout', `VM "${this.name}" could not be rebooted through the guest agent: ${why}`,
              `${agentInstallHint(this.definition.osId)}; or set shutdownMode to auto (ACPI when the agent does not answer)`);
          }
          await this.logEvent(`guest agent did not take the reboot (${why}): ACPI power button instead`);
        }
      }
      s.intent = 'reboot';
      this.setState('rebooting');
      await s.qmp.systemPowerdown();
      clearTimeout(s.timer);
      s.timer = setTimeout(() => {
        // The guest ignored the power button: hard reset.
        if (this.session !== s || this.state !== 'rebooting') return;
        s.intent = null;
        void s.qmp.systemReset().then(() => s.qmp.cont()).then(() => this.setState('running')).catch(() => {});
      }, this.definition.shutdownTimeoutSec * 1000);
    });
  }

  reset(): Promise<void> {
    return this.exclusive('reset', async () => {
      const s = this.live();
      const wasPaused = this.state === 'paused';
      await s.qmp.systemReset();
      if (this.state === 'guest-error') {
        await s.qmp.cont();
        this.setState('running');
      } else if (!wasPaused) {
        this.setState('running');
      }
    });
  }

  pause(): Promise<void> {
    return this.exclusive('pause', async () => {
      await this.live().qmp.stop();
      this.setState('paused');
    });
  }

  resume(): Promise<void> {
    return this.exclusive('resume', async () => {
      const s = this.live();
      await s.qmp.cont();
      this.setState('running');
      // QEMU retries a request that failed (a disk still full) as soon as the guest runs, and pauses
      // it again at once: ask, and say why rather than report a resume that did not hold.
      await sleep(RESUME_SETTLE_MS);
      const st = await s.qmp.queryStatus().catch(() => null);
      if (!st || st.running || this.session !== s) {
        if (this.session === s) this.syncGuestTime('resume');
        return;
      }
      const ioReason = st.status === 'io-error' ? await ioErrorPauseReason(s.qmp, this.runningDefinition.disks).catch(() => undefined) : undefined;
      this.applyRunState(st.status);
      if (ioReason && this.state === 'paused') this.setState('paused', ioReason);
      const why = ioReason ?? this.reason ?? `QEMU reports it ${st.status}`;
      throw new HangarError('invalid-state', `VM "${this.name}" paused again right after resuming: ${why}`,
        st.status === 'io-error' ? 'fix the disk problem named above, then resume again' : 'see `hangar show` and the VM log');
    });
  }

  /** Releases sockets without touching QEMU (core shutting down; VMs keep running). */
  detach(): void {
    const s = this.session;
    if (s) {
      s.expectExit = true; // our own close is not a crash
      clearTimeout(s.timer);
      // Forgotten before the close: QMP's 'close' fires at once, and onQmpClosed must not end the run
      // (stop the back ends, or kill a QEMU that outlives its 5 s wait) of a VM that keeps running.
      this.session = null;
      s.qmp?.close();
    }
    this.stopBackendWatch();
    this.consoleInstance?.detach();
  }
}
