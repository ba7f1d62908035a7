// The Migrate dialog's logic (issue 18), pure (no DOM, no stores): which saved connections a VM
// can move to, what the request carries, the bandwidth field, and the progress and result in words.
import type { MigrateRequest, MigrationPhase, MigrationProgress, MigrationResult } from '../../../core/common/api.ts';
import { LOCAL_CONNECTION } from '../../../core/common/connections.ts';
import type { ConnectionInfo } from '../../../core/common/connections.ts';
import { formatBytes } from './format.ts';

export interface MigrationDestination {
  name: string;
  uri: string;
  label: string;
}

/**
 * The saved connections a VM of the current connection can migrate to: never the current one
 * (by name or URI), never `local` (a core elsewhere would take it for itself); Hangar cores to
 * Hangar cores (ssh://, hangar+unix://), libvirt domains to libvirt URIs.
 */
export function migrationDestinations(list: readonly ConnectionInfo[], current: string, driver: 'hangar' | 'libvirt' | undefined): MigrationDestination[] {
  const libvirt = driver === 'libvirt';
  return list
    .filter((c) => c.name !== current && c.uri !== current && c.name !== LOCAL_CONNECTION && c.kind !== 'local')
    .filter((c) => (libvirt ? c.kind === 'libvirt' : c.kind === 'hangar-ssh' || c.kind === 'hangar-unix'))
    .map((c) => ({ name: c.name, uri: c.uri, label: c.label }));
}

/** What kind of connection a VM of this driver migrates to, for the hint when there is none. */
export function destinationKindText(driver: 'hangar' | 'libvirt' | undefined): string {
  return driver === 'libvirt'
    ? 'another libvirt host (qemu+ssh://user@host/system)'
    : 'another Hangar core (ssh://user@host, or hangar+unix:///path/hangar.sock for a second core of this computer)';
}

/** The bandwidth field: empty = the core's default; else a positive number of MiB/s. */
export function parseBandwidth(text: string): { ok: true; value: number | undefined } | { ok: false; error: string } {
  const t = text.trim();
  if (t === '') return { ok: true, value: undefined };
  const n = Number(t);
  if (!Number.isFinite(n) || n <= 0) return { ok: false, error: 'Enter a number of MiB/s above 0, or leave it empty for no limit.' };
  if (n > 1024 * 1024) return { ok: false, error: 'At most 1048576 MiB/s.' };
  return { ok: true, value: n };
}

/**
 * The request: the destination by name when the window looks at this computer's core (it reads
 * the same saved connections), else by URI (a core elsewhere does not know this computer's names).
 */
export function migrateRequest(dest: MigrationDestination, current: string, copyStorage: boolean, bandwidthMiBs: number | undefined): MigrateRequest {
  const req: MigrateRequest = { to: current === LOCAL_CONNECTION ? dest.name : dest.uri };
  if (copyStorage) req.copyStorage = true;
  if (bandwidthMiBs !== undefined) req.maxBandwidthMiBs = bandwidthMiBs;
  return req;
}

export const phaseText: Record<MigrationPhase, string> = {
  preparing: 'Preparing the destination',
  storage: 'Copying the disks',
  memory: 'Copying the memory',
  completing: 'Switching over',
  done: 'Migrated',
  failed: 'Failed',
  cancelled: 'Cancelled',
};

/** Whether a progress report ends the migration. */
export function isFinalPhase(phase: MigrationPhase): boolean {
  return phase === 'done' || phase === 'failed' || phase === 'cancelled';
}

/** A progress report in numbers and words for the dialog. */
export interface ProgressView {
  phase: string;
  /** RAM sent, as a percentage (0..100, whole), or null while the total is not known. */
  ramPercent: number | null;
  ramText: string;
  dirtyRate: string;
  expectedDowntime: string;
  /** Disks copied (copy-storage), or null. */
  storagePercent: number | null;
  storageText: string | null;
  message: string | null;
}

function percent(done: number, total: number): number | null {
  if (!(total > 0)) return null;
  return Math.max(0, Math.min(100, Math.floor((done / total) * 100)));
}

export function progressView(p: MigrationProgress): ProgressView {
  const ramPercent = percent(p.transferredBytes, p.totalBytes);
  const s = p.storage;
  return {
    phase: phaseText[p.phase] ?? p.phase,
    ramPercent,
    ramText: p.totalBytes > 0 ? `${formatBytes(p.transferredBytes)} sent of ${formatBytes(p.totalBytes)} (${formatBytes(p.remainingBytes)} to go)` : 'Not started',
    dirtyRate: `${formatBytes(p.dirtyRateBytesPerSec)}/s`,
    expectedDowntime: p.expectedDowntimeMs > 0 ? `${p.expectedDowntimeMs} ms` : '—',
    storagePercent: s ? percent(s.doneBytes, s.totalBytes) ?? (s.ready ? 100 : 0) : null,
    storageText: s ? `${formatBytes(s.doneBytes)} of ${formatBytes(s.totalBytes)}${s.ready ? ', in step' : ''}` : null,
    message: p.message ?? null,
  };
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(ms / 60_000);
  return `${m} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** The done message: where the VM is, how long it took, how long the guest was paused. */
export function resultText(r: MigrationResult, destLabel: string): string {
  const storage = r.storageBytes !== undefined ? `, ${formatBytes(r.storageBytes)} of disks` : '';
  // The pause as the cores saw it (until the destination ran the guest) when known, and QEMU's own downtime figure.
  const pause = r.guestPauseMs !== undefined
    ? `${formatDuration(r.guestPauseMs)} (QEMU’s downtime ${formatDuration(r.downtimeMs)})`
    : formatDuration(r.downtimeMs);
  return `“${r.name}” now runs on ${destLabel}. Total time ${formatDuration(r.totalTimeMs)}; the guest was paused for ${pause} (${formatBytes(r.transferredBytes)} of memory sent${storage}).`;
}
