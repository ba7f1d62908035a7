// `hangar migrate NAME --to CONNECTION [--copy-storage] [--bandwidth MiB/s] [--downtime MS]`:
// live migration to another Hangar core, with progress on stderr; Ctrl+C cancels (the VM keeps
// running here).
import type { MigrationProgress, MigrationResult } from '../../common/api.ts';
import { cliConnect } from './connection.ts';

const MIB = 1024 * 1024;

function mib(n: number): string {
  return `${(n / MIB).toFixed(n < 10 * MIB ? 1 : 0)} MiB`;
}

/** One line of progress in words: phase, RAM sent of total, dirty rate, expected downtime, disks. */
export function progressLine(p: MigrationProgress): string {
  const parts: string[] = [p.phase];
  if (p.storage) parts.push(`disks ${mib(p.storage.doneBytes)}/${mib(p.storage.totalBytes)}${p.storage.ready ? ' (in step)' : ''}`);
  if (p.totalBytes) parts.push(`RAM ${mib(p.transferredBytes)} sent, ${mib(p.remainingBytes)} of ${mib(p.totalBytes)} left`);
  if (p.dirtyRateBytesPerSec) parts.push(`dirtied ${mib(p.dirtyRateBytesPerSec)}/s`);
  if (p.expectedDowntimeMs) parts.push(`expected downtime ${p.expectedDowntimeMs} ms`);
  if (p.downtimeMs !== undefined) parts.push(`downtime ${p.downtimeMs} ms`);
  if (p.message) parts.push(p.message);
  return parts.join(' | ');
}

export interface MigrateFlags {
  to: string;
  copyStorage: boolean;
  bandwidth?: number;
  downtime?: number;
  json: boolean;
}

export async function migrateCommand(name: string, f: MigrateFlags, print: (s: string) => void): Promise<MigrationResult> {
  const out = process.stderr;
  let last = '';
  let lastAt = 0;
  let drawn = false;
  const draw = (p: MigrationProgress): void => {
    if (p.vm !== name && p.vmId !== name) return;
    const line = progressLine(p);
    if (out.isTTY) {
      out.write(`\r${line.slice(0, (out.columns || 120) - 1)}\x1b[K`);
      drawn = true;
      return;
    }
    // Without a terminal: a line when the phase changes, else at most every 2 s.
    if (p.phase === last && Date.now() - lastAt < 2000) return;
    last = p.phase;
    lastAt = Date.now();
    out.write(`${line}\n`);
  };
  const conn = await cliConnect({ autostart: true, events: { migrationProgress: draw } });
  let cancelling = false;
  const onSigint = (): void => {
    if (cancelling) return;
    cancelling = true;
    if (drawn) out.write('\n');
    out.write('cancelling the migration ...\n');
    void conn.api.cancelMigration(name).catch(() => {});
  };
  process.on('SIGINT', onSigint);
  try {
    const r = await conn.api.migrate(name, {
      to: f.to,
      ...(f.copyStorage ? { copyStorage: true } : {}),
      ...(f.bandwidth !== undefined ? { maxBandwidthMiBs: f.bandwidth } : {}),
      ...(f.downtime !== undefined ? { downtimeLimitMs: f.downtime } : {}),
    });
    if (drawn) out.write('\n');
    drawn = false;
    if (f.json) print(JSON.stringify(r, null, 2));
    else {
      print(`VM "${r.name}" migrated to ${r.to} in ${(r.totalTimeMs / 1000).toFixed(1)} s (downtime ${r.downtimeMs} ms${r.guestPauseMs !== undefined ? `, guest paused ${r.guestPauseMs} ms` : ''}, ${mib(r.transferredBytes)} of RAM${r.storageBytes !== undefined ? `, ${mib(r.storageBytes)} of disks copied` : ''}); `
        + `it is ${r.destination.state} there. Its definition as it left is kept in ${r.definitionKeptAt}`);
    }
    return r;
  } finally {
    if (drawn) out.write('\n');
    process.off('SIGINT', onSigint);
    conn.close();
  }
}
