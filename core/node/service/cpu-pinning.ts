// Pins a running QEMU's threads to host CPUs (sched_setaffinity through util-linux's taskset):
// each vCPU thread (thread ids from query-cpus-fast) to its own list, the disks' I/O threads
// (query-iothreads) to theirs, every other thread (the main loop and workers: "the emulator") to
// the emulator list. Threads QEMU starts later inherit the main thread's mask, which is why the
// emulator threads go first.
import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { promisify } from 'node:util';
import { parseCpuSet } from '../../common/cpu-memory.ts';
import { HangarError } from '../../common/errors.ts';
import type { CpuDefinition } from '../../common/model.ts';
import { requireBinary } from '../host/binaries.ts';
import type { QmpClient } from '../qmp/client.ts';

const run = promisify(execFile);

/** Thread ids of the vCPUs by index. */
export async function vcpuThreads(qmp: QmpClient): Promise<Map<number, number>> {
  const cpus = await qmp.execute<Array<{ 'cpu-index': number; 'thread-id': number }>>('query-cpus-fast');
  return new Map(cpus.map((c) => [c['cpu-index'], c['thread-id']]));
}

async function pin(tid: number, cpus: string): Promise<void> {
  try {
    await run(requireBinary('taskset', 'util-linux'), ['-p', '-c', cpus, String(tid)], { timeout: 10_000 });
  } catch (e) {
    const msg = ((e as { stderr?: string }).stderr || (e as Error).message).trim();
    // A thread that ended in between has nothing to pin.
    if (/No such process/i.test(msg)) return;
    throw new HangarError('permission', `cannot pin QEMU thread ${tid} to host CPUs ${cpus}: ${msg}`,
      'check that the CPUs are online and allowed to this process (its cgroup cpuset), or change the pinning');
  }
}

/** Thread ids of the I/O threads (disks with iothread). */
export async function ioThreads(qmp: QmpClient): Promise<number[]> {
  const list = await qmp.execute<Array<{ id: string; 'thread-id': number }>>('query-iothreads');
  return list.map((t) => t['thread-id']);
}

/** Applies the pinning (the parts that are set) to the QEMU process `pid`. */
export async function applyPinning(qmp: QmpClient, pid: number, pinning: CpuDefinition['pinning']): Promise<void> {
  if (!pinning) return;
  const vcpus = await vcpuThreads(qmp);
  const io = await ioThreads(qmp);
  if (pinning.emulator !== undefined) {
    const set = formatForTaskset(pinning.emulator);
    // I/O threads follow the emulator unless they have a list of their own.
    const apart = new Set([...vcpus.values(), ...(pinning.iothreads !== undefined ? io : [])]);
    const tids = (await readdir(`/proc/${pid}/task`)).map(Number).filter((t) => !apart.has(t));
    // The main thread first: threads it starts from now on inherit its mask.
    for (const tid of [pid, ...tids.filter((t) => t !== pid)]) await pin(tid, set);
  }
  if (pinning.iothreads !== undefined) {
    const set = formatForTaskset(pinning.iothreads);
    for (const tid of io) await pin(tid, set);
  }
  for (const [i, cpus] of (pinning.vcpus ?? []).entries()) {
    const tid = vcpus.get(i);
    if (cpus === null || tid === undefined) continue;
    await pin(tid, formatForTaskset(cpus));
  }
}

function formatForTaskset(list: string): string {
  if (!parseCpuSet(list)) throw new HangarError('invalid-input', `"${list}" is not a CPU list`, 'write CPU lists like 0-3,6');
  return list;
}
