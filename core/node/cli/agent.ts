// `hangar agent NAME info|ping|exec -- CMD ARGS...`: the guest agent from scripts (virsh's
// qemu-agent-command and guestinfo, with exec's output and exit code passed through).
import type { CoreApi } from '../../common/api.ts';
import { HangarError } from '../../common/errors.ts';
import type { AgentInfo } from '../../common/guest-agent.ts';

type WithCore = <T>(fn: (api: CoreApi) => Promise<T>) => Promise<T>;

export const AGENT_USAGE = 'hangar agent NAME info [--json] | ping | exec [--timeout S] [--input TEXT] -- CMD [ARGS...]';

/** The lines of `hangar agent NAME info` (also the Guest lines of `hangar show`). */
export function agentInfoLines(info: AgentInfo): string[] {
  if (!info.available) return [`Guest agent: not answering (${info.reason ?? 'unknown'})${info.fix ? `; ${info.fix}` : ''}`];
  const lines = [`Guest agent: qemu-ga ${info.version ?? ''}`.trimEnd()];
  if (info.os) lines.push(`Guest OS:    ${info.os.prettyName ?? [info.os.name, info.os.version].filter(Boolean).join(' ')}${info.os.kernel ? ` (kernel ${info.os.kernel})` : ''}`);
  if (info.hostname) lines.push(`Hostname:    ${info.hostname}`);
  for (const i of info.interfaces) lines.push(`Guest NIC ${i.name}: ${i.mac ?? ''} ${i.addresses.join(' ') || '(no address)'}`.replace(/ {2,}/g, ' '));
  return lines;
}

export async function agentCommand(
  name: string | undefined, sub: string | undefined, values: Record<string, unknown>, command: string[],
  withCore: WithCore, print: (s: string) => void, printErr: (s: string) => void,
): Promise<number> {
  if (!name || !sub) throw new HangarError('invalid-input', 'agent needs a VM name and what to do', AGENT_USAGE);
  switch (sub) {
    case 'info': {
      const info = await withCore((api) => api.agentInfo(name));
      if (values.json) print(JSON.stringify(info, null, 2));
      else print(agentInfoLines(info).join('\n'));
      return info.available ? 0 : 1;
    }
    case 'ping': {
      await withCore((api) => api.agentPing(name));
      print(`the guest agent of VM "${name}" answers`);
      return 0;
    }
    case 'exec': {
      if (!command.length) throw new HangarError('invalid-input', 'exec needs the command to run in the guest', AGENT_USAGE);
      const timeoutSec = values.timeout === undefined ? 30 : Number(values.timeout);
      if (!Number.isFinite(timeoutSec) || timeoutSec <= 0) throw new HangarError('invalid-input', `--timeout must be a positive number of seconds, got ${String(values.timeout)}`);
      const opts = { timeoutMs: Math.round(timeoutSec * 1000), ...(typeof values.input === 'string' ? { input: values.input } : {}) };
      const res = await withCore((api) => api.agentExec(name, command, opts));
      if (res.stdout) process.stdout.write(res.stdout);
      if (res.stderr) process.stderr.write(res.stderr);
      if (res.truncated) printErr('hangar: the guest agent cut the output (it keeps at most 16 MiB)');
      // Like a shell: 128 + the signal for a command killed by one.
      if (res.exitCode === null) return res.signal ? 128 + res.signal : 1;
      return res.exitCode;
    }
    default:
      throw new HangarError('invalid-input', `unknown agent command "${sub}"`, AGENT_USAGE);
  }
}
