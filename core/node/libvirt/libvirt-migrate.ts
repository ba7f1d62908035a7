// Live migration between libvirt hosts: `virsh migrate --live` (libvirt's own managed migration,
// the domain made persistent there and undefined here), with progress from `virsh domjobinfo`
// every 500 ms as Hangar's migrationProgress, and `virsh domjobabort` to cancel.
import { spawn } from 'node:child_process';
import type { MigrateRequest, MigrationProgress } from '../../common/api.ts';
import { HangarError } from '../../common/errors.ts';
import { classifyVirshError, runVirsh, virshEnv, VIRSH } from './virsh.ts';

/** virsh's arguments for one live migration (shared storage unless copyStorage). */
export function virshMigrateArgs(domain: string, destUri: string, req: Pick<MigrateRequest, 'copyStorage' | 'maxBandwidthMiBs'>): string[] {
  return [
    'migrate', '--live', '--persistent', '--undefinesource', '--auto-converge',
    ...(req.copyStorage ? ['--copy-storage-all'] : []),
    ...(req.maxBandwidthMiBs ? ['--bandwidth', String(req.maxBandwidthMiBs)] : []),
    '--domain', domain, '--desturi', destUri,
  ];
}

/** `virsh domjobinfo` ("Data processed:    12.345 MiB") as numbers; null when no job runs. */
export function parseDomjobinfo(text: string): Omit<MigrationProgress, 'vmId' | 'vm' | 'to' | 'phase'> | null {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) fields.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  const type = fields.get('job type');
  if (!type || type === 'None') return null;
  const units: Record<string, number> = { b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4 };
  const bytes = (k: string): number => {
    const m = /^([\d.]+)\s*([KMGT]?i?B)?/i.exec(fields.get(k) ?? '');
    return m ? Math.round(Number(m[1]) * (units[(m[2] ?? 'B').toLowerCase()] ?? 1)) : 0;
  };
  const num = (k: string): number => Number(/^[\d.]+/.exec(fields.get(k) ?? '')?.[0] ?? 0);
  const pageSize = num('page size') || 4096;
  const out: Omit<MigrationProgress, 'vmId' | 'vm' | 'to' | 'phase'> = {
    transferredBytes: bytes('data processed') || bytes('memory processed'),
    totalBytes: bytes('data total') || bytes('memory total'),
    remainingBytes: bytes('data remaining') || bytes('memory remaining'),
    dirtyRateBytesPerSec: num('dirty rate') * pageSize,
    expectedDowntimeMs: num('expected downtime'),
  };
  if (fields.has('total downtime')) out.downtimeMs = num('total downtime');
  return out;
}

export interface LibvirtMigration {
  done: Promise<{ totalTimeMs: number; downtimeMs: number; transferredBytes: number }>;
  cancel(): Promise<void>;
}

/** Runs the migration; progress is called about every 500 ms while it runs. */
export function runLibvirtMigration(srcUri: string, domain: string, destUri: string, req: MigrateRequest,
  progress: (p: Omit<MigrationProgress, 'vmId' | 'vm' | 'to'>) => void): LibvirtMigration {
  const started = Date.now();
  const args = virshMigrateArgs(domain, destUri, req);
  let last: Omit<MigrationProgress, 'vmId' | 'vm' | 'to' | 'phase'> | null = null;
  let cancelled = false;
  const done = (async () => {
    const child = spawn(VIRSH, ['-c', srcUri, ...args], { env: virshEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString('utf8')).slice(-8192); });
    // The downtime limit belongs to the job: set once the job shows up.
    let downtimeSet = !req.downtimeLimitMs;
    const poll = setInterval(() => {
      void runVirsh(srcUri, ['domjobinfo', '--domain', domain], { timeoutMs: 5000 }).then((t) => {
        const p = parseDomjobinfo(t);
        if (!p) return;
        last = p;
        progress({ phase: req.copyStorage && p.totalBytes === 0 ? 'storage' : 'memory', ...p });
        if (!downtimeSet) {
          downtimeSet = true;
          void runVirsh(srcUri, ['migrate-setmaxdowntime', '--domain', domain, '--downtime', String(req.downtimeLimitMs)]).catch(() => {});
        }
      }, () => {});
    }, 500);
    const code = await new Promise<number | string>((resolve) => {
      child.once('error', (e) => resolve((e as NodeJS.ErrnoException).code ?? 'spawn-error'));
      child.once('close', (c, sig) => resolve(c ?? sig ?? -1));
    });
    clearInterval(poll);
    if (code !== 0) {
      if (cancelled) throw new HangarError('cancelled', `the migration of "${domain}" was cancelled; it keeps running here`);
      throw classifyVirshError(srcUri, args, stderr, code);
    }
    // The finished job's figures stay on the destination (the source domain is undefined).
    const completed = await runVirsh(destUri, ['domjobinfo', '--completed', '--domain', domain]).then(parseDomjobinfo, () => null);
    const fin = completed ?? last;
    return {
      totalTimeMs: Date.now() - started,
      downtimeMs: fin?.downtimeMs ?? 0,
      transferredBytes: fin?.transferredBytes ?? 0,
    };
  })();
  return {
    done,
    cancel: async () => {
      cancelled = true;
      await runVirsh(srcUri, ['domjobabort', '--domain', domain]);
    },
  };
}
