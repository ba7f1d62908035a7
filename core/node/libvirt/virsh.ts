// Runs `virsh -c URI ...` (never through a shell: an argument array) and turns its failures into
// HangarErrors that say what went wrong and what to do. virsh is libvirt's own client, so the
// driver speaks every transport virsh does (local socket, qemu+ssh with the user's ssh set-up).
import { spawn } from 'node:child_process';
import { HangarError } from '../../common/errors.ts';
import type { ErrorCode } from '../../common/errors.ts';

export const VIRSH = 'virsh';
const DEFAULT_TIMEOUT_MS = 60_000;
const MAX_OUTPUT = 64 * 1024 * 1024;

export interface VirshOptions {
  /** Kill virsh after this long (default 60 s): a hung libvirtd or ssh must not hang the caller. */
  timeoutMs?: number;
  /** Written to virsh's stdin (for commands that read it; note `define /dev/stdin` fails where stdin is a socket pair, as node's pipes are on some systems: use a file). */
  input?: string;
}

/** The environment virsh runs in: messages in English (they are matched in classifyVirshError). */
export function virshEnv(): NodeJS.ProcessEnv {
  return { ...process.env, LC_ALL: 'C', LANG: 'C' };
}

/** Runs virsh against `uri` and resolves with its stdout; rejects with a HangarError. */
export async function runVirsh(uri: string, args: string[], opts: VirshOptions = {}): Promise<string> {
  return (await execVirsh(uri, args, opts)).stdout;
}

/**
 * Quotes one argument for virsh's own command-line parser (used when several commands run in
 * one virsh: `virsh -c URI "cmd1 ...; cmd2 ..."`). virsh splits on blanks and `;`, reads `#` as
 * a comment and `\` as an escape outside single quotes; inside single quotes everything is literal.
 */
export function virshQuote(arg: string): string {
  return `'${arg.replace(/'/g, "'\\''")}'`;
}

const SECTION = '@@hangar-virsh-section-7f3a@@';

/**
 * Runs several virsh commands in ONE virsh process (one connection to libvirtd instead of one
 * per command: the domain list of 100 domains is one process, not 100) and resolves with each
 * command's stdout. virsh goes on after a failed command and its exit status is the last
 * command's, so any "error:" line on stderr fails the whole batch.
 */
export async function runVirshBatch(uri: string, commands: string[][], opts: VirshOptions = {}): Promise<string[]> {
  const script = commands.map((c) => c.map(virshQuote).join(' ')).join(` ; echo ${SECTION} ; `);
  const { stdout, stderr } = await execVirsh(uri, [script], opts);
  if (/^error:/m.test(stderr)) throw classifyVirshError(uri, commands.map((c) => c.join(' ')), stderr, 0);
  const parts = stdout.split(new RegExp(`^${SECTION}\n?`, 'm'));
  if (parts.length !== commands.length) {
    throw new HangarError('internal', `virsh printed ${parts.length} sections for ${commands.length} commands`, undefined, { uri, commands, stdout, stderr });
  }
  return parts;
}

function execVirsh(uri: string, args: string[], opts: VirshOptions): Promise<{ stdout: string; stderr: string }> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn(VIRSH, ['-c', uri, ...args], {
      env: virshEnv(),
      // stdin is a pipe only when there is input: with a closed stdin an ssh password prompt
      // fails at once instead of waiting for an answer nobody can type.
      stdio: [opts.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
    const collect = (into: Buffer[]) => (d: Buffer): void => {
      size += d.length;
      if (size > MAX_OUTPUT) child.kill('SIGKILL');
      else into.push(d);
    };
    child.stdout?.on('data', collect(out));
    child.stderr?.on('data', collect(err));
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on('error', () => {}); // virsh may exit before reading it all; its exit status says why
      child.stdin.end(opts.input);
    }
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(e.code === 'ENOENT'
        ? new HangarError('host-missing', 'virsh (libvirt\'s client) is not installed on this computer',
          'install it: apt-get install libvirt-clients', { uri, args })
        : new HangarError('internal', `cannot run virsh: ${e.message}`, undefined, { uri, args }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (timedOut) {
        reject(new HangarError('timeout', `virsh ${args[0] ?? ''} on ${uri} did not answer within ${Math.round(timeoutMs / 1000)} s`,
          'check that libvirtd is responsive (virsh -c URI version), and for qemu+ssh:// that ssh logs in without a prompt', { uri, args }));
      } else if (size > MAX_OUTPUT) {
        reject(new HangarError('internal', `virsh ${args[0] ?? ''} printed more than ${MAX_OUTPUT} bytes`, undefined, { uri, args }));
      } else if (code !== 0) {
        reject(classifyVirshError(uri, args, stderr, code ?? (signal ? `signal ${signal}` : 'unknown')));
      } else {
        resolve({ stdout, stderr });
      }
    });
  });
}

