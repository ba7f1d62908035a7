// The qemu-ga wire protocol, without sockets: JSON lines in both directions, and a 0xFF byte the
// agent puts before its answer to guest-sync-delimited. A client cannot know what an earlier
// client left in the channel (a late answer to a command that timed out, half a line), so it
// sends 0xFF (the agent resets its parser on it), then guest-sync-delimited with a fresh id, drops
// everything up to the agent's 0xFF, and skips answers until the one carrying that id.
import type { AgentExecResult, AgentInfo, AgentInterface } from '../../common/guest-agent.ts';

export const SYNC_DELIMITER = 0xff;

export interface AgentMessage {
  return?: unknown;
  error?: { class?: string; desc?: string };
}

/** Splits the agent's byte stream into messages; until synced() it drops bytes up to the 0xFF delimiter. */
export class AgentReader {
  private text = '';
  private waitingForDelimiter = false;

  /** Drops everything up to (and with) the next 0xFF byte: call right before sending guest-sync-delimited. */
  expectDelimiter(): void {
    this.waitingForDelimiter = true;
    this.text = '';
  }

  /** The messages completed by this chunk (lines that are not JSON objects are skipped). */
  feed(chunk: Buffer): AgentMessage[] {
    let data = chunk;
    if (this.waitingForDelimiter) {
      const at = data.indexOf(SYNC_DELIMITER);
      if (at < 0) return [];
      this.waitingForDelimiter = false;
      data = data.subarray(at + 1);
    }
    // The agent sends UTF-8 JSON; 0xFF never occurs inside it, so stray ones are dropped.
    this.text += Buffer.from(data.filter((b) => b !== SYNC_DELIMITER)).toString('utf8');
    const out: AgentMessage[] = [];
    let nl: number;
    while ((nl = this.text.indexOf('\n')) >= 0) {
      const line = this.text.slice(0, nl).trim();
      this.text = this.text.slice(nl + 1);
      if (!line) continue;
      try {
        const msg: unknown = JSON.parse(line);
        if (msg && typeof msg === 'object' && !Array.isArray(msg)) out.push(msg as AgentMessage);
      } catch {
        // Garbage left over from an earlier client: not ours.
      }
    }
    return out;
  }
}

/** The bytes of a command: one JSON line. */
export function encodeCommand(execute: string, args?: Record<string, unknown>): Buffer {
  return Buffer.from(JSON.stringify(args === undefined ? { execute } : { execute, arguments: args }) + '\n', 'utf8');
}

/** The bytes that start a session: 0xFF (resets the agent's parser), then guest-sync-delimited. */
export function encodeSync(id: number): Buffer {
  return Buffer.concat([Buffer.from([SYNC_DELIMITER]), encodeCommand('guest-sync-delimited', { id })]);
}

/** Whether a message is the answer to our guest-sync-delimited (older answers carry other ids). */
export function isSyncAnswer(msg: AgentMessage, id: number): boolean {
  return msg.return === id;
}

interface RawExecStatus {
  exited?: boolean;
  exitcode?: number;
  signal?: number;
  'out-data'?: string;
  'err-data'?: string;
  'out-truncated'?: boolean;
  'err-truncated'?: boolean;
}

/** guest-exec-status's answer once exited: output base64-decoded. */
export function decodeExecStatus(raw: RawExecStatus): AgentExecResult {
  const res: AgentExecResult = {
    exitCode: typeof raw.exitcode === 'number' ? raw.exitcode : null,
    stdout: Buffer.from(raw['out-data'] ?? '', 'base64').toString('utf8'),
    stderr: Buffer.from(raw['err-data'] ?? '', 'base64').toString('utf8'),
  };
  if (typeof raw.signal === 'number') res.signal = raw.signal;
  if (raw['out-truncated'] || raw['err-truncated']) res.truncated = true;
  return res;
}

interface RawInterface {
  name?: string;
  'hardware-address'?: string;
  'ip-addresses'?: Array<{ 'ip-address'?: string; prefix?: number }>;
}

/** guest-network-get-interfaces without loopback, addresses as "ip/prefix". */
export function parseInterfaces(raw: unknown): AgentInterface[] {
  if (!Array.isArray(raw)) return [];
  return (raw as RawInterface[])
    .filter((i) => typeof i.name === 'string' && i.name !== 'lo' && !/^loopback/i.test(i.name))
    .map((i) => {
      const iface: AgentInterface = {
        name: i.name as string,
        addresses: (i['ip-addresses'] ?? []).filter((a) => typeof a['ip-address'] === 'string')
          .map((a) => (typeof a.prefix === 'number' ? `${a['ip-address']}/${a.prefix}` : (a['ip-address'] as string))),
      };
      const mac = i['hardware-address'];
      if (mac && mac !== '00:00:00:00:00:00') iface.mac = mac;
      return iface;
    });
}

/** guest-get-osinfo's answer in AgentInfo's shape. */
export function parseOsInfo(raw: unknown): AgentInfo['os'] {
  if (!raw || typeof raw !== 'object') return undefined;
  const r = raw as Record<string, unknown>;
  const s = (k: string): string | undefined => (typeof r[k] === 'string' ? (r[k] as string) : undefined);
  const os: NonNullable<AgentInfo['os']> = {};
  if (s('name')) os.name = s('name');
  if (s('version')) os.version = s('version');
  if (s('pretty-name')) os.prettyName = s('pretty-name');
  if (s('id')) os.id = s('id');
  if (s('kernel-release')) os.kernel = s('kernel-release');
  return os;
}
