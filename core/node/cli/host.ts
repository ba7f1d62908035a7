// `hangar host devices|usb|readiness`: the host's PCI and USB devices as device assignment sees
// them (IOMMU groups, reset, SR-IOV, what the host itself uses), and what passthrough still needs.
// Read straight from sysfs (HANGAR_SYSFS_ROOT / HANGAR_PROCFS_ROOT select fixture trees).
import { HangarError } from '../../common/errors.ts';
import { formatDoctorReport } from '../host/doctor.ts';
import { passthroughReadiness } from '../host/passthrough-readiness.ts';
import { listPciDevices } from '../host/pci-devices.ts';
import type { PciDevice } from '../host/pci-devices.ts';
import { listUsbDevices } from '../host/usb-devices.ts';
import { table } from './table.ts';
import type { CoreApi, HostCpuMemory } from '../../common/api.ts';
import { formatCpuSet } from '../../common/cpu-memory.ts';
import { hostCpuMemory } from '../host/host-memory.ts';
import type { HostChangeResult, PciViability } from '../../common/host-devices.ts';
import { viabilityMap } from '../host/passthrough-rules.ts';
import { listMdevInstances } from '../host/mdev-instances.ts';

type WithCore = <T>(fn: (api: CoreApi) => Promise<T>) => Promise<T>;

const noCore: WithCore = () => Promise.reject(new HangarError('internal', 'host changes need the core'));

function need(args: string[], n: number, usage: string): string[] {
  if (args.length !== n) throw new HangarError('invalid-input', `expected ${usage}`, `see hangar host --help`);
  return args;
}

function count(s: string, what: string): number {
  if (!/^\d+$/.test(s)) throw new HangarError('invalid-input', `${what} must be a whole number, not "${s}"`, 'e.g. 4');
  return Number(s);
}

/** Runs one privileged change; without permission, prints the commands to run as root instead. */
async function change(print: (s: string) => void, fn: () => Promise<HostChangeResult>, done: string): Promise<number> {
  try {
    const r = await fn();
    print(r.commands.length ? `${done} (${r.via}):\n${r.commands.map((c) => `  ${c}`).join('\n')}` : `${done}: nothing to change`);
    return 0;
  } catch (e) {
    const commands = e instanceof HangarError && e.code === 'permission' ? (e.details as { commands?: string[] } | undefined)?.commands : undefined;
    if (!commands) throw e;
    print(`${(e as HangarError).message}\nRun these as root:\n${commands.map((c) => `  ${c}`).join('\n')}`);
    return 1;
  }
}

export const HOST_USAGE = `Usage:
  hangar host devices [--json]     PCI devices: class, names, driver, IOMMU group (and the group's other
                                   members), reset, SR-IOV VFs, and what the host itself uses them for
  hangar host usb [--json]         USB devices: bus, port, vendor:product, names
  hangar host readiness [--json]   what PCI passthrough needs: IOMMU, interrupt remapping, vfio-pci, hugepages
  hangar host bind ADDR             bind a PCI device (and the rest of its IOMMU group) to vfio-pci
  hangar host release ADDR          give it (and its group) back to the host drivers
  hangar host sriov PF COUNT        set an SR-IOV physical function's number of VFs (0 removes them)
  hangar host vf PF VF [mac=MAC] [vlan=ID]
                                    set a VF's MAC address and VLAN (0 = none) on the PF's interface
  hangar host mdev list             mediated device instances (vGPU slices ...)
  hangar host mdev create PARENT TYPE [UUID] | remove UUID
  hangar host topology [--json]    CPUs by package, core and thread; NUMA nodes with their CPUs and memory
  hangar host memory [--json]      memory, huge page pools, KSM, and what running guests take
  hangar host ksm [status|on|off]  KSM page merging: whether it runs and what it saves; switch it
  hangar host hugepages 2M|1G N     size a huge page pool
  hangar host cpu-models [--accel kvm|tcg] [--json]
                                   QEMU's CPU models, usable or not here (with the missing features)
  Changes need root: Hangar runs them as root, by sudo -n or pkexec, or prints the exact commands.
  (HANGAR_SYSFS_ROOT and HANGAR_PROCFS_ROOT read another sysfs/procfs tree, e.g. a test fixture)
`;

