// The core's API contract, shared by the CLI, the desktop windows and browser mode.
import type { FirmwareType, VmDefinition } from './model.ts';
import type { HostChangeResult, HostDeviceReport } from './host-devices.ts';
import type { OsListEntry, OsDetection } from './os-types.ts';
import type { OsPreset } from './os-presets.ts';
import type { VmState } from './state.ts';
import type { CreateSnapshotRequest, SnapshotInfo, SnapshotList, SnapshotProgress } from './snapshots.ts';
import type { HostSummary, StatsHistory, StatsSample } from './stats.ts';
import type { ConnectionInfo, DriverCapabilities } from './connections.ts';
import type { AgentExecOptions, AgentExecResult, AgentInfo, GuestSummary, ShutdownMode } from './guest-agent.ts';

export interface AgentInfoOptions {
  /** How long to wait for the agent's first answer (default 3000 ms). */
  timeoutMs?: number;
}

export interface VmSummary {
  id: string;
  name: string;
  state: VmState;
  /** Why the VM is broken / crashed / in guest-error, in words. */
  reason?: string;
  vcpus?: number;
  memoryMiB?: number;
  pid?: number;
  /** The VM shows a screen (a video device with a VNC display; see displayCapabilities). */
  display?: boolean;
  /** Running or paused VM with the agent channel, once the core's background poll has finished once (agent-watch.ts). */
  guest?: GuestSummary;
}

export interface VmInfo extends VmSummary {
  /** Absent for a broken VM whose definition could not be read. */
  definition?: VmDefinition;
  dir: string;
  /** The accelerator the running VM actually uses. */
  accelInUse?: 'kvm' | 'tcg';
  /** A note about the accelerator choice (e.g. KVM present but unusable). */
  accelNote?: string;
  /** Things worth knowing about the current run's start (e.g. the UEFI NVRAM was recreated). */
  startNotes?: string[];
  qemuStatus?: string;
  /**
   * Running VM only: device changes saved in the definition that the running QEMU does not have
   * yet (or still has): they apply at the next start. Empty when the two agree.
   */
  pending?: PendingChange[];
  /** Running VM with a balloon: the target asked for and what the guest holds now (BALLOON_CHANGE). */
  balloon?: { targetMiB: number; actualMiB: number };
  /** A live migration in progress: leaving (outgoing, the VM stays running or paused) or arriving (incoming, starting). */
  migration?: { direction: 'outgoing' | 'incoming'; peer: string; phase: MigrationPhase };
}

/** What `migrate` takes. */
export interface MigrateRequest {
  /** The destination core: a saved connection name or a URI (ssh://..., hangar+unix:///path/hangar.sock), resolved by the source core. */
  to: string;
  /** The destination gets its own copies of the disks (NBD + blockdev-mirror); default: shared storage (the same paths there). */
  copyStorage?: boolean;
  /** Bandwidth cap of the RAM stream in MiB/s (default 1024). */
  maxBandwidthMiBs?: number;
  /** The longest pause tolerated at the switch-over in ms (default 300). */
  downtimeLimitMs?: number;
}

export const migrationPhases = ['preparing', 'storage', 'memory', 'completing', 'done', 'failed', 'cancelled'] as const;
export type MigrationPhase = (typeof migrationPhases)[number];

/** One live-migration progress report (about every 500 ms), from the source core. */
export interface MigrationProgress {
  vmId: string;
  vm: string;
  /** The destination connection as asked. */
  to: string;
  phase: MigrationPhase;
  /** RAM stream figures from QEMU's query-migrate. */
  transferredBytes: number;
  totalBytes: number;
  remainingBytes: number;
  /** Pages dirtied per second x page size. */
  dirtyRateBytesPerSec: number;
  expectedDowntimeMs: number;
  /** Disk mirroring (copyStorage): bytes copied of all disks, from query-block-jobs. */
  storage?: { doneBytes: number; totalBytes: number; ready: boolean };
  /** The real pause at the switch-over (phase done). */
  downtimeMs?: number;
  message?: string;
}

