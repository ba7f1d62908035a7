// The CPU and memory flags `hangar create` and `hangar edit` share, turned into definition
// fields: --cpu MODEL[,+flag,-flag] --topology sockets=..,dies=..,cores=..,threads=.. --maxcpus N
// --numa cpus=0-1,mem=512M[,host=0,policy=bind] (one per guest node) --hugepages 2M|1G|off
// --maxmem SIZE[,slots=N][,virtio-mem] --mem-merge on|off. Syntax only: the core checks what they add up to.
import { HangarError } from '../../common/errors.ts';
import { hugepageSizes, memoryHotplugMethods, numaPolicies } from '../../common/model-values.ts';
import { parseSize } from '../store/qemu-img.ts';

export interface CpuMemoryFlags {
  cpu?: string;
  vcpus?: string;
  topology?: string;
  maxcpus?: string;
  numa?: readonly string[];
  hugepages?: string;
  maxmem?: string;
  'mem-merge'?: string;
  pin?: string;
  'numa-distances'?: string;
}

/** parseArgs options of these flags. */
export const CPU_MEMORY_OPTIONS = {
  cpu: { type: 'string' }, vcpus: { type: 'string' }, topology: { type: 'string' }, maxcpus: { type: 'string' },
  numa: { type: 'string', multiple: true }, hugepages: { type: 'string' }, maxmem: { type: 'string' }, 'mem-merge': { type: 'string' },
  pin: { type: 'string' }, 'numa-distances': { type: 'string' },
} as const;

export const CPU_MEMORY_USAGE = `  --cpu MODEL[,+FLAG,-FLAG]          host (KVM only), max, or a QEMU model (hangar host cpu-models);
                                     flags add or remove CPU features, e.g. --cpu max,-svm,+x2apic
  --vcpus N  --maxcpus N             vCPUs at boot, and slots for adding more while it runs (q35)
  --pin vcpu0=0-1,vcpu1=2,emulator=3  host CPUs each vCPU thread, and QEMU's other threads, may run
                                     on (hangar host topology lists them); --pin off removes it
  --topology sockets=S,dies=D,cores=C,threads=T
                                     the guest's CPU layout; S×D×C×T = maxcpus (or vcpus)
  --memory MiB  --maxmem SIZE[,slots=N][,virtio-mem]
                                     boot memory, and how far it can grow by hotplug: by DIMMs (N slots,
                                     4), or by virtio-mem, which also shrinks live (a Linux 5.8+ guest
                                     with virtio_mem; sizes in 2 MiB blocks, or the huge page size)
  --numa cpus=0-1,mem=512M[,host=0][,policy=bind|preferred|interleave]
                                     one guest NUMA node per flag, in order; CPUs and memory must
                                     cover the VM's (host= binds its memory to host NUMA nodes)
  --numa-distances 10,21/21,10       the node distance table, one row per node (10 = local)
  --hugepages 2M|1G|off              back guest memory with huge pages (the host's pool must have them)
  --mem-merge on|off                 let KSM merge this guest's identical pages (default on)`;

function whole(flag: string, v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new HangarError('invalid-input', `${flag} must be a whole number above 0, got "${v}"`);
  return Number(v);
}

function mib(flag: string, v: string): number {
  // A bare number is MiB, as --memory takes it.
  const bytes = /^\d+$/.test(v) ? Number(v) * 1048576 : parseSize(v);
  if (bytes % 1048576) throw new HangarError('invalid-input', `${flag}: ${v} is not a whole number of MiB`, 'write sizes like 512M or 2G');
  return bytes / 1048576;
}

/** key=value pairs where a bare CPU number or range continues the previous value (cpus=0-1,4). */
function pairs(flag: string, text: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const example: Record<string, string> = { '--numa': 'cpus=0-1,mem=512M', '--topology': 'sockets=1,cores=2,threads=2', '--maxmem': '4G,slots=4', '--pin': 'vcpu0=0,emulator=1' };
  if (text === '') return out;
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0 && out.length && /^\d+(-\d+)?$/.test(part)) { out[out.length - 1]![1] += `,${part}`; continue; }
    if (eq <= 0) throw new HangarError('invalid-input', `${flag}: "${part}" is not key=value`, `e.g. ${flag} ${example[flag] ?? ''}`);
    out.push([part.slice(0, eq), part.slice(eq + 1)]);
  }
  return out;
}

/**
 * Applies the flags onto a definition being built (create) or an edit patch; a setting taken away
 * is null (the edit's merge removes it; dropNulls cleans a new definition). Returns whether any was given.
 */
