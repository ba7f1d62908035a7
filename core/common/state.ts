// The VM state machine: which state each action is valid in, and the typed error otherwise.
import { HangarError } from './errors.ts';

export const vmStates = [
  'stopped', 'starting', 'running', 'paused', 'shutting-down', 'rebooting', 'stopping',
  'crashed', 'guest-error', 'broken',
  // QEMU is gone, its RAM and device state are in the VM's folder: start restores it.
  'saved',
] as const;
export type VmState = (typeof vmStates)[number];

export const vmActions = ['start', 'shutdown', 'destroy', 'reboot', 'reset', 'pause', 'resume', 'delete', 'edit', 'resize-disk', 'change-device', 'snapshot', 'clone', 'save', 'tune', 'migrate'] as const;
export type VmAction = (typeof vmActions)[number];

const validIn: Record<VmAction, readonly VmState[]> = {
  start: ['stopped', 'crashed', 'saved'],
  shutdown: ['running', 'rebooting'],
  // crashed too: Force Off clears what a crash left (a QEMU still there, its back ends) back to stopped.
  destroy: ['starting', 'running', 'paused', 'shutting-down', 'rebooting', 'guest-error', 'stopping', 'crashed'],
  reboot: ['running'],
  reset: ['running', 'paused', 'guest-error'],
  pause: ['running'],
  resume: ['paused'],
  delete: ['stopped', 'crashed', 'broken', 'saved'],
  edit: ['stopped', 'crashed'],
  // Offline with qemu-img, online with QMP block_resize.
  'resize-disk': ['stopped', 'crashed', 'running', 'paused'],
  // Saved while stopped; hotplugged (or saved as pending) while running or paused.
  'change-device': ['stopped', 'crashed', 'running', 'paused'],
  // Create, revert and delete: offline with qemu-img, live with QMP jobs.
  snapshot: ['stopped', 'crashed', 'running', 'paused'],
  // As virt-clone: the disks must not change while they are copied.
  clone: ['stopped', 'paused'],
  save: ['running', 'paused'],
  // vCPUs, pinning and memory: saved while stopped; live (or pending) while it runs.
  tune: ['stopped', 'crashed', 'running', 'paused'],
  // Live migration to another core: while it runs, every other action gets 'busy'.
  migrate: ['running', 'paused'],
};

/** States in which a QEMU process exists. */
export const activeStates: readonly VmState[] = ['starting', 'running', 'paused', 'shutting-down', 'rebooting', 'stopping', 'guest-error'];

export function isActive(state: VmState): boolean {
  return activeStates.includes(state);
}

export function canDo(action: VmAction, state: VmState): boolean {
  return validIn[action].includes(state);
}

const advice: Partial<Record<VmState, string>> = {
  stopped: 'start it first',
  crashed: 'start it again (see `hangar log` for what happened)',
  paused: 'resume it first',
  running: 'shut it down or force it off first',
  starting: 'wait for the start to finish',
  'shutting-down': 'wait for the shutdown, or force it off',
  stopping: 'wait for it to stop',
  rebooting: 'wait for the reboot to finish',
  'guest-error': 'force it off (destroy) and check its accelerator',
  broken: 'fix or delete its definition file',
  saved: 'start it (restores the saved state), or discard the saved state with `hangar start NAME --discard-saved`',
};

export function assertCan(action: VmAction, state: VmState, vmName: string): void {
  if (canDo(action, state)) return;
  throw new HangarError('invalid-state', `cannot ${action} VM "${vmName}": it is ${state}`,
    advice[state], { action, state, validIn: validIn[action] });
}