export interface MigrationResult {
  id: string;
  name: string;
  to: string;
  /** The VM as the destination core has it now. */
  destination: VmInfo;
  totalTimeMs: number;
  /** QEMU's own figure (query-migrate `downtime`): the guest stopped until the source sent its last byte. */
  downtimeMs: number;
  /** As the cores saw it: the guest's STOP at the source until the destination runs it again (the finish round trip included). */
  guestPauseMs?: number;
  transferredBytes: number;
  /** Bytes mirrored per disk (copyStorage). */
  storageBytes?: number;
  /** Where the source core keeps a copy of the definition it gave away. */
  definitionKeptAt: string;
}

/** Sent by a source core to the destination core: define the VM and start QEMU waiting for the stream. */
export interface IncomingMigrationRequest {
  /** The running definition (same id, uuid and name). */
  definition: Record<string, unknown>;
  copyStorage: boolean;
  /** copyStorage: each disk's virtual size and format, for the empty target images. */
  disks?: Array<{ id: string; virtualSizeBytes: number; format: 'qcow2' | 'raw' }>;
  /** The VM's UEFI variable store (base64), when it has one. */
  uefiVarsBase64?: string;
  /** The source core's words for itself (logs). */
  from?: string;
}

export interface IncomingMigrationTicket {
  vmId: string;
  /** Authorizes the migration channels ({channel: 'migration'}) and finish/abort. */
  token: string;
  /** copyStorage: the NBD export name of each disk. */
  exports: Array<{ diskId: string; name: string; file: string }>;
}

/**
 * Device kinds as the device operations name them. List kinds (disk, cdrom, nic, input, share,
 * channel, serial, hostpci, mdev, usbhost) hold many devices, each with its id; the others are one per VM, with the fixed
 * id device-rows shows (rng0, balloon0, video0, sound0, watchdog0, usb0, vsock0, tpm0).
 */
export const deviceKinds = ['disk', 'cdrom', 'nic', 'input', 'share', 'channel', 'serial', 'hostpci', 'mdev', 'usbhost', 'rng', 'balloon', 'video', 'sound', 'watchdog', 'usb', 'vsock', 'tpm'] as const;
export type DeviceKindName = (typeof deviceKinds)[number];

export interface PendingChange {
  /** A device kind, or the VM's CPU or memory settings. */
  kind: DeviceKindName | 'cpu' | 'memory';
  id: string;
  change: 'add' | 'remove' | 'edit';
  /** In words, e.g. "disk disk1 (virtio-blk) will be added". */
  summary: string;
}

/**
 * What a device change did: `now` = the running VM has it already (hotplug, unplug, media change);
 * `next-boot` = saved in the definition, the running VM keeps its old hardware until it restarts
 * (the reason is in `note`); `saved` = the VM is off, the definition is changed.
 */
export interface DeviceChange {
  info: VmInfo;
  applied: 'now' | 'next-boot' | 'saved';
  /** The device id (chosen by the core when the request had none). */
  id: string;
  note?: string;
}

export interface AddDeviceOptions {
  /** A disk without a `file`: make a new image of this size in the VM folder (owned by the VM). */
  newDiskBytes?: number;
  newDiskFormat?: 'qcow2' | 'raw';
  /** The user confirmed a new image larger than the free space (see CreateVmRequest.allowOvercommit). */
  allowOvercommit?: boolean;
}

export interface EditOptions {
  /** The user confirmed more vCPUs than the host has CPUs. */
  allowOvercommit?: boolean;
}

export interface RemoveDeviceOptions {
  /** Seconds to wait for the guest to release a device being unplugged (default 20). */
  timeoutSec?: number;
  /** Also delete a removed disk's image: only one the VM created (owned), and only once no QEMU uses it. */
  deleteFile?: boolean;
}

export interface NewDiskRequest {
  sizeBytes: number;
  bus?: VmDefinition['disks'][number]['bus'];
  format?: 'qcow2' | 'raw';
}

/**
 * An existing disk image to use: `in-place` uses the file where it is (the VM does not own it,
 * never deletes it); `copy` and `convert` make the VM's own image with `qemu-img convert`
 * (copy keeps a qcow2/raw source's format, convert defaults to qcow2). The source is only read.
 */
export interface ImportDiskRequest {
  source: string;
  mode: 'in-place' | 'copy' | 'convert';
  /** Target format for copy/convert. */
  format?: 'qcow2' | 'raw';
  bus?: VmDefinition['disks'][number]['bus'];
}