const mib = (kib: number): string => `${Math.round(kib / 1024)} MiB`;

function ksmText(k: HostCpuMemory['ksm']): string {
  if (!k.available) return 'not available (this kernel has no /sys/kernel/mm/ksm)';
  return `${k.running ? 'running' : 'stopped'}; ${k.pagesSharing} pages share ${k.pagesShared} (saves ${Math.round(k.savedBytes / 1048576)} MiB), ${k.fullScans} full scans`;
}

function roots(env: NodeJS.ProcessEnv): { sysRoot: string; procRoot: string } {
  return { sysRoot: env.HANGAR_SYSFS_ROOT || '/sys', procRoot: env.HANGAR_PROCFS_ROOT || '/proc' };
}

/** "yes", or "no: " and the first reason (the JSON has them all). */
function assignableText(v: PciViability | undefined): string {
  if (!v) return '?';
  if (v.assignable) return v.group.some((g) => g.action === 'vfio' && g.address !== v.address) ? 'yes, with its group' : 'yes';
  return `no: ${v.blockers[0] ?? '?'}`;
}

function pciRow(d: PciDevice, v: PciViability | undefined): string[] {
  const names = [d.vendorName ?? d.vendorId ?? '?', d.deviceName ?? d.deviceId ?? '?'].join(' ');
  const group = d.iommuGroup === undefined ? '-' : `${d.iommuGroup}${d.iommuGroupPeers.length ? ` (+${d.iommuGroupPeers.join(', ')})` : ''}`;
  const sriov = d.sriov ? `PF ${d.sriov.numVfs ?? '?'}/${d.sriov.totalVfs ?? '?'} VFs` : d.physfn ? `VF of ${d.physfn}` : '';
  const reset = d.reset ? (d.reset.flr ? 'flr' : d.reset.methods.join('/') || (d.reset.supported ? 'yes' : 'no')) : '?';
  const notes = [...d.inUseByHost.map((r) => `in use: ${r}`), ...d.problems.map((p) => `unreadable: ${p}`)].join('; ');
  return [d.address, d.class?.subclassName ?? d.class?.className ?? d.class?.code ?? '?', names, d.driver ?? '-', group, reset, sriov, assignableText(v), notes];
}

