// An in-memory Hangar core for the renderer's unit tests: a CoreTransport whose RPC links speak
// real birpc to a fake CoreApi (errors cross as payloads, as from the real core), which can emit
// events, go down and come back. Console and display channels are scripted by the tests. Not bundled.
import { createBirpc } from 'birpc';
import type { AgentInfo } from '../../../core/common/guest-agent.ts';
import type { HostSummary, StatsSample } from '../../../core/common/stats.ts';
import type { CoreApi, CoreEvents, CpuModelList, CreateVmRequest, DeviceChange, DeviceKindName, DoctorCheckInfo, HostInfo, PathInspection, VmInfo, VmSummary } from '../../../core/common/api.ts';
import { parseDefinition } from '../../../core/common/definition.ts';
import { findDevice, pendingChanges, withDeviceAdded, withDeviceEdited, withDeviceRemoved } from '../../../core/common/device-edit.ts';
import { vmDefinitionSchema } from '../../../core/common/model.ts';
import type { VmDefinition } from '../../../core/common/model.ts';
import type { HostAssignment, HostChangeResult, HostDeviceReport, PciDevice } from '../../../core/common/host-devices.ts';
import { displayCapabilities } from '../../../core/common/display.ts';
import { GENERIC_OSES } from '../../../core/common/os-types.ts';
import { HangarError } from '../../../core/common/errors.ts';
import { assertCan } from '../../../core/common/state.ts';
import type { VmState } from '../../../core/common/state.ts';
import type { ConsoleLink, CoreTransport, RpcLink } from '../../../core/common/transport.ts';
import { checkConnectionName, connectionLabel, parseConnectionUri } from '../../../core/common/connections.ts';
import type { ConnectionInfo, DriverCapabilities } from '../../../core/common/connections.ts';
import type { Timers } from '../stores/connection.ts';
import { sampleHostReport, sampleVf, withViability } from './host-report.ts';

/** One end of an in-memory channel; messages arrive asynchronously, as over a real socket. */
export class MemoryEnd<T> {
  peer!: MemoryEnd<T>;
  readonly sent: T[] = [];
  private listeners: ((m: T) => void)[] = [];
  private closeListeners: ((r: string) => void)[] = [];
  private early: T[] = [];
  closed = false;

  send(m: T): void {
    if (this.closed) return;
    this.sent.push(m);
    const peer = this.peer;
    queueMicrotask(() => peer.receive(m));
  }

  private receive(m: T): void {
    if (this.closed) return;
    if (!this.listeners.length) this.early.push(m);
    for (const cb of this.listeners) cb(m);
  }

  onMessage(cb: (m: T) => void): void {
    this.listeners.push(cb);
    if (this.listeners.length === 1) for (const m of this.early.splice(0)) cb(m);
  }

  onClose(cb: (r: string) => void): void {
    if (this.closed) queueMicrotask(() => cb('closed'));
    else this.closeListeners.push(cb);
  }

  /** Closes both ends (after already-sent messages were delivered). */
  close(reason = 'closed'): void {
    if (this.closed) return;
    queueMicrotask(() => {
      this.fire(reason);
      this.peer.fire(reason);
    });
  }

  private fire(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    for (const cb of this.closeListeners.splice(0)) cb(reason);
  }
}