/** What `create` takes: a partial definition (defaults are filled in), plus disks to make. */
export interface CreateVmRequest {
  definition: Record<string, unknown>;
  newDisks?: NewDiskRequest[];
  importDisks?: ImportDiskRequest[];
  /** Chosen by the client (at most 64 characters): names this create in createProgress and cancelCreate. */
  requestId?: string;
  /** Unattended set-up as typed (the wizard): the core hashes the password and stores only the hash. */
  cloudInit?: CloudInitRequest;
  /**
   * The user confirmed, with the numbers in front of them, new sparse disks larger than the free
   * space, or more vCPUs than the host has CPUs (`--allow-overcommit`; the wizard after asking).
   * Without it create refuses them.
   */
  allowOvercommit?: boolean;
}

export interface CloudInitRequest {
  user?: string;
  password?: string;
  hostname?: string;
  /** OpenSSH public key lines. */
  sshKeys?: string[];
}

/** Whether the host can run one choice, and if not why and how to fix it. */
export interface HostOption {
  available: boolean;
  reason?: string;
  fix?: string;
}

/** What the New VM wizard needs to know about the host to offer only what can run. */
export interface HostInfo {
  cpus: number;
  memoryBytes: number;
  /** Where VM folders (and new disks) go, and the free space there. */
  dataDir: string;
  freeBytes: number;
  /** The user's home folder: where file fields start. */
  homeDir: string;
  firmware: Record<FirmwareType, HostOption>;
  tpm: HostOption;
  /** The NIC back ends: user-mode NAT, passt, a host bridge (bridges = those this user may attach a VM to). */
  network: { user: HostOption; passt: HostOption; bridge: HostOption & { bridges: string[] } };
  /** iPXE option ROMs for network boot. */
  pxe: HostOption;
  /** xorriso + openssl for the cloud-init seed. */
  cloudInit: HostOption;
}

export type InspectExpect = 'iso' | 'disk' | 'file' | 'directory';

/** What a path names, checked for one use (an install ISO, a disk image, a kernel file ...). */
export interface PathInspection {
  /** Absolute. */
  path: string;
  sizeBytes: number;
  /** For an ISO: its volume descriptor, the OS detected from it and that OS's defaults. */
  iso?: { detection: Omit<OsDetection, 'os'> & { os: OsListEntry | null }; preset: OsPreset };
  /** For a disk image: what qemu-img sees. */
  disk?: { format: string; virtualSizeBytes: number; actualSizeBytes?: number };
}

/** One folder's entries, for the file chooser (browser mode has no native file dialog). */
export interface DirListing {
  path: string;
  /** null at / */
  parent: string | null;
  entries: Array<{ name: string; kind: 'dir' | 'file' | 'other'; sizeBytes: number }>;
  /** More entries than listed (the listing stops at a few thousand). */
  truncated: boolean;
}

/** What create would make, without making anything: the summary step of the wizard. */
export interface CreatePreview {
  definition: VmDefinition;
  /** The QEMU command line the VM will run with (accelerator as probed). */
  commandLine: string[];
}

export interface StartOptions {
  discardSaved?: boolean;
}

export interface ShutdownOptions {
  /** Seconds before forcing off; default: the VM's shutdownTimeoutSec. */
  timeoutSec?: number;
  /** Resolve only when the VM is stopped. */
  wait?: boolean;
}

/** What `clone` takes. */
export interface CloneRequest {
  name: string;
  description?: string;
  /** qcow2 overlays on the source's images instead of copies (the source must be stopped, and is then protected). */
  linked?: boolean;
  /** Disks the source uses in place (not its own): copy them, or share the file (read-only disks only). Unset: refused with the choice. */
  unowned?: 'copy' | 'share';
  /** Copy the TPM state too (keys sealed in it come along); default: the clone gets a fresh TPM. */
  copyTpm?: boolean;
  /** Names this clone in createProgress events and cancelCreate. */
  requestId?: string;
}

export interface DeleteOptions {
  deleteDisks?: boolean;
}

export interface DoctorCheckInfo {
  id: string;
  label: string;
  status: 'ok' | 'warn' | 'missing' | 'error';
  detail: string;
  fix?: string;
}

