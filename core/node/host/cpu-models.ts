// QEMU's named CPU models and whether each is usable with an accelerator on this host, asked of
// QEMU itself (query-cpu-definitions on a `-machine none` instance: unavailable-features lists
// what the accelerator cannot give). One short-lived QEMU per accelerator, remembered for the
// life of the core.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HangarError } from '../../common/errors.ts';
import type { VmDefinition } from '../../common/model.ts';
import { QmpClient } from '../qmp/client.ts';
import { requireBinary } from './binaries.ts';

export interface CpuModelInfo {
  name: string;
  /** Features of the model this accelerator cannot provide: empty = usable. */
  unavailable: string[];
  aliasOf?: string;
  deprecated: boolean;
}

interface CpuDefinition { name: string; 'unavailable-features'?: string[]; 'alias-of'?: string; deprecated?: boolean }

const cache = new Map<string, Promise<CpuModelInfo[]>>();

async function askQemu(qemu: string, accel: 'kvm' | 'tcg'): Promise<CpuModelInfo[]> {
  const dir = await mkdtemp(join(tmpdir(), 'hangar-cpus-'));
  const socket = join(dir, 'qmp.sock');
  const child = spawn(qemu, ['-machine', 'none', '-accel', accel, '-nodefaults', '-no-user-config', '-display', 'none', '-S',
    '-qmp', `unix:${socket},server=on,wait=off`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    const deadline = Date.now() + 15_000;
    let qmp: QmpClient | undefined;
    while (!qmp) {
      try {
        qmp = await QmpClient.connect(socket);
      } catch (e) {
        if (Date.now() > deadline || child.exitCode !== null) {
          throw new HangarError('qemu-failed', `QEMU could not list its CPU models with ${accel}: ${stderr.trim() || (e as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    try {
      const defs = await qmp.execute<CpuDefinition[]>('query-cpu-definitions');
      return defs.map((d) => ({
        name: d.name, unavailable: d['unavailable-features'] ?? [], deprecated: d.deprecated === true, ...(d['alias-of'] ? { aliasOf: d['alias-of'] } : {}),
      })).sort((a, b) => a.name.localeCompare(b.name));
    } finally {
      await qmp.quit({ timeoutMs: 5_000 }).catch(() => {});
      qmp.close();
    }
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await exited;
    await rm(dir, { recursive: true, force: true });
  }
}

export function cpuModels(accel: 'kvm' | 'tcg', qemu = requireBinary('qemu-system-x86_64')): Promise<CpuModelInfo[]> {
  const key = `${qemu}\n${accel}`;
  let p = cache.get(key);
  if (!p) {
    p = askQemu(qemu, accel);
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

/** Refuses a CPU model QEMU does not know, or one whose features this accelerator cannot give (unless they are taken off). */
export async function checkCpuModel(def: VmDefinition, qemu: string, accel: 'kvm' | 'tcg'): Promise<void> {
  const model = def.cpu.model;
  if (model === 'max' || model === 'host') return;
  const models = await cpuModels(accel, qemu);
  const found = models.find((m) => m.name === model);
  if (!found) {
    throw new HangarError('invalid-input', `cannot start VM "${def.name}": QEMU has no CPU model "${model}"`,
      `pick one from hangar host cpu-models (e.g. max${accel === 'kvm' ? ' or host' : ''}), e.g. hangar edit ${def.name} --cpu max`);
  }
  const removed = new Set((def.cpu.features ?? []).filter((f) => f.startsWith('-')).map((f) => f.slice(1)));
  const missing = found.unavailable.filter((f) => !removed.has(f));
  if (missing.length) {
    throw new HangarError('invalid-input', `cannot start VM "${def.name}": ${accel === 'kvm' ? 'this host\'s CPU' : 'TCG'} cannot give CPU model ${model} these features: ${missing.join(', ')}`,
      `use --cpu max${accel === 'kvm' ? ' or --cpu host' : ''}, another model (hangar host cpu-models shows the usable ones), or take them off: --cpu ${model},${missing.map((f) => `-${f}`).join(',')}`);
  }
}