export function applyCpuMemoryFlags(f: CpuMemoryFlags, def: Record<string, unknown>): boolean {
  let any = false;
  const cpu = { ...(def.cpu as Record<string, unknown> | undefined) };
  const memory = { ...(def.memory as Record<string, unknown> | undefined) };
  if (f.cpu !== undefined) {
    const [model, ...flags] = f.cpu.split(',');
    if (!model) throw new HangarError('invalid-input', '--cpu needs a model', 'e.g. --cpu max, --cpu host, --cpu Skylake-Client,-hle');
    for (const x of flags) {
      if (!/^[+-][a-z0-9][a-z0-9._-]*$/.test(x)) throw new HangarError('invalid-input', `--cpu: "${x}" is not a feature flag`, 'write +name to add a feature and -name to remove one, e.g. --cpu max,-svm,+x2apic');
    }
    cpu.model = model;
    if (flags.length) cpu.features = flags;
    else cpu.features = null;
  }
  if (f.vcpus !== undefined) cpu.vcpus = whole('--vcpus', f.vcpus);
  if (f.maxcpus !== undefined) cpu.maxVcpus = whole('--maxcpus', f.maxcpus);
  if (f.topology !== undefined) {
    for (const k of ['sockets', 'dies', 'cores', 'threads']) cpu[k] = null;
    for (const [k, v] of pairs('--topology', f.topology)) {
      if (!['sockets', 'dies', 'cores', 'threads'].includes(k)) throw new HangarError('invalid-input', `--topology: unknown key "${k}"`, 'use sockets=, dies=, cores= and threads=');
      cpu[k] = whole(`--topology ${k}`, v);
    }
  }
  if (f.pin !== undefined) {
    if (f.pin === 'off') cpu.pinning = null;
    else {
      const vcpus: Array<string | null> = [];
      const pinning: Record<string, unknown> = {};
      for (const [k, v] of pairs('--pin', f.pin)) {
        const m = /^vcpu(\d+)$/.exec(k);
        if (m) vcpus[Number(m[1])] = v;
        else if (k === 'emulator') pinning.emulator = v;
        else if (k === 'iothreads') pinning.iothreads = v;
        else throw new HangarError('invalid-input', `--pin: unknown key "${k}"`, 'use vcpuN=CPUS (N from 0), emulator=CPUS and iothreads=CPUS, e.g. --pin vcpu0=0,vcpu1=1,emulator=2,iothreads=3');
      }
      if (vcpus.length) pinning.vcpus = Array.from(vcpus, (x) => x ?? null);
      cpu.pinning = pinning;
    }
  }
  if (f.hugepages !== undefined) {
    if (f.hugepages === 'off') memory.hugepages = null;
    else if ((hugepageSizes as readonly string[]).includes(f.hugepages)) memory.hugepages = f.hugepages;
    else throw new HangarError('invalid-input', `--hugepages ${f.hugepages}: not a huge page size`, 'use 2M, 1G or off');
  }
  if (f['mem-merge'] !== undefined) {
    if (f['mem-merge'] !== 'on' && f['mem-merge'] !== 'off') throw new HangarError('invalid-input', `--mem-merge must be on or off, got "${f['mem-merge']}"`);
    memory.merge = f['mem-merge'] === 'on';
  }
  if (f.maxmem !== undefined) {
    if (f.maxmem === 'off') { memory.maxMiB = null; memory.slots = null; memory.hotplug = null; } else {
      const [size, ...rest] = f.maxmem.split(',');
      memory.maxMiB = mib('--maxmem', size!);
      memory.slots = null;
      // The method is named bare (DIMMs unless told): given again, the flag says it all anew.
      memory.hotplug = null;
      const methods = rest.filter((x) => (memoryHotplugMethods as readonly string[]).includes(x));
      if (methods.length > 1) throw new HangarError('invalid-input', `--maxmem: give one hotplug method, not ${methods.join(' and ')}`, 'e.g. --maxmem 4G,virtio-mem');
      if (methods[0] === 'virtio-mem') memory.hotplug = 'virtio-mem';
      for (const [k, v] of pairs('--maxmem', rest.filter((x) => !methods.includes(x)).join(','))) {
        if (k !== 'slots') throw new HangarError('invalid-input', `--maxmem: unknown key "${k}"`, 'e.g. --maxmem 4G,slots=4 (DIMMs) or --maxmem 4G,virtio-mem');
        memory.slots = whole('--maxmem slots', v);
      }
    }
  }
  if (f.numa?.length) {
    memory.numa = f.numa.map((spec, i) => {
      const node: Record<string, unknown> = {};
      for (const [k, v] of pairs('--numa', spec.replace(/^node\d+:/, ''))) {
        if (k === 'cpus') node.cpus = v;
        else if (k === 'mem') node.memoryMiB = mib(`--numa node ${i} mem`, v);
        else if (k === 'host') node.hostNodes = v;
        else if (k === 'policy') {
          if (!(numaPolicies as readonly string[]).includes(v)) throw new HangarError('invalid-input', `--numa node ${i}: policy ${v} is not one of ${numaPolicies.join(', ')}`);
          node.policy = v;
        } else throw new HangarError('invalid-input', `--numa node ${i}: unknown key "${k}"`, 'use cpus=, mem=, host= and policy=');
      }
      if (node.cpus === undefined || node.memoryMiB === undefined) throw new HangarError('invalid-input', `--numa node ${i} needs cpus= and mem=`, 'e.g. --numa cpus=0-1,mem=512M --numa cpus=2-3,mem=512M');
      return node;
    });
  }
  if (f['numa-distances'] !== undefined) {
    if (f['numa-distances'] === 'off') memory.numaDistances = null;
    else {
      memory.numaDistances = f['numa-distances'].split('/').map((row) => row.split(',').map((v) => {
        if (!/^\d{1,3}$/.test(v)) throw new HangarError('invalid-input', `--numa-distances: "${v}" is not a distance`, 'e.g. --numa-distances 10,21/21,10 (rows by "/", 10 = local)');
        return Number(v);
      }));
    }
  }
  const cpuGiven = f.cpu !== undefined || f.vcpus !== undefined || f.maxcpus !== undefined || f.topology !== undefined || f.pin !== undefined;
  const memGiven = f.hugepages !== undefined || f['mem-merge'] !== undefined || f.maxmem !== undefined || f.numa !== undefined || f['numa-distances'] !== undefined;
  if (cpuGiven) { def.cpu = cpu; any = true; }
  if (memGiven) { def.memory = memory; any = true; }
  return any;
}

/** A new definition's cpu and memory without the nulls that mark removed settings. */
export function dropNulls(def: Record<string, unknown>): void {
  for (const k of ['cpu', 'memory']) {
    const o = def[k] as Record<string, unknown> | undefined;
    if (o) def[k] = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null));
  }
}