/** virsh's error lines without their "error: " prefix, joined into one message. */
export function virshMessage(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean)
    .map((l) => l.replace(/^error:\s*/, ''));
  return lines.join('; ') || 'virsh failed without a message';
}

const CONNECT_HINT = 'start libvirtd (systemctl start libvirtd, or `virtlogd -d && libvirtd -d` where no service manager runs), '
  + 'or check the URI (qemu:///system, qemu:///session, qemu+ssh://user@host/system)';

interface Rule { re: RegExp; code: ErrorCode; hint: (uri: string) => string | undefined }

// First match wins: connection problems before per-domain ones (a refused connection also says "failed").
const rules: Rule[] = [
  { re: /authentication (failed|unavailable)|libvirt-sock[^\n]*Permission denied|access denied/i, code: 'permission',
    hint: () => 'add your user to the libvirt group (adduser $USER libvirt, then log in again), or use qemu:///session' },
  { re: /failed to connect to the hypervisor|Failed to connect socket|Cannot recv data|Cannot write data|no connection driver available|unexpected qemu URI path|End of file while reading data|Connection refused|Host key verification failed|Could not resolve hostname/i,
    code: 'daemon-unavailable', hint: () => CONNECT_HINT },
  { re: /failed to get domain|Domain not found|no domain with matching/i, code: 'not-found',
    hint: (uri) => `check the name: virsh -c ${uri} list --all (or hangar --connect ${uri} list)` },
  { re: /already exists|is already defined|already active|domain is already running/i, code: 'already-exists', hint: () => undefined },
  { re: /Requested operation is not valid|Operation not valid|domain is not running/i, code: 'invalid-state', hint: () => undefined },
  { re: /Timed out during operation|cannot acquire state change lock/i, code: 'busy',
    hint: () => 'another job holds the domain; wait a moment and try again' },
  { re: /XML error|XML document failed to validate|unsupported configuration|invalid argument|Failed to parse/i, code: 'invalid-input', hint: () => undefined },
  { re: /qemu unexpectedly closed the monitor|process exited while connecting to monitor|QEMU quit|internal error: qemu/i, code: 'qemu-failed',
    hint: () => 'see the domain\'s QEMU log (/var/log/libvirt/qemu/NAME.log on the libvirt host)' },
  { re: /Permission denied/i, code: 'permission', hint: () => 'the libvirt QEMU user (libvirt-qemu) must be able to read the files the domain uses' },
];

/** Maps virsh's stderr onto a HangarError code and hint (pure: unit-tested with real virsh messages). */
export function classifyVirshError(uri: string, args: string[], stderr: string, exitCode: number | string): HangarError {
  const message = virshMessage(stderr);
  const rule = rules.find((r) => r.re.test(stderr));
  const code: ErrorCode = rule?.code ?? 'internal';
  const hint = rule?.hint(uri) ?? (code === 'internal' ? `run it by hand to see more: virsh -c ${uri} ${args.join(' ')}` : undefined);
  const prefix = code === 'daemon-unavailable' || code === 'permission' ? `cannot reach libvirt at ${uri}: ` : `libvirt (${uri}): `;
  return new HangarError(code, prefix + message, hint, { uri, args, stderr, exitCode });
}