export interface DaemonStatus {
  pid: number;
  version: string;
  startedAt: string;
  dataDir: string;
  runtimeDir: string;
  socketPath: string;
  vmCount: number;
  runningCount: number;
  rssBytes: number;
}

export interface Screenshot {
  pngBase64: string;
  width: number;
  height: number;
  /** ISO time the screen was taken. */
  takenAt: string;
}

/** The host's CPUs and memory for tuning: topology, NUMA nodes, huge page pools, KSM, and what running guests take. */
export interface HostCpuMemory {
  cpus: Array<{ cpu: number; package: number; die: number; core: number; node: number; siblings: number[] }>;
  nodes: Array<{ id: number; cpus: number[]; memTotalKiB: number; memFreeKiB: number }>;
  hugepages: Array<{ size: string; pageKiB: number; total: number; free: number; reserved: number; surplus: number }>;
  ksm: { available: false } | { available: true; running: boolean; pagesShared: number; pagesSharing: number; pagesUnshared: number; fullScans: number; savedBytes: number };
  memTotalKiB: number;
  memAvailableKiB: number;
  /** Guest memory of the running VMs (the core fills this in). */
  committed?: {
    totalMiB: number;
    /** Each running VM: its memory, the balloon's target and actual (with a balloon), free page reporting, huge pages, KSM merging. */
    vms: Array<{ name: string; memoryMiB: number; hugepages?: string; merge: boolean; balloon?: { targetMiB: number; actualMiB: number; freePageReporting: boolean } }>;
  };
}

export interface CpuModelList {
  accel: 'kvm' | 'tcg';
  models: Array<{ name: string; unavailable: string[]; aliasOf?: string; deprecated: boolean }>;
}

/** A CPU or memory change: made on the running guest now, or saved for its next start (with why). */
export interface CpuMemoryChangeResult {
  applied: 'now' | 'next-boot';
  note?: string;
  info: VmInfo;
}

