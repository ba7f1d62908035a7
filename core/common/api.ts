// The core's API contract, shared by the CLI, the desktop windows and browser mode.
import type { VmDefinition } from './model.ts';
import type { VmState } from './state.ts';

export interface VmSummary {
  id: string;
  name: string;
  state: VmState;
  /** Why the VM is broken / crashed / in guest-error, in words. */
  reason?: string;
  vcpus?: number;
  memoryMiB?: number;
  pid?: number;
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
}

export interface ShutdownOptions {
  /** Seconds before forcing off; default: the VM's shutdownTimeoutSec. */
  timeoutSec?: number;
  /** Resolve only when the VM is stopped. */
  wait?: boolean;
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

/** Methods the core serves. `ref` is a VM name or id. */
export interface CoreApi {
  list(): Promise<VmSummary[]>;
  get(ref: string): Promise<VmInfo>;
  create(req: CreateVmRequest): Promise<VmInfo>;
  /** Cancels a create still running (or queued) by its requestId; true if one was cancelled. */
  cancelCreate(requestId: string): Promise<boolean>;
  edit(ref: string, patch: Record<string, unknown>): Promise<VmInfo>;
  start(ref: string): Promise<VmInfo>;
  shutdown(ref: string, opts?: ShutdownOptions): Promise<VmInfo>;
  destroy(ref: string): Promise<VmInfo>;
  reboot(ref: string): Promise<VmInfo>;
  reset(ref: string): Promise<VmInfo>;
  pause(ref: string): Promise<VmInfo>;
  resume(ref: string): Promise<VmInfo>;
  delete(ref: string, opts?: DeleteOptions): Promise<{ deletedFiles: string[]; keptFiles: string[] }>;
  commandLine(ref: string): Promise<string[]>;
  /** Serial output captured so far (log files, oldest first), base64. */
  serialLog(ref: string, maxBytes?: number): Promise<string>;
  doctor(): Promise<DoctorCheckInfo[]>;
  daemonStatus(): Promise<DaemonStatus>;
  daemonStop(): Promise<void>;
}

/** Events the core pushes; they only invalidate, clients re-fetch (as cockpit-machines does). */
export interface CoreEvents {
  vmChanged(e: { id: string; name: string; state: VmState }): void;
  vmListChanged(): void;
  /** Progress of a long create (disk copies), by the request's requestId; fraction 0..1. */
  createProgress(e: { requestId: string; step: string; fraction: number }): void;
}

export const coreApiMethods = [
  'list', 'get', 'create', 'cancelCreate', 'edit', 'start', 'shutdown', 'destroy', 'reboot', 'reset', 'pause', 'resume',
  'delete', 'commandLine', 'serialLog', 'doctor', 'daemonStatus', 'daemonStop',
] as const satisfies readonly (keyof CoreApi)[];
