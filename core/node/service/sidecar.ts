// A sidecar is anything that lives beside one QEMU run: a back-end process (swtpm, passt,
// qemu-storage-daemon, virtiofsd) or host state held for the run (devices bound to vfio-pci).
// VmInstance walks the one ordered list (sidecar-list.ts) forward to check and start them, and in
// reverse to stop them on every path a run ends by, so no back end has its own lifecycle code
// there (libvirt's qemuExtDevicesStart/Stop play this part).
import type { VmDefinition } from '../../common/model.ts';
import type { HostAssignment } from '../../common/host-devices.ts';
import type { VmRuntimePaths } from '../paths.ts';
import type { ArgvContext } from '../qemu/vm-argv.ts';

/** Where a VM's sidecars keep their files, and its event log. */
export interface SidecarContext {
  /** The VM folder: persistent state (TPM) and logs. */
  vmDir: string;
  /** The VM's private runtime dir: sockets and pidfiles. */
  paths: VmRuntimePaths;
  /** Appends a line to the VM's event log (<vmDir>/logs/hangar.log). */
  log(text: string): Promise<void>;
}

/** A sidecar of a running QEMU: the definition it was started with. */
export interface SidecarRunContext extends SidecarContext {
  def: VmDefinition;
}

/** One start in progress. */
export interface SidecarStartContext extends SidecarRunContext {
  /** What the user should know about this start (shown as the VM's start notes). */
  notes: string[];
  /** Every host device the VM definitions name, and whether their VMs run. */
  assignments(): HostAssignment[];
}

export interface Sidecar {
  readonly name: string;
  /** Whether this definition needs it; an unwanted sidecar is neither checked nor started. */
  wanted(def: VmDefinition): boolean;
  /** Refuses before anything runs (a missing program, a device that cannot be assigned ...). */
  check(def: VmDefinition, ctx: SidecarStartContext): Promise<void>;
  start(ctx: SidecarStartContext): Promise<void>;
  /**
   * Stops it and removes its files. Called for every sidecar in the list (wanted, started or
   * not) after QEMU is gone, after a failed start and before a start (leftovers): so it finds
   * what runs from the runtime dir, never from the definition (which may have changed since),
   * does nothing when nothing runs, and does not throw for what is already gone.
   */
  stop(ctx: SidecarContext): Promise<void>;
  /** A restarted core adopted a running QEMU. Absent: its back end keeps running untouched. */
  reattach?(ctx: SidecarRunContext): Promise<void>;
  /** What it adds to QEMU's command line (e.g. the socket QEMU connects to). */
  argv?(ctx: SidecarRunContext): Partial<ArgvContext>;
  /**
   * The processes it runs for this VM now, found from the runtime dir (as stop finds them), so
   * one that dies while QEMU runs is noticed. Absent: nothing to watch (host state, no process).
   */
  processes?(ctx: SidecarContext): Promise<BackendProcess[]>;
}

/** A back-end process beside QEMU, named for the user. */
export interface BackendProcess {
  label: string;
  pid: number;
}

/** The wanted sidecars' checks, in list order. */
export async function checkSidecars(list: readonly Sidecar[], ctx: SidecarStartContext): Promise<void> {
  for (const s of list) if (s.wanted(ctx.def)) await s.check(ctx.def, ctx);
}

/** Starts the wanted sidecars in list order; on a failure stops nothing (the caller's failure path stops them all). */
export async function startSidecars(list: readonly Sidecar[], ctx: SidecarStartContext): Promise<void> {
  for (const s of list) if (s.wanted(ctx.def)) await s.start(ctx);
}

/** Stops every sidecar in reverse list order; one that fails does not keep the others running. */
export async function stopSidecars(list: readonly Sidecar[], ctx: SidecarContext): Promise<void> {
  for (const s of [...list].reverse()) await s.stop(ctx).catch(() => {});
}

/** A restarted core found QEMU alive: each wanted sidecar may adopt its back end; none is restarted. */
export async function reattachSidecars(list: readonly Sidecar[], ctx: SidecarRunContext): Promise<void> {
  for (const s of list) if (s.wanted(ctx.def)) await s.reattach?.(ctx);
}

/** The wanted sidecars' additions to the argv context. */
export function sidecarArgv(list: readonly Sidecar[], ctx: SidecarRunContext): Partial<ArgvContext> {
  return Object.assign({}, ...list.filter((s) => s.wanted(ctx.def)).map((s) => s.argv?.(ctx) ?? {})) as Partial<ArgvContext>;
}

/** Every process the sidecars run for this VM now (for the watch that notices one dying). */
export async function sidecarProcesses(list: readonly Sidecar[], ctx: SidecarContext): Promise<BackendProcess[]> {
  const all: BackendProcess[] = [];
  for (const s of list) if (s.processes) all.push(...await s.processes(ctx).catch(() => []));
  return all;
}