/** Methods the core serves. `ref` is a VM name or id. */
export interface CoreApi {
  list(): Promise<VmSummary[]>;
  get(ref: string): Promise<VmInfo>;
  create(req: CreateVmRequest): Promise<VmInfo>;
  /** Cancels a create still running (or queued) by its requestId; true if one was cancelled. */
  cancelCreate(requestId: string): Promise<boolean>;
  edit(ref: string, patch: Record<string, unknown>, opts?: EditOptions): Promise<VmInfo>;
  /** Grows a disk: offline with qemu-img, online (running or paused VM) with QMP block_resize. Never shrinks. */
  resizeDisk(ref: string, diskId: string, sizeBytes: number): Promise<{ oldBytes: number; newBytes: number; online: boolean }>;
  /**
   * Adds a device. Stopped VM: saved. Running VM: hotplugged where QEMU can (virtio-blk/scsi
   * disks, NICs on user/isolated/bridge/tap back ends, USB inputs), else saved as pending.
   */
  addDevice(ref: string, kind: DeviceKindName, device: Record<string, unknown>, opts?: AddDeviceOptions): Promise<DeviceChange>;
  /** Changes a device's fields (merged). Running VM: a CD-ROM's medium changes now; other edits are pending. */
  editDevice(ref: string, kind: DeviceKindName, id: string, patch: Record<string, unknown>): Promise<DeviceChange>;
  /** Removes a device. Running VM: unplugged with the guest's cooperation (timeout) where possible, else pending. */
  removeDevice(ref: string, kind: DeviceKindName, id: string, opts?: RemoveDeviceOptions): Promise<DeviceChange>;
  /** Running VM with a balloon: asks the guest to shrink to (or grow back to) targetMiB. */
  setBalloon(ref: string, targetMiB: number): Promise<{ targetMiB: number; actualMiB: number }>;
  /** Starts a VM; a saved one is restored (discardSaved: its saved state is deleted and it boots afresh). */
  start(ref: string, opts?: StartOptions): Promise<VmInfo>;
  /** Managed save: RAM and device state to the VM's folder, QEMU ends, the VM is `saved`; start restores it. */
  save(ref: string): Promise<VmInfo>;
  shutdown(ref: string, opts?: ShutdownOptions): Promise<VmInfo>;
  /** What the guest agent reports (OS, hostname, interfaces and addresses); available: false with the reason and fix otherwise. */
  agentInfo(ref: string, opts?: AgentInfoOptions): Promise<AgentInfo>;
  /** guest-ping; a 'timeout' error when no agent answers. */
  agentPing(ref: string): Promise<void>;
  /** Runs argv in the guest through the agent; its exit code and output. */
  agentExec(ref: string, argv: string[], opts?: AgentExecOptions): Promise<AgentExecResult>;
  /** How Shut Down and Reboot ask the guest (any state: it changes no hardware). */
  setShutdownMode(ref: string, mode: ShutdownMode): Promise<VmInfo>;
  destroy(ref: string): Promise<VmInfo>;
  reboot(ref: string): Promise<VmInfo>;
  reset(ref: string): Promise<VmInfo>;
  pause(ref: string): Promise<VmInfo>;
  resume(ref: string): Promise<VmInfo>;
  delete(ref: string, opts?: DeleteOptions): Promise<{ deletedFiles: string[]; keptFiles: string[] }>;
  /** The QEMU command line: what the running QEMU was started with, else what a start would run. */
  commandLine(ref: string): Promise<string[]>;
  /** The running VM's screen as a PNG (QMP screendump), base64, with its size in pixels. */
  screenshot(ref: string): Promise<Screenshot>;
  /** Presses keys together on the running VM's keyboard (QMP send-key, qcodes such as ctrl, alt, delete, f1). */
  sendKeys(ref: string, keys: string[]): Promise<void>;
  /** Serial output captured so far (log files, oldest first), base64; at most the last 8 MiB when maxBytes is not given. Use serialLogRead for all of it. */
  serialLog(ref: string, maxBytes?: number): Promise<string>;
  /** One page (at most 1 MiB) of the serial log from a cursor, or of its last N lines: call again with the returned cursor until eof (and on, to follow it). */
  serialLogRead(ref: string, opts?: SerialLogReadOptions): Promise<SerialLogPage>;
  doctor(): Promise<DoctorCheckInfo[]>;
  hostInfo(): Promise<HostInfo>;
  /** Guest OSes (generic fallbacks first, then osinfo-db), without their media matchers. */
  osList(): Promise<OsListEntry[]>;
  /** Checks a path for a use; throws invalid-input naming the problem (missing, not an ISO ...). */
  inspectPath(path: string, expect: InspectExpect): Promise<PathInspection>;
  /** A folder's entries (folders first, hidden ones left out unless asked) for choosing a file. */
  listDir(path: string, opts?: { showHidden?: boolean }): Promise<DirListing>;
  /** Validates a create request exactly as create does, and shows the command line; writes nothing. */
  previewCreate(req: CreateVmRequest): Promise<CreatePreview>;
  /** vCPUs online: hotplugged into (or asked out of) a running q35/pc guest's free slots; saved for the next start. */
  setVcpus(ref: string, count: number): Promise<CpuMemoryChangeResult>;
  /** Thread pinning (null: none), applied to the running threads at once; saved. */
  setCpuPinning(ref: string, pinning: { vcpus?: Array<string | null>; emulator?: string } | null): Promise<CpuMemoryChangeResult>;
  /** Guest memory in MiB: grown live by a DIMM up to its hotplug maximum; saved for the next start. */
  resizeMemory(ref: string, mib: number): Promise<CpuMemoryChangeResult>;
  /** The host's CPU topology, NUMA nodes, huge page pools, KSM, and the memory running guests take. */
  hostCpuMemory(): Promise<HostCpuMemory>;
  /** QEMU's CPU models and whether each is usable with the accelerator (default: the one VMs get here). */
  cpuModels(accel?: 'kvm' | 'tcg'): Promise<CpuModelList>;
  /** KSM on or off (through the privileged helper, like the other host changes). */
  setKsm(on: boolean): Promise<HostChangeResult>;
  /** Sizes a huge page pool (through the privileged helper). */
  setHugepages(size: '2M' | '1G', count: number): Promise<HostChangeResult>;
  /** PCI and USB devices, IOMMU groups and what assigning each takes, mdev instances, passthrough readiness. */
  hostDevices(): Promise<HostDeviceReport>;
  /**
   * Privileged host changes, each through the narrow helper (as root, sudo -n or pkexec). Not
   * permitted: a `permission` error whose details.commands are the exact commands to run as root.
   */
  /** Binds a PCI device (and the non-bridge members of its IOMMU group) to vfio-pci. */
  bindVfio(address: string): Promise<HostChangeResult>;
  /** Gives a device (and its group) back to the host drivers. Refused while a running VM has it. */
  releaseVfio(address: string): Promise<HostChangeResult>;
  /** Sets an SR-IOV PF's VF count (0..sriov_totalvfs). Refused while a running VM has one of its VFs. */
  setSriovVfs(pf: string, count: number): Promise<HostChangeResult>;
  /** Sets VF number vf of a PF's network interface: MAC and/or VLAN (0 = none), by ip link. */
  setVfConfig(pf: string, vf: number, cfg: { mac?: string; vlan?: number }): Promise<HostChangeResult>;
  /** Creates an mdev instance of a type on a parent device (with the UUID a VM names, else a new one); the result holds its UUID. */
  createMdev(parent: string, type: string, uuid?: string): Promise<HostChangeResult>;
  /** Removes an mdev instance. Refused while a running VM has it. */
  removeMdev(uuid: string): Promise<HostChangeResult>;
  /** A new VM from a stopped or paused one: new id, name and MACs, its own disks (copied, or linked overlays); createProgress events, cancelCreate cancels. */
  clone(ref: string, req: CloneRequest): Promise<VmInfo>;
  /** Marks a VM to start when the core starts (once per host boot), or not; allowed in any state. */
  setAutostart(ref: string, on: boolean): Promise<VmInfo>;
  /** The VM's snapshots (a tree), the current position, mismatches found against the disks, and what a new one can be. */
  listSnapshots(ref: string): Promise<SnapshotList>;
  /** Internal (qcow2, with RAM on a running VM unless memory: false) or external (overlays, disk only); snapshotProgress events meanwhile. */
  createSnapshot(ref: string, req: CreateSnapshotRequest): Promise<SnapshotInfo>;
  /** Goes back to a snapshot: what happened since is lost; a memory snapshot leaves the VM running from it, a disk-only one stopped. */
  revertSnapshot(ref: string, snapshot: string): Promise<VmInfo>;
  /** Deletes a snapshot, merging its data into what depends on it so every other snapshot and the current state keep theirs. */
  deleteSnapshot(ref: string, snapshot: string): Promise<SnapshotList>;
  /** The guest's screen when the snapshot was taken (PNG, base64); not-found when it kept none. */
  snapshotScreenshot(ref: string, snapshot: string): Promise<Screenshot>;
  /** A VM's performance history over the last rangeSeconds (default 600; 1 s points up to an hour, minute averages up to a day). */
  statsHistory(ref: string, rangeSeconds?: number): Promise<StatsHistory>;
  /** The newest sample of every running VM (what `hangar top` shows). */
  statsLatest(): Promise<StatsSample[]>;
  /** This connection's live samples (statsSample events): the VMs named (ids or names), every running VM (null), or none ([]). */
  watchStats(refs: string[] | null): Promise<void>;
  /** The running VMs' counters and gauges in Prometheus' text format. */
  statsMetrics(): Promise<string>;
  /** Host CPU and memory, and what the running VMs commit and hold (the list page's summary, `hangar top`'s header); cpuPercent is null only in the first stats interval after the core starts. */
  hostSummary(): Promise<HostSummary>;
  /**
   * Live migration of a running or paused VM to another Hangar core (tunnelled through the cores:
   * ssh or a local socket). migrationProgress events meanwhile; cancelMigration stops it. On
   * success the VM belongs to the destination and this core keeps a copy of its definition.
   */
  migrate(ref: string, req: MigrateRequest): Promise<MigrationResult>;
  /** Cancels a migration in progress (the source keeps running); true if one was cancelled. */
  cancelMigration(ref: string): Promise<boolean>;
  /** Destination side, called by a source core: defines the VM, starts QEMU with -incoming defer. */
  prepareIncomingMigration(req: IncomingMigrationRequest): Promise<IncomingMigrationTicket>;
  /** Destination side: the source completed; the VM runs on here (resume) or stays paused. */
  finishIncomingMigration(vmId: string, token: string, opts: { resume: boolean }): Promise<VmInfo>;
  /** Destination side: the migration failed or was cancelled; QEMU is killed and the half-made VM removed. */
  abortIncomingMigration(vmId: string, token: string, reason: string): Promise<void>;
  /** What this connection's driver can do (a libvirt connection lacks Hangar-only features); the UI disables the rest with the reason. */
  capabilities(): Promise<DriverCapabilities>;
  /** The user's saved connections, `local` first (the connection switcher). Always answered by this computer, whatever the channel's connection. */
  connections(): Promise<ConnectionInfo[]>;
  /** Saves a connection (a name and a URI: ssh://, qemu:///system, ...); the new list. */
  addConnection(name: string, uri: string): Promise<ConnectionInfo[]>;
  /** Forgets a saved connection (its VMs are untouched); the new list. */
  removeConnection(name: string): Promise<ConnectionInfo[]>;
  daemonStatus(): Promise<DaemonStatus>;
  daemonStop(): Promise<void>;
}