export function memoryPair<T>(): [MemoryEnd<T>, MemoryEnd<T>] {
  const a = new MemoryEnd<T>();
  const b = new MemoryEnd<T>();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

function toPayload(e: unknown): unknown {
  if (e instanceof HangarError) return e.toPayload();
  return { code: 'internal', message: e instanceof Error ? e.message : String(e) };
}

export function fakeVm(name: string, state: VmState = 'stopped', extra: Partial<VmInfo> = {}): VmInfo {
  return {
    id: `id-${name}`,
    name,
    state,
    vcpus: 1,
    memoryMiB: 512,
    dir: `/vms/${name}`,
    ...extra,
  };
}

/** A minimal valid definition (every device list empty) for a fake VM. */
export function fakeDefinition(name: string, extra: Record<string, unknown> = {}): VmDefinition {
  return vmDefinitionSchema.parse({ version: 1, id: '00000000-0000-4000-8000-000000000001', name, ...extra });
}

const raw = (d: VmDefinition): Record<string, unknown> => d as unknown as Record<string, unknown>;

/** What the contract says QEMU can hotplug into a running VM (the rest applies at next boot). */
function hotpluggable(kind: DeviceKindName, d: Record<string, unknown>): boolean {
  if (kind === 'disk') return d.bus === 'virtio-blk' || d.bus === 'scsi';
  if (kind === 'nic') return ['user', 'isolated', 'bridge', 'tap'].includes(String((d.network as { type?: string } | undefined)?.type));
  if (kind === 'input') return d.bus === 'usb';
  return false;
}

export class FakeCore implements CoreTransport {
  readonly kind = 'browser' as const;
  readonly vms = new Map<string, VmInfo>();
  /** Every API call, as "method name". */
  readonly calls: string[] = [];
  /** Errors to throw from the next call of a method. */
  readonly failNext = new Map<string, HangarError>();
  /** While true, openRpc fails (the core is down). */
  down = false;
  rpcOpens = 0;
  /** Resolvers for calls held by hold(method). */
  private held = new Map<string, (() => void)[]>();
  private holding = new Set<string>();
  private sessions: { end: MemoryEnd<string>; rpc: ReturnType<typeof createBirpc<CoreEvents, CoreApi>> }[] = [];
  /** What hostInfo answers (the wizard's view of the host). */
  host: HostInfo = {
    cpus: 4, memoryBytes: 8 * 1024 ** 3, dataDir: '/data', freeBytes: 50 * 1024 ** 3, homeDir: '/home/u',
    firmware: { bios: { available: true }, uefi: { available: true }, 'uefi-secure': { available: false, reason: 'no secure firmware', fix: 'apt-get install ovmf' } },
    tpm: { available: true },
    network: { user: { available: true }, passt: { available: true }, bridge: { available: false, reason: 'no bridge', fix: 'make one', bridges: [] } },
    pxe: { available: true }, cloudInit: { available: true },
  };
  /** What cpuModels answers: a TCG host (VMs run under TCG here, like our CI machines). */
  cpuModelList: CpuModelList = {
    accel: 'tcg',
    models: [
      { name: 'qemu64', unavailable: [], deprecated: false },
      { name: 'Nehalem', unavailable: [], deprecated: false },
      { name: 'Skylake-Client', unavailable: ['avx2', 'hle'], deprecated: false },
    ],
  };
  /** What doctor answers: this host lacks /dev/vhost-net and /dev/vhost-vsock, like our CI machines. */
  checks: DoctorCheckInfo[] = [
    { id: 'vhost-net', label: '/dev/vhost-net', status: 'missing', detail: '/dev/vhost-net missing: virtio-net cannot use the in-kernel back end', fix: 'load the vhost_net module (modprobe vhost_net)' },
    { id: 'vhost-vsock', label: '/dev/vhost-vsock', status: 'missing', detail: '/dev/vhost-vsock missing', fix: 'load the vhost_vsock module (modprobe vhost_vsock)' },
    { id: 'tun', label: '/dev/net/tun', status: 'ok', detail: 'present' },
    { id: 'passt', label: 'passt', status: 'ok', detail: '/usr/bin/passt' },
    { id: 'qemu-storage-daemon', label: 'qemu-storage-daemon', status: 'ok', detail: '/usr/bin/qemu-storage-daemon' },
    { id: 'virtiofsd', label: 'virtiofsd', status: 'missing', detail: 'virtiofsd not found', fix: 'install virtiofsd' },
    { id: 'iommu', label: 'IOMMU groups', status: 'missing', detail: 'no IOMMU groups', fix: 'enable the IOMMU' },
  ];
  /** What hostDevices answers (its assignments joined by those of the fake VMs' definitions); the host changes below edit it. */
  hostReport: HostDeviceReport = sampleHostReport();
  /** Every privileged host change made, as "bindVfio 0000:01:00.0". */
  readonly hostLog: string[] = [];
  /** Host drivers of devices bound to vfio-pci here, to give them back. */
  private readonly hostDrivers = new Map<string, string | undefined>();
  private mdevSeq = 0;
  /** Every device change the fake core made, as "add disk disk1 -> saved". */
  readonly deviceLog: string[] = [];
  /** Image files deleted by removeDevice(..., { deleteFile }). */
  readonly deletedFiles: string[] = [];
  /** inspectPath answers by path (an Error is thrown); a missing path is "does not exist". */
  readonly paths = new Map<string, PathInspection | HangarError>();
  /** inspectPath of these paths waits for the promise (answers arriving out of order). */
  readonly pathGates = new Map<string, Promise<void>>();
  /** What setBalloon answers as the guest's memory, one per call (then the target itself). */
  readonly balloonActuals: number[] = [];
  /** Every create request received. */
  readonly creates: CreateVmRequest[] = [];
  private readonly cancels = new Map<string, () => void>();
  /** While true, creates with a requestId wait for releaseCreates() or cancelCreate. */
  holdCreates = false;
  private createWaiters: (() => void)[] = [];

  releaseCreates(): void {
    this.holdCreates = false;
    for (const w of this.createWaiters.splice(0)) w();
  }
  /** What agentInfo answers per VM name (default: no agent answering). */
  readonly agentInfos = new Map<string, AgentInfo>();
  /** What screenshot answers (a 1x1 PNG by default). */
  screen = { pngBase64: 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=', width: 1, height: 1 };
  /** Screenshots answered. */
  screenshots = 0;
  /** Key combinations sent, as "vm ctrl-alt-delete". */
  readonly keysSent: string[] = [];
  /** Display channels the UI opened (the test plays the core's side). */
  readonly displays: { vm: string; core: MemoryEnd<string | Uint8Array>; connection?: string }[] = [];
  /** While set, openDisplay fails with it. */
  displayFails: Error | null = null;
  /** Console channels the UI opened (the test plays the core's side). */
  readonly consoles: { vm: string; replay: boolean; core: MemoryEnd<string | Uint8Array>; connection?: string }[] = [];

  /** What capabilities answers (a Hangar core that can do everything, by default). */
  caps: DriverCapabilities = { driver: 'hangar', connection: 'local', label: 'Hangar on this computer', unsupported: {} };
  /** The saved connections connections() answers (addConnection/removeConnection edit it; URIs checked as the core does). */
  savedConnections: ConnectionInfo[] = [{ name: 'local', uri: 'local', label: 'Hangar on this computer', kind: 'local' }];
  /** The connection each openRpc named (undefined for none), in order. */
  readonly rpcConnections: (string | undefined)[] = [];

  /** What statsLatest answers. */
  samples: StatsSample[] = [];
  /** What hostSummary answers. */
  hostSummary: HostSummary = {
    t: 1000, cpus: 4, cpuPercent: 12.5, memTotalBytes: 8 * 2 ** 30, memAvailableBytes: 6 * 2 ** 30,
    committedBytes: 2 ** 30, guestRssBytes: 2 ** 29, runningVms: 1, definedVms: 2,
  };

  add(vm: VmInfo): void {
    this.vms.set(vm.name, vm);
  }

  /** Makes calls of a method wait until release(method). */
  hold(method: string): void {
    this.holding.add(method);
  }

  release(method: string): void {
    this.holding.delete(method);
    for (const r of this.held.get(method)?.splice(0) ?? []) r();
  }

  private async gate(method: string): Promise<void> {
    if (!this.holding.has(method)) return;
    await new Promise<void>((r) => {
      const list = this.held.get(method) ?? [];
      list.push(r);
      this.held.set(method, list);
    });
  }

  private find(ref: string): VmInfo {
    const vm = this.vms.get(ref) ?? [...this.vms.values()].find((v) => v.id === ref);
    if (!vm) throw new HangarError('not-found', `no VM named "${ref}"`, 'see `hangar list`');
    return vm;
  }

  /** A VM whose QEMU runs, as the core's liveQmp: else invalid-state with the fix. */
  private liveVm(ref: string, what: string): VmInfo {
    const vm = this.find(ref);
    if (!['running', 'paused', 'shutting-down', 'rebooting', 'guest-error'].includes(vm.state)) {
      throw new HangarError('invalid-state', `VM "${vm.name}" is not running (${vm.state}): ${what} needs a running VM`, `start it with \`hangar start ${vm.name}\``);
    }
    return vm;
  }

  private setState(vm: VmInfo, state: VmState): VmInfo {
    const next = { ...vm, state };
    this.vms.set(vm.name, next);
    return next;
  }

  readonly api: CoreApi = (() => {
    const lifecycle = (action: 'start' | 'shutdown' | 'destroy' | 'reboot' | 'reset' | 'pause' | 'resume', to: VmState) =>
      async (ref: string): Promise<VmInfo> => {
        const vm = this.find(ref);
        assertCan(action, vm.state, vm.name);
        const next = this.setState(vm, to);
        this.emitVmChanged(next);
        return next;
      };
    const impl: Partial<CoreApi> = {
      statsLatest: async () => [...this.samples],
      hostSummary: async () => this.hostSummary,
      watchStats: async (refs) => { for (const r of refs ?? []) this.find(r); },
      capabilities: async () => this.caps,
      connections: async () => [...this.savedConnections],
      addConnection: async (name, uri) => {
        checkConnectionName(name);
        const target = parseConnectionUri(uri);
        if (this.savedConnections.some((c) => c.name === name)) throw new HangarError('already-exists', `a connection named "${name}" exists`, 'pick another name, or remove it first');
        this.savedConnections.push({ name, uri, label: connectionLabel(target), kind: target.kind });
        return [...this.savedConnections];
      },
      removeConnection: async (name) => {
        if (name === 'local') throw new HangarError('invalid-input', 'the local connection cannot be removed', 'remove another one');
        const i = this.savedConnections.findIndex((c) => c.name === name);
        if (i < 0) throw new HangarError('not-found', `no connection named "${name}"`, 'see hangar connect list');
        this.savedConnections.splice(i, 1);
        return [...this.savedConnections];
      },
      list: async () => [...this.vms.values()].map(({ id, name, state, vcpus, memoryMiB, reason }): VmSummary => {
        const s: VmSummary = { id, name, state };
        if (vcpus !== undefined) s.vcpus = vcpus;
        if (memoryMiB !== undefined) s.memoryMiB = memoryMiB;
        if (reason !== undefined) s.reason = reason;
        return s;
      }),
      get: async (ref) => this.find(ref),
      agentInfo: async (ref) => this.agentInfos.get(this.find(ref).name) ?? { available: false, interfaces: [], reason: 'the guest agent did not answer within 2 s' },
      start: lifecycle('start', 'running'),
      shutdown: lifecycle('shutdown', 'shutting-down'),
      destroy: lifecycle('destroy', 'stopped'),
      reboot: async (ref) => {
        const vm = this.find(ref);
        assertCan('reboot', vm.state, vm.name);
        // As the real core: with changes pending, a new QEMU (clean shutdown + start) takes the saved definition.
        if (vm.pending?.length) this.live.delete(vm.name);
        const next: VmInfo = { ...vm, state: 'running', pending: [] };
        this.vms.set(vm.name, next);
        this.emitVmChanged(next);
        return next;
      },
      reset: lifecycle('reset', 'running'),
      pause: lifecycle('pause', 'paused'),
      resume: lifecycle('resume', 'running'),
      delete: async (ref, opts) => {
        const vm = this.find(ref);
        assertCan('delete', vm.state, vm.name);
        this.vms.delete(vm.name);
        this.emitListChanged();
        return { deletedFiles: opts?.deleteDisks ? ['/disk.qcow2'] : [], keptFiles: [] };
      },
      commandLine: async (ref) => ['qemu-system-x86_64', '-name', this.find(ref).name, '-nodefaults'],
      screenshot: async (ref) => {
        const vm = this.liveVm(ref, 'a screenshot');
        if (this.definitionOf(vm).video.model === 'none') {
          throw new HangarError('invalid-state', `VM "${vm.name}" has no display: a screenshot needs a video device`, 'add one and restart the VM');
        }
        this.screenshots++;
        return { ...this.screen, takenAt: new Date(this.screenshots * 1000).toISOString() };
      },
      sendKeys: async (ref, keys) => {
        const vm = this.liveVm(ref, 'sending keys');
        this.keysSent.push(`${vm.name} ${keys.join('-')}`);
      },
      hostInfo: async () => this.host,
      cpuModels: async (accel) => ({ ...this.cpuModelList, accel: accel ?? this.cpuModelList.accel }),
      osList: async () => GENERIC_OSES.map(({ media: _m, ...o }) => o),
      inspectPath: async (path) => {
        await this.pathGates.get(path);
        const r = this.paths.get(path) ?? new HangarError('invalid-input', `${path} does not exist`, 'check the path');
        if (r instanceof HangarError) throw r;
        return r;
      },
      previewCreate: async (req) => {
        const name = String(req.definition.name);
        if (this.vms.has(name)) throw new HangarError('already-exists', `a VM named "${name}" already exists`, 'choose another name');
        return { definition: { ...req.definition, id: 'preview' } as unknown as VmDefinition, commandLine: ['qemu-system-x86_64', '-name', `guest=${name}`] };
      },
      create: async (req) => {
        this.creates.push(req);
        const name = String(req.definition.name);
        if (req.requestId) {
          // A create that copies holds until released or cancelled, like a qemu-img convert.
          const id = req.requestId;
          const cancelled = await new Promise<boolean>((resolve) => {
            this.cancels.set(id, () => resolve(true));
            if (!this.holdCreates) resolve(false);
            else this.createWaiters.push(() => resolve(false));
          });
          this.cancels.delete(id);
          if (cancelled) throw new HangarError('cancelled', 'the create was cancelled; nothing was created');
        }
        const vm = fakeVm(name, 'stopped');
        this.add(vm);
        this.emitListChanged();
        return vm;
      },
      doctor: async () => this.checks,
      hostDevices: async () => this.currentHostReport(),
      bindVfio: async (address) => {
        const r = this.currentHostReport();
        const d = this.pciDevice(address);
        const v = r.viability[address];
        if (!v?.assignable) throw new HangarError('invalid-state', `${address} cannot be bound to vfio-pci: ${v?.blockers.join('; ') ?? 'unknown device'}`, 'see its blockers on the Host page');
        const members = v.group.filter((m) => m.action === 'vfio' || (m.address === address && d.driver !== 'vfio-pci'));
        const commands = members.flatMap((m) => [
          `echo vfio-pci > ${r.sysRoot}/bus/pci/devices/${m.address}/driver_override`,
          ...(m.driver ? [`echo ${m.address} > ${r.sysRoot}/bus/pci/devices/${m.address}/driver/unbind`] : []),
          `echo ${m.address} > ${r.sysRoot}/bus/pci/drivers_probe`,
        ]);
        return this.privileged(`bindVfio ${address}`, commands, () => {
          for (const m of members) this.hostDrivers.set(m.address, m.driver);
          this.editPci((p) => (members.some((m) => m.address === p.address) ? { ...p, driver: 'vfio-pci' } : p));
        });
      },
      releaseVfio: async (address) => {
        const r = this.currentHostReport();
        const d = this.pciDevice(address);
        const held = r.assignments.find((a) => a.kind === 'hostpci' && a.running && [address, ...d.iommuGroupPeers].includes(a.device));
        if (held) throw new HangarError('invalid-state', `${held.device} is in use by the running VM "${held.vmName}"`, `shut down ${held.vmName} first`);
        const members = [d, ...d.iommuGroupPeers.map((a) => this.pciDevice(a))].filter((p) => p.driver === 'vfio-pci');
        const commands = members.flatMap((m) => [
          `echo > ${r.sysRoot}/bus/pci/devices/${m.address}/driver_override`,
          `echo ${m.address} > ${r.sysRoot}/bus/pci/drivers/vfio-pci/unbind`,
          `echo ${m.address} > ${r.sysRoot}/bus/pci/drivers_probe`,
        ]);
        return this.privileged(`releaseVfio ${address}`, commands, () => {
          this.editPci((p) => {
            if (!members.some((m) => m.address === p.address)) return p;
            const { driver: _old, ...rest } = p;
            const host = this.hostDrivers.get(p.address);
            return host ? { ...rest, driver: host } : rest;
          });
        });
      },
      setSriovVfs: async (pf, count) => {
        const r = this.currentHostReport();
        const d = this.pciDevice(pf);
        if (!d.sriov) throw new HangarError('invalid-input', `${pf} is not an SR-IOV physical function`, 'choose a device with SR-IOV');
        const total = d.sriov.totalVfs ?? 0;
        if (count < 0 || count > total) throw new HangarError('invalid-input', `${pf} supports 0 to ${total} VFs, not ${count}`, `give a count from 0 to ${total}`);
        const held = r.assignments.find((a) => a.kind === 'hostpci' && a.running && d.sriov!.vfs.includes(a.device));
        if (held) throw new HangarError('invalid-state', `VF ${held.device} of ${pf} is in use by the running VM "${held.vmName}"`, `shut down ${held.vmName} before changing the VF count`);
        const file = `${r.sysRoot}/bus/pci/devices/${pf}/sriov_numvfs`;
        return this.privileged(`setSriovVfs ${pf} ${count}`, [`echo 0 > ${file}`, ...(count ? [`echo ${count} > ${file}`] : [])], () => {
          const vfs = Array.from({ length: count }, (_, i) => sampleVf(pf, i, 100 + i));
          const rest = this.hostReport.pci.filter((p) => p.physfn !== pf).map((p) => (p.address === pf ? { ...p, sriov: { ...p.sriov!, numVfs: count, vfs: vfs.map((v) => v.address) } } : p));
          this.setPci([...rest, ...vfs].sort((a, b) => a.address.localeCompare(b.address)));
        });
      },
      setVfConfig: async (pf, vf, cfg) => {
        const d = this.pciDevice(pf);
        const n = d.sriov?.numVfs ?? 0;
        if (vf < 0 || vf >= n) throw new HangarError('invalid-input', `${pf} has no VF ${vf} (it has ${n})`, 'choose one of its VFs');
        const words = [cfg.mac ? `mac ${cfg.mac}` : '', cfg.vlan !== undefined ? `vlan ${cfg.vlan}` : ''].filter(Boolean).join(' ');
        return this.privileged(`setVfConfig ${pf} ${vf} ${words}`, [`ip link set dev enp3s0f0 vf ${vf} ${words}`], () => {});
      },
      createMdev: async (parent, type) => {
        const r = this.currentHostReport();
        const d = this.pciDevice(parent);
        const t = d.mdevTypes.find((x) => x.id === type);
        if (!t) throw new HangarError('not-found', `${parent} has no mdev type "${type}"`, `its types: ${d.mdevTypes.map((x) => x.id).join(', ') || 'none'}`);
        if (t.availableInstances === 0) throw new HangarError('invalid-state', `no ${type} instances are left on ${parent}`, 'remove an instance, or choose a smaller type');
        const uuid = `00000000-0000-4000-8000-${String(++this.mdevSeq).padStart(12, '0')}`;
        const res = await this.privileged(`createMdev ${parent} ${type}`, [`echo ${uuid} > ${r.sysRoot}/bus/pci/devices/${parent}/mdev_supported_types/${type}/create`], () => {
          this.hostReport = { ...this.hostReport, mdevs: [...this.hostReport.mdevs, { uuid, parent, type }] };
          this.editMdevCount(parent, type, -1);
        });
        return { ...res, uuid };
      },
      removeMdev: async (uuid) => {
        const r = this.currentHostReport();
        const m = r.mdevs.find((x) => x.uuid === uuid);
        if (!m) throw new HangarError('not-found', `no mediated device ${uuid}`, 'see the Host page');
        const held = r.assignments.find((a) => a.kind === 'mdev' && a.running && a.device === uuid);
        if (held) throw new HangarError('invalid-state', `mediated device ${uuid} is in use by the running VM "${held.vmName}"`, `shut down ${held.vmName} first`);
        return this.privileged(`removeMdev ${uuid}`, [`echo 1 > ${r.sysRoot}/bus/mdev/devices/${uuid}/remove`], () => {
          this.hostReport = { ...this.hostReport, mdevs: this.hostReport.mdevs.filter((x) => x.uuid !== uuid) };
          if (m.type) this.editMdevCount(m.parent, m.type, +1);
        });
      },
      addDevice: async (ref, kind, device, opts) => {
        const vm = this.find(ref);
        if (kind === 'hostpci') {
          const v = this.hostReport.viability[String(device.address)];
          if (v && !v.assignable) throw new HangarError('invalid-input', `${String(device.address)} cannot be assigned: ${v.blockers.join('; ')}`, 'choose another device');
        }
        const before = this.definitionOf(vm);
        let input: Record<string, unknown> = { ...device };
        if (kind === 'nic' && input.mac === undefined) input.mac = '52:54:00:00:00:99';
        const { id } = withDeviceAdded(raw(before), kind, input);
        if (kind === 'disk' && input.file === undefined) {
          if (!opts?.newDiskBytes) throw new HangarError('invalid-input', 'a new disk needs a file or a size', 'give file=PATH or size=SIZE');
          const format = opts.newDiskFormat ?? 'qcow2';
          input = { ...input, file: `${vm.dir}/${id}.${format}`, format, owned: true };
        }
        const def = parseDefinition(withDeviceAdded(raw(before), kind, { ...input, id }).definition);
        return this.saveChange(vm, def, kind, id, hotpluggable(kind, findDevice(def, kind, id)!), 'hotplugged: the guest sees it now');
      },
      editDevice: async (ref, kind, id, patch) => {
        const vm = this.find(ref);
        const def = parseDefinition(withDeviceEdited(raw(this.definitionOf(vm)), kind, id, patch));
        // A running VM changes a CD-ROM's medium at once; every other edit waits for the next boot.
        const now = kind === 'cdrom' && Object.keys(patch).every((k) => k === 'file');
        return this.saveChange(vm, def, kind, id, now, 'medium changed');
      },
      removeDevice: async (ref, kind, id, opts) => {
        const vm = this.find(ref);
        const { definition, removed } = withDeviceRemoved(raw(this.definitionOf(vm)), kind, id);
        if (opts?.deleteFile) {
          if (kind !== 'disk') throw new HangarError('invalid-input', `only a disk has a file to delete, not a ${kind}`, 'leave out the delete-file option');
          if (removed.owned !== true) throw new HangarError('invalid-input', `disk "${id}" uses ${String(removed.file)}, which Hangar did not create, so Hangar never deletes it`, 'remove the disk without deleting its file');
          if (vm.state !== 'stopped') throw new HangarError('invalid-state', 'the image is in use by the running VM', 'stop the VM first, or keep the file');
          this.deletedFiles.push(String(removed.file));
        }
        return this.saveChange(vm, parseDefinition(definition), kind, id, hotpluggable(kind, removed), 'unplugged: the guest released it');
      },
      setBalloon: async (ref, targetMiB) => {
        const vm = this.find(ref);
        if (vm.state !== 'running' && vm.state !== 'paused') throw new HangarError('invalid-state', `VM "${vm.name}" is not running`, 'the balloon target applies to a running VM: start it first');
        if (!vm.definition?.balloon) throw new HangarError('invalid-state', `VM "${vm.name}" runs without a memory balloon`, 'add a balloon device (hangar device add NAME balloon) and restart the VM');
        if (targetMiB > vm.definition.memoryMiB) throw new HangarError('invalid-input', `a balloon target of ${targetMiB} MiB is more than the VM's ${vm.definition.memoryMiB} MiB`, `give at most ${vm.definition.memoryMiB} MiB (the balloon only gives memory back)`);
        // The guest gives memory back over a few answers when the test queues them.
        return { targetMiB, actualMiB: this.balloonActuals.shift() ?? targetMiB };
      },
      cancelCreate: async (requestId) => {
        const c = this.cancels.get(requestId);
        c?.();
        return c !== undefined;
      },
    };
    const wrapped = Object.create(null) as Record<string, (...a: unknown[]) => Promise<unknown>>;
    for (const [m, f] of Object.entries(impl)) {
      wrapped[m] = async (...args: unknown[]) => {
        this.calls.push(`${m} ${args.filter((a) => a !== undefined).map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ')}`.trim());
        await this.gate(m);
        const err = this.failNext.get(m);
        try {
          if (err) {
            this.failNext.delete(m);
            throw err;
          }
          return await (f as (...a: unknown[]) => Promise<unknown>)(...args);
        } catch (e) {
          throw toPayload(e);
        }
      };
    }
    return wrapped as unknown as CoreApi;
  })();

  /** The report as hostDevices answers: the fake VMs' host devices are assignments too. */
  private currentHostReport(): HostDeviceReport {
    const derived: HostAssignment[] = [];
    for (const vm of this.vms.values()) {
      const d = vm.definition;
      if (!d) continue;
      const running = vm.state === 'running' || vm.state === 'paused';
      const base = { vmId: vm.id, vmName: vm.name, running };
      for (const h of d.hostPci) derived.push({ ...base, kind: 'hostpci', device: h.address, deviceId: h.id });
      for (const m of d.mdevs) derived.push({ ...base, kind: 'mdev', device: m.uuid, deviceId: m.id });
      for (const u of d.hostUsb) derived.push({ ...base, kind: 'usbhost', device: u.vendorId ? `${u.vendorId}:${u.productId}` : `${u.hostbus}-${u.hostport}`, deviceId: u.id });
    }
    return { ...this.hostReport, assignments: [...this.hostReport.assignments, ...derived] };
  }

  private pciDevice(address: string): PciDevice {
    const d = this.hostReport.pci.find((p) => p.address === address);
    if (!d) throw new HangarError('not-found', `no PCI device ${address} on this host`, 'see the Host page for the devices');
    return d;
  }

  private setPci(pci: PciDevice[]): void {
    const { viability: _v, ...rest } = this.hostReport;
    this.hostReport = withViability({ ...rest, pci });
  }

  private editPci(fn: (d: PciDevice) => PciDevice): void {
    this.setPci(this.hostReport.pci.map(fn));
  }

  private editMdevCount(parent: string, type: string, by: number): void {
    this.editPci((p) => (p.address !== parent ? p : {
      ...p, mdevTypes: p.mdevTypes.map((t) => (t.id === type && t.availableInstances !== undefined ? { ...t, availableInstances: t.availableInstances + by } : t)),
    }));
  }

  /** A host change as the core makes it: refused with the commands when it may not (privilege none), else done. */
  private async privileged(what: string, commands: string[], change: () => void): Promise<HostChangeResult> {
    const via = this.hostReport.privilege;
    if (via === 'none') {
      throw new HangarError('permission', 'Hangar may not change host devices here: it is not root and neither sudo -n nor pkexec is available', 'run these commands as root, then press Refresh', { commands });
    }
    change();
    this.hostLog.push(what);
    return { commands, via };
  }

  /** What each running VM's QEMU has (the definition at start plus what was hotplugged). */
  private readonly live = new Map<string, VmDefinition>();

  private definitionOf(vm: VmInfo): VmDefinition {
    return vm.definition ?? fakeDefinition(vm.name);
  }

  /** Stores the changed definition; a running VM gets it now (hotplug) or as a pending change. */
  private saveChange(vm: VmInfo, def: VmDefinition, kind: DeviceKindName, id: string, hotplug: boolean, nowNote: string): DeviceChange {
    const running = vm.state !== 'stopped';
    const applied: DeviceChange['applied'] = !running ? 'saved' : hotplug ? 'now' : 'next-boot';
    const liveBefore = this.live.get(vm.name) ?? this.definitionOf(vm);
    let liveDef = liveBefore;
    if (applied === 'now') {
      // The live hardware takes this one device's change, nothing else pending.
      const dev = findDevice(def, kind, id);
      const r = raw(liveBefore);
      liveDef = parseDefinition(dev ? (findDevice(liveBefore, kind, id) ? withDeviceEdited(r, kind, id, dev) : withDeviceAdded(r, kind, dev).definition) : withDeviceRemoved(r, kind, id).definition);
    }
    if (running) this.live.set(vm.name, liveDef);
    const info: VmInfo = { ...vm, definition: def, ...(running ? { pending: pendingChanges(liveDef, def) } : { pending: [] }) };
    this.vms.set(vm.name, info);
    this.deviceLog.push(`${kind} ${id} -> ${applied}`);
    this.emitVmChanged(info);
    return { info, applied, id, note: applied === 'now' ? nowNote : applied === 'next-boot' ? 'saved; applies at next boot: QEMU cannot hotplug this device' : '' };
  }

  emitVmChanged(vm: Pick<VmInfo, 'id' | 'name' | 'state'>): void {
    for (const s of this.sessions) void s.rpc.vmChanged.asEvent({ id: vm.id, name: vm.name, state: vm.state }).catch(() => {});
  }

  /** Pushes a sample to every connection (the fake does not filter by watchStats: tests check the calls). */
  emitStatsSample(s: StatsSample): void {
    for (const x of this.sessions) void x.rpc.statsSample.asEvent(s).catch(() => {});
  }

  emitHostStats(h: HostSummary): void {
    for (const x of this.sessions) void x.rpc.hostStats.asEvent(h).catch(() => {});
  }

  emitCreateProgress(e: { requestId: string; step: string; fraction: number }): void {
    for (const s of this.sessions) void s.rpc.createProgress.asEvent(e).catch(() => {});
  }

  emitListChanged(): void {
    for (const s of this.sessions) void s.rpc.vmListChanged.asEvent().catch(() => {});
  }

  /** Changes a VM behind the UI's back, as another client would, and says so. */
  change(name: string, state: VmState): void {
    this.emitVmChanged(this.setState(this.find(name), state));
  }

  /** Drops every RPC connection (the core went away). */
  dropAll(): void {
    for (const s of this.sessions.splice(0)) s.end.close('the core went away');
  }

  get connections(): number {
    return this.sessions.filter((s) => !s.end.closed).length;
  }

  async openRpc(connection?: string): Promise<RpcLink> {
    this.rpcOpens++;
    this.rpcConnections.push(connection);
    if (this.down) throw new Error('could not reach the Hangar core');
    const [ui, core] = memoryPair<string>();
    let handler: ((d: unknown) => void) | null = null;
    const rpc = createBirpc<CoreEvents, CoreApi>(this.api, {
      post: (d: string) => core.send(d),
      on: (fn) => { handler = fn; },
      serialize: (v) => JSON.stringify(v),
      deserialize: (v: string) => JSON.parse(v),
      eventNames: ['vmChanged', 'vmListChanged', 'createProgress', 'snapshotProgress', 'statsSample', 'hostStats'],
      timeout: -1,
    });
    core.onMessage((m) => handler?.(m));
    const session = { end: core, rpc };
    this.sessions.push(session);
    core.onClose(() => {
      const i = this.sessions.indexOf(session);
      if (i >= 0) this.sessions.splice(i, 1);
    });
    return ui;
  }

  consoleFails: Error | null = null;

  async openConsole(vm: string, opts: { replay: boolean; connection?: string }): Promise<ConsoleLink> {
    if (this.consoleFails) throw this.consoleFails;
    const [ui, core] = memoryPair<string | Uint8Array>();
    this.consoles.push({ vm, replay: opts.replay, core, ...(opts.connection !== undefined ? { connection: opts.connection } : {}) });
    return ui;
  }

  async openDisplay(vm: string, connection?: string): Promise<ConsoleLink> {
    if (this.displayFails) throw this.displayFails;
    const [ui, core] = memoryPair<string | Uint8Array>();
    this.displays.push({ vm, core, ...(connection !== undefined ? { connection } : {}) });
    return ui;
  }

  /** Whether a fake VM's definition has a VNC display. */
  hasDisplay(name: string): boolean {
    return displayCapabilities(this.definitionOf(this.find(name))).vnc;
  }
}

/** Timers driven by the test: advance(ms) runs what is due, in order. */
export class ManualTimers implements Timers {
  now = 0;
  private seq = 0;
  private readonly pending = new Map<number, { at: number; fn: () => void }>();

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.pending.set(id, { at: this.now + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }

  get count(): number {
    return this.pending.size;
  }

  /** The delays (from now) of the pending timers, soonest first. */
  delays(): number[] {
    return [...this.pending.values()].map((p) => p.at - this.now).sort((a, b) => a - b);
  }

  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.pending) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.pending.delete(next[0]);
      this.now = next[1].at;
      next[1].fn();
      await settle();
    }
    this.now = end;
    await settle();
  }
}

/** Lets queued microtasks and promise chains run. */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setTimeout(r, 0));
}
