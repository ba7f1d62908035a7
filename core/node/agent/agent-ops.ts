// What the core asks qemu-ga, one session per question (see client.ts for the timeouts).
import { HangarError } from '../../common/errors.ts';
import type { AgentExecOptions, AgentExecResult, AgentInfo } from '../../common/guest-agent.ts';
import { withAgent } from './client.ts';
import type { AgentSession } from './client.ts';
import { decodeExecStatus, parseInterfaces, parseOsInfo } from './protocol.ts';

const DEFAULT_EXEC_TIMEOUT_MS = 30_000;
const EXEC_POLL_MS = 100;

/** Asks a command and ignores its failure (an agent built without it, or one that refuses it). */
async function optional<T>(s: AgentSession, execute: string): Promise<T | undefined> {
  try {
    return await s.command<T>(execute, undefined, { timeoutMs: 5000 });
  } catch (e) {
    if (e instanceof HangarError && e.code === 'qmp-error') return undefined;
    throw e;
  }
}

/** The agent's version, the guest's OS, hostname and interfaces; `available: false` with the reason when there is no answer. */
export async function readAgentInfo(socketPath: string, syncTimeoutMs?: number): Promise<AgentInfo> {
  try {
    return await queryAgentInfo(socketPath, syncTimeoutMs);
  } catch (e) {
    const err = e as HangarError;
    const out: AgentInfo = { available: false, interfaces: [], reason: err.message };
    if (err.hint) out.fix = err.hint;
    return out;
  }
}

/** As readAgentInfo, but a failure throws (background: see withAgent; 'busy' when it gave way). */
export function queryAgentInfo(socketPath: string, syncTimeoutMs?: number, opts: { background?: boolean } = {}): Promise<AgentInfo> {
  return withAgent(socketPath, async (s) => {
    const info: AgentInfo = { available: true, interfaces: [] };
    const gi = await s.command<{ version?: string }>('guest-info');
    if (gi?.version) info.version = gi.version;
    const os = parseOsInfo(await optional(s, 'guest-get-osinfo'));
    if (os) info.os = os;
    const host = await optional<{ 'host-name'?: string }>(s, 'guest-get-host-name');
    if (host?.['host-name']) info.hostname = host['host-name'];
    info.interfaces = parseInterfaces(await optional(s, 'guest-network-get-interfaces'));
    return info;
  }, syncTimeoutMs, opts);
}

/** guest-ping: resolves when the agent answers, throws 'timeout' when it does not. */
export async function pingAgent(socketPath: string, syncTimeoutMs?: number): Promise<void> {
  await withAgent(socketPath, (s) => s.command('guest-ping'), syncTimeoutMs);
}

/** Runs argv in the guest (guest-exec) and waits for it (guest-exec-status), output decoded. */
export async function agentExec(socketPath: string, argv: string[], opts: AgentExecOptions = {}): Promise<AgentExecResult> {
  if (!argv.length || !argv[0]) throw new HangarError('invalid-input', 'give the command to run in the guest');
  const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
  return withAgent(socketPath, async (s) => {
    const args: Record<string, unknown> = { path: argv[0], arg: argv.slice(1), 'capture-output': true };
    if (opts.input !== undefined) args['input-data'] = Buffer.from(opts.input, 'utf8').toString('base64');
    const started = await s.command<{ pid: number }>('guest-exec', args);
    if (typeof started?.pid !== 'number') throw new HangarError('qmp-error', 'guest agent: guest-exec gave no process id');
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const st = await s.command<{ exited?: boolean }>('guest-exec-status', { pid: started.pid });
      if (st?.exited) return decodeExecStatus(st);
      if (Date.now() > deadline) {
        throw new HangarError('timeout', `the command did not finish within ${timeoutMs / 1000} s in the guest (it goes on running there, pid ${started.pid})`);
      }
      await new Promise((r) => setTimeout(r, EXEC_POLL_MS));
    }
  });
}

/** guest-shutdown (powerdown or reboot); it answers only on failure, so a short wait for an error. */
export async function agentShutdown(socketPath: string, mode: 'powerdown' | 'reboot', syncTimeoutMs?: number): Promise<void> {
  await withAgent(socketPath, (s) => s.command('guest-shutdown', { mode }, { noReply: true, timeoutMs: 1000 }), syncTimeoutMs);
}

/** Sets the guest's clock from its RTC (guest-set-time without a time), after a resume or restore. */
export async function agentSyncTime(socketPath: string, syncTimeoutMs?: number): Promise<void> {
  await withAgent(socketPath, (s) => s.command('guest-set-time'), syncTimeoutMs);
}

/** Freezes the guest's filesystems; returns how many were frozen. */
export async function agentFreeze(socketPath: string, syncTimeoutMs?: number): Promise<number> {
  return withAgent(socketPath, async (s) => (await s.command<number>('guest-fsfreeze-freeze', undefined, { timeoutMs: 30_000 })) ?? 0, syncTimeoutMs);
}

export async function agentThaw(socketPath: string): Promise<void> {
  await withAgent(socketPath, (s) => s.command('guest-fsfreeze-thaw', undefined, { timeoutMs: 30_000 }));
}