/** A position in a VM's serial log: a log file's inode and an offset in it (stays valid while the log rotates). */
export interface SerialLogCursor {
  ino: number;
  /** The file's birth time (ms; 0 where the file system does not keep one): a reused inode number is another file. */
  born?: number;
  offset: number;
}

export interface SerialLogReadOptions {
  /** Where the previous page ended; absent: the oldest byte kept, or the last tailLines lines. */
  cursor?: SerialLogCursor;
  tailLines?: number;
  /** Page size in bytes (at most 1 MiB). */
  maxBytes?: number;
}

export interface SerialLogPage {
  /** The bytes, base64. */
  data: string;
  /** Pass it to the next call. */
  cursor: SerialLogCursor;
  /** The page reached the end of what is logged so far. */
  eof: boolean;
  /** The cursor's file was rotated away: output between it and this page is gone. */
  skipped?: boolean;
  /** The VM is running, so more output may come (a follower keeps asking). */
  active: boolean;
}

/** Events the core pushes; they only invalidate, clients re-fetch (as cockpit-machines does). */
export interface CoreEvents {
  vmChanged(e: { id: string; name: string; state: VmState }): void;
  vmListChanged(): void;
  /** Progress of a long create (disk copies), by the request's requestId; fraction 0..1. */
  createProgress(e: { requestId: string; step: string; fraction: number }): void;
  /** Progress of a snapshot create, revert or delete. */
  snapshotProgress(e: SnapshotProgress): void;
  /** A running VM's newest sample, pushed only to connections that watch it (watchStats). */
  statsSample(e: StatsSample): void;
  /** The host summary, about once per stats interval, to connections whose watchStats set is not empty (null or a non-empty list). */
  hostStats(e: HostSummary): void;
  /** Progress of a live migration, from its source core. */
  migrationProgress(e: MigrationProgress): void;
}

