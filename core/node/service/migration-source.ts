// Source side of a live migration between Hangar cores (`hangar migrate NAME --to CONNECTION`).
// Under the VM's lock ('migrate': every other action gets busy):
//   1. refuse what cannot move (migration-blockers.ts), ask the destination core for clashes and
//      missing files;
//   2. prepareIncomingMigration there (the VM defined, QEMU waiting with -incoming defer);
//   3. with copy-storage: an NBD client node per writable disk on the tunnel, blockdev-mirror
//      (sync=full, write-blocking) into it, until every job is ready;
//   4. QMP migrate into the tunnel (migration-tunnel.ts), query-migrate every 500 ms ->
//      migrationProgress; with pause-before-switchover the mirrors are completed while the guest
//      is stopped, then the switch-over goes on;
//   5. completed: the destination resumes the guest (or keeps it paused, as it was here), this
//      QEMU quits, and this core forgets the VM, keeping its definition as migrated-away.json in
//      the VM's folder (with the disks: they are never deleted).
// Any failure or a cancel: migrate_cancel / the mirrors cancelled, the destination told to
// abort (its QEMU killed, its half-made VM removed), the guest running here as before.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { MigrateRequest, MigrationPhase, MigrationProgress, MigrationResult, VmInfo } from '../../common/api.ts';
import { HangarError } from '../../common/errors.ts';
import type { VmDefinition } from '../../common/model.ts';
import { resolveConnection } from '../connections/connection-store.ts';
import { openSshStream } from '../connections/ssh-stream.ts';
import { UEFI_VARS_FILE } from '../host/firmware.ts';
import { qemuInfo } from '../host/binaries.ts';
import type { QmpClient } from '../qmp/client.ts';
import { connectCore, connectSocket } from '../rpc/client.ts';
import type { CoreConnection, OpenCoreStream } from '../rpc/client.ts';
import { liveDisks } from '../snapshots/block-nodes.ts';
import { imageInfo } from '../store/qemu-img.ts';
import { liveHotplugBlocker } from './cpu-memory-ops.ts';
import { checkDestination, checkMigratableDevices } from './migration-blockers.ts';
import { TunnelListener } from './migration-tunnel.ts';
import { sleep } from './qemu-process.ts';
import type { VmInstance } from './vm-instance.ts';

const POLL_MS = 500;
const MIB = 1024 * 1024;

export interface MigrationSourceDeps {
  /** This core's words for itself (the destination's logs). */
  self: string;
  progress(p: MigrationProgress): void;
  /** After success: the VM leaves this core (its definition kept aside); returns where. */
  forget(vm: VmInstance, to: string): Promise<string>;
}

/** A running migration's handle: cancelMigration calls cancel. */
export interface MigrationHandle {
  cancel(): void;
}

interface MigrateInfo {
  status?: string;
  'error-desc'?: string;
  'expected-downtime'?: number;
  downtime?: number;
  'total-time'?: number;
  ram?: { transferred: number; total: number; remaining: number; 'dirty-pages-rate'?: number; 'page-size'?: number };
}

interface BlockJob { device: string; len: number; offset: number; ready: boolean; status: string }

/** How the destination core is reached: its RPC and a way to open more channels to it. */
export async function openDestination(to: string): Promise<{ conn: CoreConnection; open: OpenCoreStream; label: string }> {
  const { name, target } = resolveConnection(to);
  let open: OpenCoreStream;
  if (target.kind === 'hangar-ssh') open = (): Promise<Duplex> => openSshStream(target, { batch: true });
  else if (target.kind === 'hangar-unix') open = (): Promise<Duplex> => connectSocket(target.socket);
  else if (target.kind === 'local') {
    throw new HangarError('invalid-input', 'the destination is this core itself', 'name another Hangar core: a saved connection, ssh://host or hangar+unix:///path/hangar.sock');
  } else {
    throw new HangarError('unsupported', `cannot migrate to ${to}: it is a libvirt connection, and Hangar migrates only between Hangar cores`, 'use a Hangar connection (ssh:// or hangar+unix://)');
  }
  let conn: CoreConnection;
  try {
    conn = await connectCore({ autostart: false, open });
  } catch (e) {
    throw new HangarError('daemon-unavailable', `cannot reach the destination core ${name}: ${e instanceof Error ? e.message : String(e)}`,
      `check the connection (hangar connect test ${name})`);
  }
  return { conn, open, label: name };
}

