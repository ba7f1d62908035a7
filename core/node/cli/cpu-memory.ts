// `hangar cpu NAME set N|add [N]|pin SPEC|off` and `hangar memory NAME resize SIZE`: CPU and memory
// changes, live on a running VM where QEMU and the guest allow, saved for the next start always.
import type { CoreApi, CpuMemoryChangeResult } from '../../common/api.ts';
import { HangarError } from '../../common/errors.ts';
import { parseSize } from '../store/qemu-img.ts';
import { applyCpuMemoryFlags } from './cpu-memory-args.ts';

type WithCore = <T>(fn: (api: CoreApi) => Promise<T>) => Promise<T>;

export const CPU_USAGE = `Usage:
  hangar cpu NAME set N              N vCPUs: added into free slots of a running VM (q35/pc; the guest
                                     onlines them), or taken out where the guest agrees; else at the next start
  hangar cpu NAME add [N]            N more vCPUs (default 1)
  hangar cpu NAME pin vcpu0=0-1,vcpu1=2,emulator=3 | off
                                     pin threads to host CPUs, at once on a running VM
  hangar memory NAME resize SIZE     e.g. 2G: grown live by a DIMM or virtio-mem (up to --maxmem), shrunk
                                     live by virtio-mem down to the boot memory, else at the next start`;

const vcpuWords = (n: number): string => `${n} vCPU${n === 1 ? '' : 's'}`;

function result(print: (s: string) => void, what: string, r: CpuMemoryChangeResult, json: boolean): number {
  if (json) { print(JSON.stringify(r, null, 2)); return 0; }
  print(`${what} ${r.applied === 'now' ? 'now' : 'from the next start'}${r.note ? `: ${r.note}` : ''}`);
  return 0;
}

export async function cpuCommand(args: string[], values: Record<string, unknown>, withCore: WithCore, print: (s: string) => void): Promise<number> {
  const [name, verb, arg, ...extra] = args;
  if (!name || !verb || values.help) { print(CPU_USAGE); return name ? 0 : 2; }
  if (extra.length) throw new HangarError('invalid-input', `unexpected "${extra.join(' ')}"`, 'see hangar cpu --help');
  const whole = (v: string | undefined, what: string): number => {
    if (v === undefined || !/^\d+$/.test(v) || Number(v) < 1) throw new HangarError('invalid-input', `${what} must be a whole number above 0, got "${v ?? ''}"`, 'see hangar cpu --help');
    return Number(v);
  };
  const json = values.json === true;
  if (verb === 'set') {
    const n = whole(arg, 'the vCPU count');
    return result(print, `VM "${name}" has ${vcpuWords(n)}`, await withCore((api) => api.setVcpus(name, n)), json);
  }
  if (verb === 'add') {
    const more = arg === undefined ? 1 : whole(arg, 'the number of vCPUs to add');
    const r = await withCore(async (api) => api.setVcpus(name, (await api.get(name)).definition!.cpu.vcpus + more));
    return result(print, `VM "${name}" has ${vcpuWords(r.info.definition!.cpu.vcpus)}`, r, json);
  }
  if (verb === 'pin') {
    if (!arg) throw new HangarError('invalid-input', 'pin needs a pinning or off', 'e.g. hangar cpu NAME pin vcpu0=0,vcpu1=1,emulator=0-1');
    const patch: Record<string, unknown> = {};
    applyCpuMemoryFlags({ pin: arg }, patch);
    const pinning = (patch.cpu as { pinning: { vcpus?: Array<string | null>; emulator?: string; iothreads?: string } | null }).pinning;
    return result(print, `VM "${name}" ${pinning ? 'pinned' : 'unpinned'}`, await withCore((api) => api.setCpuPinning(name, pinning)), json);
  }
  throw new HangarError('invalid-input', `unknown cpu command "${verb}"`, 'use hangar cpu NAME set|add|pin');
}

export async function memoryCommand(args: string[], values: Record<string, unknown>, withCore: WithCore, print: (s: string) => void): Promise<number> {
  const [name, verb, size, ...extra] = args;
  if (!name || !verb || values.help) { print(CPU_USAGE); return name ? 0 : 2; }
  if (verb !== 'resize' || !size || extra.length) throw new HangarError('invalid-input', 'expected hangar memory NAME resize SIZE', 'e.g. hangar memory web resize 2G');
  const bytes = /^\d+$/.test(size) ? Number(size) * 1048576 : parseSize(size);
  if (bytes % 1048576) throw new HangarError('invalid-input', `${size} is not a whole number of MiB`, 'write sizes like 1536M or 2G');
  const mib = bytes / 1048576;
  return result(print, `VM "${name}" has ${mib} MiB of memory`, await withCore((api) => api.resizeMemory(name, mib)), values.json === true);
}