export async function hostCommand(sub: string | undefined, values: Record<string, unknown>, print: (s: string) => void, env: NodeJS.ProcessEnv = process.env,
  args: string[] = [], withCore: WithCore = noCore): Promise<number> {
  if (!sub || values.help || sub === 'help') {
    print(HOST_USAGE);
    return sub ? 0 : 2;
  }
  const r = roots(env);
  if (sub === 'devices') {
    const devs = await listPciDevices(r);
    // Read straight from sysfs: which VMs name a device is the core's to say (hostDevices, the Host page).
    const viability = viabilityMap(devs);
    if (values.json) print(JSON.stringify(devs.map((d) => ({ ...d, viability: viability[d.address] })), null, 2));
    else {
      print(devs.length ? table([['ADDRESS', 'CLASS', 'DEVICE', 'DRIVER', 'IOMMU GROUP', 'RESET', 'SR-IOV', 'ASSIGNABLE', 'NOTES'], ...devs.map((d) => pciRow(d, viability[d.address]))])
        : `no PCI devices under ${r.sysRoot}/bus/pci/devices`);
    }
    return 0;
  }
  if (sub === 'usb') {
    const devs = (await listUsbDevices(r)).filter((d) => !d.isRootHub);
    if (values.json) print(JSON.stringify(devs, null, 2));
    else {
      print(devs.length ? table([['BUS', 'PORT', 'ID', 'DEVICE'], ...devs.map((d) => [String(d.busnum ?? '?'), d.portPath ?? '-', `${d.vendorId ?? '?'}:${d.productId ?? '?'}`,
        [d.vendorName ?? d.manufacturer, d.productName ?? d.product].filter(Boolean).join(' ') + (d.isHub ? ' (hub)' : '')])]) : `no USB devices under ${r.sysRoot}/bus/usb/devices`);
    }
    return 0;
  }
  if (sub === 'readiness') {
    const checks = await passthroughReadiness(r);
    print(values.json ? JSON.stringify(checks, null, 2) : formatDoctorReport({ checks }).trimEnd());
    return 0;
  }
  if (sub === 'bind') {
    const [addr] = need(args, 1, 'hangar host bind ADDR');
    return change(print, () => withCore((api) => api.bindVfio(addr!)), `${addr} bound to vfio-pci`);
  }
  if (sub === 'release') {
    const [addr] = need(args, 1, 'hangar host release ADDR');
    return change(print, () => withCore((api) => api.releaseVfio(addr!)), `${addr} given back to the host`);
  }
  if (sub === 'sriov') {
    const [pf, n] = need(args, 2, 'hangar host sriov PF COUNT');
    return change(print, () => withCore((api) => api.setSriovVfs(pf!, count(n!, 'the VF count'))), `${pf} set to ${n} VFs`);
  }
  if (sub === 'vf') {
    if (args.length < 3) throw new HangarError('invalid-input', 'expected hangar host vf PF VF [mac=MAC] [vlan=ID]', 'e.g. hangar host vf 0000:03:00.0 0 mac=52:54:00:12:34:56 vlan=10');
    const [pf, vf, ...kv] = args;
    const cfg: { mac?: string; vlan?: number } = {};
    for (const a of kv) {
      const m = /^(mac|vlan)=(.*)$/.exec(a);
      if (!m) throw new HangarError('invalid-input', `unknown VF setting "${a}"`, 'use mac=MAC and/or vlan=ID');
      if (m[1] === 'mac') cfg.mac = m[2]!.toLowerCase();
      else cfg.vlan = count(m[2]!, 'the VLAN id');
    }
    return change(print, () => withCore((api) => api.setVfConfig(pf!, count(vf!, 'the VF number'), cfg)), `VF ${vf} of ${pf} set`);
  }
  if (sub === 'mdev') {
    const [verb, ...rest] = args;
    if (verb === 'list' || verb === undefined) {
      const ms = await listMdevInstances(r.sysRoot);
      if (values.json) print(JSON.stringify(ms, null, 2));
      else print(ms.length ? table([['UUID', 'PARENT', 'TYPE'], ...ms.map((m) => [m.uuid, m.parent, m.type ?? '?'])]) : 'no mdev instances');
      return 0;
    }
    if (verb === 'create') {
      const [parent, type, wanted] = need(rest, rest.length === 3 ? 3 : 2, 'hangar host mdev create PARENT TYPE [UUID]');
      let uuid = '';
      const code = await change(print, async () => {
        const res = await withCore((api) => (wanted ? api.createMdev(parent!, type!, wanted) : api.createMdev(parent!, type!)));
        uuid = res.uuid ?? '';
        return res;
      }, `mdev of type ${type} created on ${parent}`);
      if (uuid) print(`uuid: ${uuid}`);
      return code;
    }
    if (verb === 'remove') {
      const [uuid] = need(rest, 1, 'hangar host mdev remove UUID');
      return change(print, () => withCore((api) => api.removeMdev(uuid!)), `mdev ${uuid} removed`);
    }
    throw new HangarError('invalid-input', `unknown subcommand "host mdev ${verb}"`, 'use hangar host mdev list|create|remove');
  }
  if (sub === 'topology') {
    const t = await hostCpuMemory(r);
    if (values.json) { print(JSON.stringify({ cpus: t.cpus, nodes: t.nodes }, null, 2)); return 0; }
    print(table([['CPU', 'PACKAGE', 'DIE', 'CORE', 'THREADS OF THE CORE', 'NUMA NODE'], ...t.cpus.map((c) => [String(c.cpu), String(c.package), String(c.die), String(c.core), formatCpuSet(c.siblings), String(c.node)])]));
    print('');
    print(table([['NODE', 'CPUS', 'MEMORY', 'FREE'], ...t.nodes.map((n) => [String(n.id), formatCpuSet(n.cpus), mib(n.memTotalKiB), mib(n.memFreeKiB)])]));
    return 0;
  }
  if (sub === 'memory') {
    const m = await withCore((api) => api.hostCpuMemory());
    if (values.json) { print(JSON.stringify(m, null, 2)); return 0; }
    print(`Memory:     ${mib(m.memTotalKiB)}, ${mib(m.memAvailableKiB)} available`);
    const c = m.committed;
    if (c) print(`Guests:     ${c.totalMiB} MiB committed to ${c.vms.length} running VM${c.vms.length === 1 ? '' : 's'} (${(c.totalMiB * 1024 / Math.max(1, m.memTotalKiB) * 100).toFixed(0)}% of host memory)${c.vms.length ? `: ${c.vms.map((v) => `${v.name} ${v.memoryMiB} MiB${v.hugepages ? ` on ${v.hugepages} pages` : ''}${v.merge ? '' : ', no KSM'}${v.balloon ? `, balloon ${v.balloon.actualMiB} of ${v.balloon.targetMiB} MiB target${v.balloon.freePageReporting ? ', free page reporting' : ''}` : ''}`).join('; ')}` : ''}`);
    for (const p of m.hugepages) print(`Huge pages: ${p.size}: ${p.total} in the pool, ${p.free} free, ${p.reserved} reserved${p.surplus ? `, ${p.surplus} surplus` : ''}`);
    print(`KSM:        ${ksmText(m.ksm)}`);
    return 0;
  }
  if (sub === 'ksm') {
    const [verb = 'status'] = args;
    if (verb === 'status') {
      const m = await hostCpuMemory(r);
      print(values.json ? JSON.stringify(m.ksm, null, 2) : ksmText(m.ksm));
      return 0;
    }
    if (verb !== 'on' && verb !== 'off') throw new HangarError('invalid-input', `unknown KSM command "${verb}"`, 'use hangar host ksm status|on|off');
    return change(print, () => withCore((api) => api.setKsm(verb === 'on')), `KSM ${verb}`);
  }
  if (sub === 'hugepages') {
    const [size, n] = need(args, 2, 'hangar host hugepages 2M|1G COUNT');
    if (size !== '2M' && size !== '1G') throw new HangarError('invalid-input', `"${size}" is not a huge page size`, 'use 2M or 1G');
    const wanted = count(n!, 'the number of pages');
    const code = await change(print, () => withCore((api) => api.setHugepages(size, wanted)), `${size} huge page pool set to ${wanted}`);
    const pool = (await hostCpuMemory(r)).hugepages.find((p) => p.size === size);
    if (code === 0 && pool && pool.total < wanted) print(`note: the kernel gave ${pool.total} of the ${wanted} pages (memory too fragmented); try again after freeing memory, or reserve them at boot (hugepages=${wanted})`);
    return code;
  }
  if (sub === 'cpu-models') {
    const accel = values.accel as string | undefined;
    if (accel !== undefined && accel !== 'kvm' && accel !== 'tcg') throw new HangarError('invalid-input', `--accel ${accel}: use kvm or tcg`);
    const list = await withCore((api) => (accel ? api.cpuModels(accel) : api.cpuModels()));
    if (values.json) { print(JSON.stringify(list, null, 2)); return 0; }
    print(`CPU models with ${list.accel} (host and max are always there${list.accel === 'tcg' ? '; host needs KVM' : ''}):`);
    print(table([['MODEL', 'USABLE', 'MISSING FEATURES'], ...list.models.map((m) => [m.name + (m.deprecated ? ' (deprecated)' : ''), m.unavailable.length ? 'no' : 'yes', m.unavailable.join(' ')])]));
    return 0;
  }
  throw new HangarError('invalid-input', `unknown subcommand "host ${sub}"`, 'use hangar host devices|usb|readiness|bind|release|sriov|vf|mdev|topology|memory|ksm|hugepages|cpu-models');
}