export const coreApiMethods = [
  'list', 'get', 'create', 'cancelCreate', 'edit', 'resizeDisk', 'addDevice', 'editDevice', 'removeDevice', 'setBalloon', 'start', 'save', 'shutdown', 'agentInfo', 'agentPing', 'agentExec', 'setShutdownMode', 'destroy', 'reboot', 'reset', 'pause', 'resume',
  'delete', 'commandLine', 'screenshot', 'sendKeys', 'serialLog', 'serialLogRead', 'doctor', 'hostInfo', 'osList', 'inspectPath', 'listDir', 'previewCreate',
  'setVcpus', 'setCpuPinning', 'resizeMemory', 'hostCpuMemory', 'cpuModels', 'setKsm', 'setHugepages', 'hostDevices', 'bindVfio', 'releaseVfio', 'setSriovVfs', 'setVfConfig', 'createMdev', 'removeMdev', 'clone', 'setAutostart', 'listSnapshots', 'createSnapshot', 'revertSnapshot', 'deleteSnapshot', 'snapshotScreenshot',
  'statsHistory', 'statsLatest', 'watchStats', 'statsMetrics', 'hostSummary',
  'capabilities', 'connections', 'addConnection', 'removeConnection', 'daemonStatus', 'daemonStop',
  'migrate', 'cancelMigration', 'prepareIncomingMigration', 'finishIncomingMigration', 'abortIncomingMigration',
] as const satisfies readonly (keyof CoreApi)[];
