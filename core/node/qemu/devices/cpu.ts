// The guest's CPUs: the model with its feature flags (-cpu max,avx2=on,svm=off) and the vCPU
// slots with their topology (-smp cpus=2,maxcpus=4,sockets=1,cores=2,threads=2).
import type { VmDefinition } from '../../../common/model.ts';
import type { PropObject, QemuOption } from '../qemu-option.ts';

export function cpuOptions(def: VmDefinition): QemuOption[] {
  const { model, features, vcpus, maxVcpus, sockets, dies, cores, threads } = def.cpu;
  const flags: PropObject = {};
  for (const f of features ?? []) flags[f.slice(1)] = f.startsWith('+');
  return [
    { opt: '-cpu', implied: model, keyval: flags },
    // Only what was given: QEMU fills in the rest the same way topologyOf() does.
    { opt: '-smp', keyval: { cpus: vcpus, maxcpus: maxVcpus, sockets, dies, cores, threads } },
  ];
}
