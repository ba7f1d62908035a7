// libvirt's domain states and reasons (the numbers `virsh domstats --state` prints, from
// virDomainState and the virDomain*Reason enums) mapped onto Hangar's VmState, with the reason
// in words where the state alone would hide it (crashed, paused after an I/O error ...).
import type { VmState } from '../../common/state.ts';

export const LIBVIRT_STATE = {
  nostate: 0, running: 1, blocked: 2, paused: 3, shutdown: 4, shutoff: 5, crashed: 6, pmsuspended: 7,
} as const;

/** What libvirt reports for one domain: the raw numbers, kept so actions can tell libvirt's cases apart. */
export interface LibvirtStatus {
  state: number;
  reason: number;
  /** A managed save image exists (virsh managedsave): start restores it. */
  managedSave: boolean;
}

const pausedReasons: Record<number, string> = {
  1: 'paused by a user', 2: 'paused for migration', 3: 'paused while its state is saved', 4: 'paused while its memory is dumped',
  5: 'paused after a disk I/O error (a disk full or failing)', 6: 'paused by its watchdog', 7: 'paused after a snapshot revert',
  8: 'paused while shutting down', 9: 'paused for a snapshot', 10: 'paused after the guest crashed (panic)',
  11: 'paused while starting up', 12: 'paused for post-copy migration', 13: 'paused: post-copy migration failed',
  14: 'paused after an error in a libvirt API',
};

/** Hangar's state (and the reason in words when it matters) for a libvirt state. */
export function mapLibvirtState(s: LibvirtStatus): { state: VmState; reason?: string } {
  switch (s.state) {
    case LIBVIRT_STATE.running:
    case LIBVIRT_STATE.blocked: // blocked on a resource: still running as far as a user is concerned
      return { state: 'running' };
    case LIBVIRT_STATE.paused:
      if (s.reason === 11) return { state: 'starting' };
      return withReason('paused', s.reason === 1 ? undefined : pausedReasons[s.reason]);
    case LIBVIRT_STATE.shutdown:
      return { state: 'shutting-down' };
    case LIBVIRT_STATE.shutoff:
      if (s.managedSave) return { state: 'saved' };
      if (s.reason === 3) return { state: 'crashed', reason: 'the domain crashed (libvirt: shut off, crashed)' };
      if (s.reason === 6) return { state: 'stopped', reason: 'the last start failed (see the domain\'s QEMU log)' };
      return { state: 'stopped' };
    case LIBVIRT_STATE.crashed:
      // on_crash=preserve: QEMU is still there; Force Off (destroy) clears it, start starts afresh.
      return { state: 'crashed', reason: s.reason === 1 ? 'the guest kernel panicked (QEMU kept for inspection)' : 'the domain crashed (QEMU kept for inspection)' };
    case LIBVIRT_STATE.pmsuspended:
      return { state: 'paused', reason: 'suspended to RAM by the guest (S3); resume wakes it' };
    default:
      return { state: 'starting', reason: `libvirt reports no state (${s.state})` };
  }
}

function withReason(state: VmState, reason: string | undefined): { state: VmState; reason?: string } {
  return reason === undefined ? { state } : { state, reason };
}

/** libvirt counts the domain as active (a QEMU process exists) in every state but shut off. */
export function libvirtActive(s: LibvirtStatus): boolean {
  return s.state !== LIBVIRT_STATE.shutoff;
}
