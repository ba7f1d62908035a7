// QEMU jobs (snapshot-save/-load/-delete, block-commit, block-stream) run to their end: polled
// with query-jobs (the job's own progress figures), completed when they wait for it (an active
// commit is "ready" until told to pivot), dismissed, and their error turned into ours.
import { HangarError } from '../../common/errors.ts';
import type { QmpClient } from '../qmp/client.ts';

interface JobInfo {
  id: string;
  type: string;
  status: string;
  'current-progress': number;
  'total-progress': number;
  error?: string;
}

const POLL_MS = 150;

export interface JobOptions {
  /** Called with QEMU's progress figures while the job runs (not once it concluded). */
  onProgress?: (done: number, total: number) => void;
  /** An active block-commit: complete (pivot) once it is ready. */
  completeWhenReady?: boolean;
  /** Runs once the job is ready, just before it is completed (e.g. the definition names the pivot's target first). */
  beforeComplete?: () => Promise<void>;
  /** Give up (and cancel the job) after this long. */
  timeoutMs?: number;
}

let counter = 0;

/** A job id unique in this core (QEMU refuses a second job with an id still in use). */
export function jobId(prefix: string): string {
  counter = (counter + 1) % 1_000_000;
  return `hangar-${prefix}-${process.pid}-${counter}`;
}

/**
 * Starts a job with command(args + job-id) and waits for it to conclude. Throws a qmp-error
 * with QEMU's own message when the job fails; what to do about it is the caller's `hint`.
 */
export async function runJob(qmp: QmpClient, command: string, args: Record<string, unknown>, what: string, hint: string, opts: JobOptions = {}): Promise<void> {
  const id = (args['job-id'] as string | undefined) ?? jobId(command);
  await qmp.execute(command, { ...args, 'job-id': id });
  const deadline = Date.now() + (opts.timeoutMs ?? 24 * 3600_000);
  let completed = false;
  for (;;) {
    const jobs = await qmp.execute<JobInfo[]>('query-jobs');
    const job = jobs.find((j) => j.id === id);
    if (!job) return; // auto-dismissed after success (block jobs by default)
    if (job.status !== 'concluded') opts.onProgress?.(job['current-progress'], job['total-progress']);
    if (job.status === 'concluded') {
      await qmp.execute('job-dismiss', { id }).catch(() => {});
      if (job.error) throw new HangarError('qmp-error', `${what} failed: ${job.error}`, hint);
      return;
    }
    if (job.status === 'ready' && opts.completeWhenReady && !completed) {
      await opts.beforeComplete?.();
      await qmp.execute('job-complete', { id });
      completed = true;
    }
    if (Date.now() > deadline) {
      await qmp.execute('job-cancel', { id }).catch(() => {});
      throw new HangarError('timeout', `${what} did not finish in time`, hint);
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
