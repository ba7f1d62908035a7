// Quitting while VMs run. Closing windows never stops VMs; an explicit Quit asks what to do
// when VMs are running: keep them running (the default: QEMU outlives the app, and the next
// app start or `hangar` command re-attaches), shut them all down first, or cancel.
import type { VmSummary } from '../core/common/api.ts';
import { isActive } from '../core/common/state.ts';

export type QuitChoice = 'keep' | 'shutdown' | 'cancel';

export const QUIT_BUTTONS = ['Keep Running and Quit', 'Shut Down All and Quit', 'Cancel'] as const;

export function runningMessage(count: number): string {
  return count === 1 ? '1 virtual machine is running' : `${count} virtual machines are running`;
}

export interface QuitDeps {
  /** The VMs the core knows (may reject or hang when the core is down). */
  listVms(): Promise<VmSummary[]>;
  /** Brings one VM down and resolves when it is stopped. */
  stopVm(vm: VmSummary): Promise<void>;
  ask(running: VmSummary[]): Promise<QuitChoice>;
  showError(message: string): Promise<void>;
  /** How long to wait for the VM list before quitting without asking. */
  listTimeoutMs?: number;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms);
    p.then((v) => { clearTimeout(t); resolve(v); }, (e: unknown) => { clearTimeout(t); reject(e); });
  });
}

/**
 * Decides whether the app may quit now. Resolves 'quit' (go ahead) or 'cancel'. When the core
 * cannot be asked, quitting goes ahead: VMs keep running, which is always safe.
 */
export async function confirmQuit(deps: QuitDeps): Promise<'quit' | 'cancel'> {
  let running: VmSummary[];
  try {
    running = (await withTimeout(deps.listVms(), deps.listTimeoutMs ?? 3000)).filter((v) => isActive(v.state));
  } catch {
    return 'quit';
  }
  if (running.length === 0) return 'quit';
  const choice = await deps.ask(running);
  if (choice === 'cancel') return 'cancel';
  if (choice === 'shutdown') {
    const results = await Promise.allSettled(running.map((vm) => deps.stopVm(vm)));
    const failed = results.flatMap((r, i) => (r.status === 'rejected'
      ? [`${running[i]!.name}: ${r.reason instanceof Error ? r.reason.message : String(r.reason)}`]
      : []));
    if (failed.length) {
      await deps.showError(`Some virtual machines could not be shut down and keep running:\n${failed.join('\n')}`);
    }
  }
  return 'quit';
}

/** What "shut down" means for a VM in each active state. */
export function stopPlan(state: VmSummary['state']): 'shutdown' | 'resume-then-shutdown' | 'destroy' | 'wait' {
  switch (state) {
    case 'running':
    case 'rebooting':
      return 'shutdown';
    case 'paused':
      return 'resume-then-shutdown';
    case 'shutting-down':
    case 'stopping':
      return 'wait';
    default:
      return 'destroy'; // starting, guest-error: no guest that could shut down cleanly
  }
}