export function migrateVm(vm: VmInstance, req: MigrateRequest, deps: MigrationSourceDeps, register: (h: MigrationHandle | null) => void): Promise<MigrationResult> {
  return vm.exclusive('migrate', async () => {
    const run = new SourceRun(vm, req, deps);
    register(run);
    try {
      return await run.go();
    } finally {
      register(null);
      vm.migration = undefined;
    }
  });
}

class SourceRun implements MigrationHandle {
  private cancelled = false;
  private migrateStarted = false;
  private readonly t0 = Date.now();
  private phase: MigrationPhase = 'preparing';
  private readonly tunnels: TunnelListener[] = [];
  private readonly mirrorNodes: string[] = [];
  private readonly jobs: string[] = [];
  private destClosed = false;
  private capabilitiesSet = false;
  /** The source completed but the destination's finish failed: who has the guest decides what happens here. */
  private finishFailed = false;
  private stoppedAt: number | undefined;
  private qmp!: QmpClient;

  constructor(private readonly vm: VmInstance, private readonly req: MigrateRequest, private readonly deps: MigrationSourceDeps) {}

  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    void this.vm.log('migration cancel requested');
    if (this.migrateStarted) void this.qmp.execute('migrate_cancel').catch(() => {});
    for (const j of this.jobs) void this.qmp.execute('block-job-cancel', { device: j, force: true }).catch(() => {});
  }

  private setPhase(phase: MigrationPhase): void {
    this.phase = phase;
    this.vm.migration = { direction: 'outgoing', peer: this.req.to, phase };
  }

  private report(p: Partial<MigrationProgress>): void {
    this.deps.progress({
      vmId: this.vm.id, vm: this.vm.name, to: this.req.to, phase: this.phase,
      transferredBytes: 0, totalBytes: 0, remainingBytes: 0, dirtyRateBytesPerSec: 0, expectedDowntimeMs: 0, ...p,
    });
  }

  private checkCancelled(): void {
    if (this.cancelled) throw new HangarError('cancelled', `the migration of VM "${this.vm.name}" was cancelled; it keeps running here`);
  }

  async go(): Promise<MigrationResult> {
    const { vm, req } = this;
    this.qmp = vm.liveQmp('a live migration');
    const def = vm.runningDefinition;
    const wasPaused = vm.state === 'paused';
    const copyStorage = req.copyStorage ?? false;
    // 1. what cannot move, before anything starts
    checkMigratableDevices(def, (await qemuInfo().catch(() => undefined))?.version);
    const hot = await liveHotplugBlocker(this.qmp);
    if (hot) throw new HangarError('invalid-state', `cannot migrate VM "${vm.name}": ${hot}`, 'restart the VM (its hardware then matches its definition), then migrate');
    if (vm.hasHotplugged) {
      throw new HangarError('invalid-state', `cannot migrate VM "${vm.name}": devices were hotplugged into this run, and the destination would place them elsewhere`,
        'restart the VM (hotplugged devices are then in its definition), then migrate');
    }
    if (vm.info().pending?.length) {
      throw new HangarError('invalid-state', `cannot migrate VM "${vm.name}": it has changes pending for its next boot`, 'restart it to apply them (or undo them), then migrate');
    }
    this.setPhase('preparing');
    this.report({ message: `connecting to ${req.to}` });
    const dest = await openDestination(req.to);
    const closedWatch = setInterval(() => { void dest.conn.api.daemonStatus().catch(() => { this.destClosed = true; }); }, 2000);
    let ticket: { vmId: string; token: string; exports: Array<{ diskId: string; name: string; file: string }> } | null = null;
    try {
      await checkDestination(dest.conn.api, def, copyStorage, dest.label);
      this.checkCancelled();
      // 2. the destination defines the VM and waits
      const live = await liveDisks(this.qmp);
      const disks = copyStorage ? await Promise.all(def.disks.filter((d) => !d.readOnly).map(async (d) => {
        const info = await imageInfo(live.get(d.id)?.chain[0] ?? d.file);
        return { id: d.id, virtualSizeBytes: info.virtualSize, format: (info.format === 'raw' ? 'raw' : 'qcow2') as 'qcow2' | 'raw' };
      })) : undefined;
      const uefiVarsBase64 = def.firmware === 'bios' ? undefined : await readFile(join(vm.stored.dir, UEFI_VARS_FILE)).then((b) => b.toString('base64'), () => undefined);
      this.report({ message: 'the destination prepares the VM' });
      ticket = await dest.conn.api.prepareIncomingMigration({
        definition: def as unknown as Record<string, unknown>, copyStorage, from: this.deps.self,
        ...(disks ? { disks } : {}), ...(uefiVarsBase64 !== undefined ? { uefiVarsBase64 } : {}),
      });
      await vm.log(`live migration to ${req.to} begins${copyStorage ? ' (copying the disks)' : ' (shared storage)'}`);
      const hello = { vm: vm.id, token: ticket.token };
      const ramTunnel = new TunnelListener(join(vm.paths.dir, 'migrate.sock'), dest.open, { ...hello, stream: 'ram' });
      this.tunnels.push(ramTunnel);
      await ramTunnel.listen();
      await this.qmp.execute('migrate-set-capabilities', { capabilities: [
        { capability: 'events', state: true },
        { capability: 'auto-converge', state: true },
        { capability: 'pause-before-switchover', state: true },
      ] });
      this.capabilitiesSet = true;
      await this.qmp.execute('migrate-set-parameters', {
        'max-bandwidth': Math.round((req.maxBandwidthMiBs ?? 1024) * MIB),
        'downtime-limit': req.downtimeLimitMs ?? 300,
      });
      this.checkCancelled();
      // 3. the disks first (copy-storage)
      let storageTotal = 0;
      if (copyStorage) storageTotal = await this.mirrorDisks(def, ticket.exports, dest.open, hello);
      this.checkCancelled();
      // 4. the RAM
      this.setPhase('memory');
      await this.qmp.execute('migrate', { uri: `unix:${ramTunnel.path}` }).catch((e: Error) => {
        if (!(e instanceof HangarError) || e.code !== 'qmp-error') throw e;
        throw new HangarError('unsupported', `QEMU cannot migrate VM "${vm.name}": ${e.message.replace(/^QMP migrate failed: /, '')}`,
          'remove or turn off the device QEMU names (the VM keeps running here), or shut the VM down and move it offline');
      });
      this.migrateStarted = true;
      if (this.cancelled) await this.qmp.execute('migrate_cancel').catch(() => {});
      const final = await this.follow(storageTotal);
      // 5. completed: the guest is the destination's now
      const downtimeMs = final.downtime ?? 0;
      this.setPhase('completing');
      let destination: VmInfo;
      try {
        destination = await dest.conn.api.finishIncomingMigration(vm.id, ticket.token, { resume: !wasPaused });
      } catch (e) {
        this.finishFailed = true;
        throw e;
      }
      ticket = null;
      const guestPauseMs = this.stoppedAt !== undefined && !wasPaused ? Date.now() - this.stoppedAt : 0;
      const transferred = final.ram?.transferred ?? 0;
      this.setPhase('done');
      this.report({ transferredBytes: transferred, totalBytes: final.ram?.total ?? 0, downtimeMs, message: `the VM runs on ${dest.label} (paused ${guestPauseMs} ms)` });
      await vm.log(`migrated to ${req.to} in ${Date.now() - this.t0} ms (downtime ${downtimeMs} ms by QEMU, guest paused ${guestPauseMs} ms, ${transferred} bytes of RAM sent); QEMU ends here`);
      this.closeTunnels();
      await vm.endAfterMigration(`migrated to ${req.to}`);
      const keptAt = await this.deps.forget(vm, req.to);
      return {
        id: vm.id, name: vm.name, to: req.to, destination, totalTimeMs: Date.now() - this.t0, downtimeMs, guestPauseMs,
        transferredBytes: transferred, ...(copyStorage ? { storageBytes: storageTotal } : {}), definitionKeptAt: keptAt,
      };
    } catch (e) {
      throw await this.fail(e, ticket, dest, wasPaused);
    } finally {
      clearInterval(closedWatch);
      this.closeTunnels();
      dest.conn.close();
    }
  }

  /** blockdev-mirror of every writable disk into the destination's NBD exports, until all are ready. */
  private async mirrorDisks(def: VmDefinition, exports: Array<{ diskId: string; name: string }>, open: OpenCoreStream, hello: { vm: string; token: string }): Promise<number> {
    this.setPhase('storage');
    const nbdTunnel = new TunnelListener(join(this.vm.paths.dir, 'mig-nbd.sock'), open, { ...hello, stream: 'nbd' });
    this.tunnels.push(nbdTunnel);
    await nbdTunnel.listen();
    const live = await liveDisks(this.qmp);
    for (const e of exports) {
      const node = `mig-nbd-${e.diskId}`;
      await this.qmp.execute('blockdev-add', { driver: 'nbd', 'node-name': node, server: { type: 'unix', path: nbdTunnel.path }, export: e.name });
      this.mirrorNodes.push(node);
      const job = `hangar-mig-${e.diskId}`;
      const source = live.get(e.diskId)?.node;
      if (!source) throw new HangarError('invalid-state', `disk "${e.diskId}" of VM "${def.name}" is not in the running QEMU's block graph`, 'restart the VM, then migrate');
      await this.qmp.execute('blockdev-mirror', { 'job-id': job, device: source, target: node, sync: 'full', 'copy-mode': 'write-blocking', 'auto-finalize': true, 'auto-dismiss': true });
      this.jobs.push(job);
    }
    for (;;) {
      this.checkCancelled();
      const jobs = (await this.qmp.execute<BlockJob[]>('query-block-jobs')).filter((j) => this.jobs.includes(j.device));
      const total = jobs.reduce((a, j) => a + j.len, 0);
      const done = jobs.reduce((a, j) => a + j.offset, 0);
      const ready = jobs.length === this.jobs.length && jobs.every((j) => j.ready);
      this.report({ storage: { doneBytes: done, totalBytes: total, ready }, message: ready ? 'disks in step; memory next' : 'copying the disks' });
      if (jobs.length < this.jobs.length) {
        throw new HangarError('qemu-failed', `a disk copy to the destination ended early${nbdTunnel.failure ? ` (${nbdTunnel.failure})` : ''}`, 'see the VM log (logs/qemu.log)');
      }
      if (ready) return total;
      await sleep(POLL_MS);
    }
  }

  /** Follows query-migrate to the end; completes the mirrors at the switch-over. */
  private async follow(storageTotal: number): Promise<MigrateInfo> {
    // A status change (MIGRATION event) wakes the loop at once: the guest is stopped at pre-switchover.
    let wake: (() => void) | null = null;
    const off = this.qmp.onEvent('MIGRATION', () => wake?.());
    // The guest stops for the switch-over: from here until the destination runs it is its pause.
    const offStop = this.qmp.onEvent('STOP', () => { this.stoppedAt ??= Date.now(); });
    try {
      return await this.followLoop(storageTotal, (ms) => new Promise<void>((r) => {
        const t = setTimeout(r, ms);
        wake = () => { clearTimeout(t); r(); };
      }));
    } finally {
      off();
      offStop();
    }
  }

  private async followLoop(storageTotal: number, pause: (ms: number) => Promise<void>): Promise<MigrateInfo> {
    for (;;) {
      const m = await this.qmp.execute<MigrateInfo>('query-migrate');
      const ram = m.ram;
      const pageSize = ram?.['page-size'] ?? 4096;
      const storage = storageTotal ? { storage: { doneBytes: storageTotal, totalBytes: storageTotal, ready: true } } : {};
      if (m.status === 'pre-switchover') {
        this.setPhase('completing');
        this.report({ transferredBytes: ram?.transferred ?? 0, totalBytes: ram?.total ?? 0, remainingBytes: ram?.remaining ?? 0, ...storage, message: 'switching over' });
        await this.completeMirrors();
        if (this.cancelled) {
          await this.qmp.execute('migrate_cancel').catch(() => {});
        } else {
          await this.qmp.execute('migrate-continue', { state: 'pre-switchover' });
        }
      } else if (m.status === 'completed') {
        return m;
      } else if (m.status === 'failed' || m.status === 'cancelled') {
        if (this.cancelled || m.status === 'cancelled') this.checkCancelled();
        throw new HangarError('qemu-failed', `QEMU's migration failed${m['error-desc'] ? `: ${m['error-desc']}` : ''}`);
      } else {
        if (m.status === 'device') this.setPhase('completing');
        this.report({
          transferredBytes: ram?.transferred ?? 0, totalBytes: ram?.total ?? 0, remainingBytes: ram?.remaining ?? 0,
          dirtyRateBytesPerSec: Math.round((ram?.['dirty-pages-rate'] ?? 0) * pageSize), expectedDowntimeMs: m['expected-downtime'] ?? 0,
          ...storage, message: m.status === 'setup' ? 'setting up' : 'copying memory',
        });
      }
      await pause(m.status === 'pre-switchover' ? 20 : POLL_MS);
    }
  }

  /** The guest is stopped (pre-switchover): each ready mirror completes (block-job-cancel = stop in step, no pivot). */
  private async completeMirrors(): Promise<void> {
    for (const j of this.jobs) await this.qmp.execute('block-job-cancel', { device: j }).catch(() => {});
    await this.waitJobsGone();
    await this.dropMirrorNodes();
  }

  private async waitJobsGone(): Promise<void> {
    for (let i = 0; i < 600 && this.jobs.length; i++) {
      const jobs = await this.qmp.execute<BlockJob[]>('query-block-jobs').catch(() => [] as BlockJob[]);
      if (!jobs.some((j) => this.jobs.includes(j.device))) break;
      await sleep(50);
    }
    this.jobs.length = 0;
  }

  private async dropMirrorNodes(): Promise<void> {
    for (const n of this.mirrorNodes.splice(0)) await this.qmp.execute('blockdev-del', { 'node-name': n }).catch(() => {});
  }

  private closeTunnels(): void {
    for (const t of this.tunnels.splice(0)) t.close();
  }

  /** Undoes a failed or cancelled migration: the guest runs on here as before; the destination removes its half-made VM. */
  private async fail(e: unknown, ticket: { vmId: string; token: string } | null, dest: { conn: CoreConnection; label: string }, wasPaused: boolean): Promise<unknown> {
    const cancelled = this.cancelled || (e instanceof HangarError && e.code === 'cancelled');
    const failure = this.tunnels.map((t) => t.failure).find(Boolean);
    if (this.migrateStarted) {
      await this.qmp.execute('migrate_cancel').catch(() => {});
      for (let i = 0; i < 100; i++) {
        const m = await this.qmp.execute<MigrateInfo>('query-migrate').catch(() => null);
        if (!m || ['completed', 'failed', 'cancelled', 'none'].includes(m.status ?? 'none')) break;
        await sleep(50);
      }
    }
    for (const j of this.jobs) await this.qmp.execute('block-job-cancel', { device: j, force: true }).catch(() => {});
    await this.waitJobsGone();
    await this.dropMirrorNodes();
    this.closeTunnels();
    // A later save (also a migration stream) must not stop at a switch-over nobody continues.
    if (this.capabilitiesSet) {
      await this.qmp.execute('migrate-set-capabilities', { capabilities: [
        { capability: 'pause-before-switchover', state: false }, { capability: 'auto-converge', state: false },
      ] }).catch(() => {});
    }
    // What happened on the far side, in words.
    let destNote = '';
    let destMayHaveGuest = false;
    if (ticket) {
      const destVm = await dest.conn.api.get(ticket.vmId).catch((x: unknown) => x instanceof HangarError && x.code === 'not-found' ? 'gone' : 'unreachable');
      if (destVm === 'unreachable' || this.destClosed) {
        destNote = `the destination core ${dest.label} went away (its connection closed)`;
        destMayHaveGuest = this.finishFailed;
      } else if (destVm === 'gone') destNote = `the destination's QEMU exited and ${dest.label} removed the half-made VM`;
      else if (destVm.state === 'stopped' || destVm.state === 'crashed') destNote = `the destination's QEMU exited (${destVm.reason ?? destVm.state})`;
      else destMayHaveGuest = this.finishFailed;
      if (destMayHaveGuest) {
        // The whole state went over and the destination may hold the guest: it must never run on both hosts.
        const why = e instanceof Error ? e.message : String(e);
        this.setPhase('failed');
        const message = `the migration of VM "${this.vm.name}" completed but ${dest.label} did not confirm taking over the guest (${[destNote, why].filter(Boolean).join('; ')}); it stays paused here so that it never runs on both hosts`;
        this.report({ message });
        await this.vm.log(message);
        return new HangarError('invalid-state', message,
          `check the VM on ${dest.label} (hangar --connect ${dest.label} show ${this.vm.name}); only if it is not there, resume it here (hangar resume ${this.vm.name})`);
      }
      await dest.conn.api.abortIncomingMigration(ticket.vmId, ticket.token, cancelled ? 'cancelled by the source' : `failed: ${e instanceof Error ? e.message : String(e)}`).catch(() => {});
    }
    // The guest runs here as it did before (QEMU resumes it after a failed migration; a cancel at the switch-over leaves it stopped).
    if (!wasPaused) {
      const st = await this.qmp.queryStatus().catch(() => null);
      if (st && !st.running) await this.qmp.cont().catch(() => {});
    }
    this.setPhase(cancelled ? 'cancelled' : 'failed');
    const base = e instanceof Error ? e.message : String(e);
    const message = cancelled ? `migration cancelled; VM "${this.vm.name}" keeps running here`
      : `migration of VM "${this.vm.name}" to ${dest.label} failed: ${[destNote, failure, base].filter(Boolean).join('; ')}; the VM keeps ${wasPaused ? 'paused' : 'running'} here`;
    this.report({ message });
    await this.vm.log(message);
    if (cancelled) return new HangarError('cancelled', message);
    if (!ticket) return e; // refused before anything started: the refusal as it is
    return new HangarError(e instanceof HangarError && e.code !== 'qmp-error' ? e.code : 'qemu-failed', message, 'see the VM log here and on the destination (hangar log, logs/hangar.log)');
  }
}
