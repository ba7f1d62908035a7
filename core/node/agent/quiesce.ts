// Filesystem freeze around a live disk-only snapshot, as libvirt's --quiesce does: the guest
// flushes and holds its writes (guest-fsfreeze-freeze) while the disks are snapshotted, and thaws
// in any case afterwards. Best effort: without an agent the snapshot is taken anyway (crash
// consistent, like pulling the plug), and the note says which of the two it is.
import { agentFreeze, agentThaw } from './agent-ops.ts';

/** A guest with the channel but no agent delays the snapshot by this much at most. */
const FREEZE_SYNC_TIMEOUT_MS = 2000;

export async function withGuestFrozen<T>(socket: string | null, fn: () => Promise<T>, log: (line: string) => Promise<void>): Promise<{ result: T; note: string }> {
  if (!socket) return { result: await fn(), note: 'guest filesystems not frozen (no guest agent channel): crash-consistent' };
  let frozen: number;
  try {
    frozen = await agentFreeze(socket, FREEZE_SYNC_TIMEOUT_MS);
  } catch (e) {
    return { result: await fn(), note: `guest filesystems not frozen (${(e as Error).message}): crash-consistent` };
  }
  try {
    return { result: await fn(), note: `guest filesystems frozen by the guest agent (${frozen})` };
  } finally {
    // A guest left frozen hangs every writer in it: thaw is tried even when the snapshot failed.
    await agentThaw(socket).catch((e: unknown) => log(`thawing the guest filesystems failed: ${(e as Error).message}`));
  }
}
