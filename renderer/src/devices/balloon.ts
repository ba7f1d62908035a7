// The memory balloon's target on a running VM: when the form is offered (and why not), the
// typed target checked as the core would, and the status line. The figure follows the guest as it
// gives memory back: the core reports it in VmInfo.balloon (QEMU's BALLOON_CHANGE events).
import type { PendingChange } from '../../../core/common/api.ts';
import type { VmDefinition } from '../../../core/common/model.ts';
import type { VmState } from '../../../core/common/state.ts';

/** Below this a Linux guest stalls; the UI refuses it before asking. */
export const MIN_BALLOON_MIB = 16;

export type BalloonAvailability = { available: true } | { available: false; reason: string };

/** The target form needs a QEMU that runs with the balloon: a running or paused VM whose balloon is not pending. */
export function balloonAvailability(state: VmState | undefined, def: VmDefinition | undefined, pending: readonly PendingChange[] = []): BalloonAvailability {
  if (!def?.balloon) return { available: false, reason: 'This VM has no memory balloon: add one (it applies at next boot).' };
  if (state !== 'running' && state !== 'paused') return { available: false, reason: 'The guest memory target needs a running VM: start it to set one.' };
  if (pending.some((p) => p.kind === 'balloon' && p.change === 'add')) {
    return { available: false, reason: 'The balloon is added at next boot: restart the VM to set a guest memory target.' };
  }
  return { available: true };
}

export type BalloonTargetCheck = { ok: true; targetMiB: number } | { ok: false; error: string };

/** The typed target: a whole number of MiB from MIN_BALLOON_MIB to the VM's memory (the balloon only gives memory back). */
export function parseBalloonTarget(text: string | number, memoryMiB: number): BalloonTargetCheck {
  const t = String(text).trim();
  if (!/^\d+$/.test(t)) return { ok: false, error: `the target is a whole number of MiB, ${MIN_BALLOON_MIB} to ${memoryMiB}` };
  const n = Number(t);
  if (n < MIN_BALLOON_MIB) return { ok: false, error: `at least ${MIN_BALLOON_MIB} MiB` };
  if (n > memoryMiB) return { ok: false, error: `at most the VM's ${memoryMiB} MiB (the balloon only gives memory back)` };
  return { ok: true, targetMiB: n };
}

export interface BalloonFigures { targetMiB: number; actualMiB: number }

export function balloonStatusText(b: BalloonFigures): string {
  return `target ${b.targetMiB} MiB, the guest has ${b.actualMiB} MiB now`;
}

/** What to show: the core's live figure (VmInfo.balloon) when there is one, else the last answer to a set. */
export function currentBalloon(live: BalloonFigures | undefined, lastAnswer: BalloonFigures | undefined): BalloonFigures | undefined {
  return live ?? lastAnswer;
}
