// A byte stream to a Hangar core on another machine: the user's own `ssh` (their keys, agent,
// known_hosts, ~/.ssh/config) runs `hangar daemon stdio` there, which relays to that machine's
// core socket, the way libvirt's qemu+ssh:// runs virt-ssh-helper. Each channel (RPC, one
// console, one display) is one ssh session carrying the same protocol as the local socket.
import { spawn } from 'node:child_process';
import { Duplex } from 'node:stream';
import type { Readable, Writable } from 'node:stream';
import { HangarError } from '../../common/errors.ts';
import { shellQuote } from '../../common/shell.ts';
import type { ConnectionTarget } from '../../common/connections.ts';
import { join } from 'node:path';
import { readFirstLine } from '../rpc/framing.ts';
import { runtimeDir } from '../paths.ts';

export type SshTarget = Extract<ConnectionTarget, { kind: 'hangar-ssh' }>;

/** The first line `hangar daemon stdio` writes: proves a Hangar answered, not a login banner or a shell. */
export const STDIO_HELLO = { hangar: 'stdio', version: 1 } as const;

const HELLO_TIMEOUT_MS = 30_000;

export interface SshOptions {
  /** Never prompt (a core without a terminal): fail with ssh's message instead of hanging. */
  batch?: boolean;
  env?: NodeJS.ProcessEnv;
  /**
   * A control socket to reuse (ssh -o ControlPath): a login made once in a terminal (sshLoginArgs)
   * carries every later channel, so the UI host never needs to answer a prompt itself.
   */
  controlPath?: string;
}

/** Where Hangar's ssh login masters live: the private runtime dir (%C: a hash of host, port and user). */
export function sshControlPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(runtimeDir(env), 'ssh-%C');
}

/** Where the user is: `[user@]host` with port, as ssh's own words. */
export function sshDestination(t: SshHost): string {
  return `${t.user ? `${t.user}@` : ''}${t.host}${t.port ? `:${t.port}` : ''}`;
}

export interface SshHost { host: string; user?: string; port?: number }

/**
 * The options every ssh Hangar runs starts with: who and which port, and HANGAR_SSH_CONFIG (an
 * `ssh -F` file, used by the tests). The caller adds its own options, then `--` and the host.
 */
export function sshHostArgs(t: SshHost, env: NodeJS.ProcessEnv = process.env): string[] {
  const args: string[] = [];
  if (env.HANGAR_SSH_CONFIG) args.push('-F', env.HANGAR_SSH_CONFIG);
  if (t.port) args.push('-p', String(t.port));
  if (t.user) args.push('-l', t.user);
  return args;
}

/** sshHostArgs plus the channel options: BatchMode (never ask) and the login master's ControlPath. */
export function sshChannelArgs(t: SshHost, opts: SshOptions = {}): string[] {
  const args = sshHostArgs(t, opts.env);
  if (opts.batch) args.push('-o', 'BatchMode=yes');
  if (opts.controlPath) args.push('-o', `ControlPath=${opts.controlPath}`);
  return args;
}

/** ssh's argv for running remoteArgv on the target (HANGAR_SSH_CONFIG: an ssh -F file, used by the tests). */
export function sshArgs(t: SshHost, remoteArgv: string[], opts: SshOptions = {}): string[] {
  const args = sshChannelArgs(t, opts);
  // No tty: the stream carries binary RPC and console bytes. `--` ends ssh's options.
  args.push('-T', '-e', 'none', '--', t.host, remoteArgv.map(shellQuote).join(' '));
  return args;
}

/**
 * A login in a terminal (the app shows it in xterm: host key question, password, passphrase):
 * ssh authenticates, then keeps a master connection in the background for 10 minutes after its
 * last channel, which every channel with the same controlPath uses without asking again.
 */
export function sshLoginArgs(t: SshHost, controlPath: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const args = sshHostArgs(t, env);
  args.push('-M', '-N', '-o', 'ControlPersist=10m', '-o', `ControlPath=${controlPath}`, '--', t.host);
  return args;
}

/** The remote command: the core's `daemon stdio`, with the target's HANGAR_* environment. */
export function remoteStdioCommand(t: SshTarget): string[] {
  const env = Object.entries(t.env ?? {}).map(([k, v]) => `${k}=${v}`);
  return [...(env.length ? ['env', ...env] : []), t.command ?? 'hangar', 'daemon', 'stdio'];
}

/** Turns how ssh ended (before the remote core said hello) into an error with the fix. */
export function sshFailure(t: SshTarget, code: number | null, stderr: string): HangarError {
  const dest = sshDestination(t);
  const last = stderr.trim().split('\n').filter((l) => l.trim()).pop()?.trim() ?? '';
  const cmd = (t.command ?? 'hangar');
  if (code === 127 || /command not found|No such file or directory/.test(stderr)) {
    return new HangarError('host-missing', `Hangar is not installed on ${dest}: ${last || `"${cmd}" was not found`}`,
      `install Hangar there, or name its path in the URI: ssh://${dest}?command=/path/to/hangar`);
  }
  if (code === 255) {
    return new HangarError('daemon-unavailable', `ssh to ${dest} failed: ${last || 'no reason given'}`,
      `check that \`ssh ${dest}\` works in a terminal (host key, keys or password)`);
  }
  return new HangarError('daemon-unavailable', `the Hangar core on ${dest} did not answer (ssh exited with ${code ?? 'a signal'}${last ? `: ${last}` : ''})`,
    `run \`ssh ${dest} ${cmd} daemon status\` to see why`);
}

/** A child's stdout and stdin as one stream, with back-pressure both ways. */
export class PipePair extends Duplex {
  constructor(private readonly out: Readable, private readonly inp: Writable) {
    super();
    out.on('data', (d: Buffer) => { if (!this.push(d)) out.pause(); });
    out.once('end', () => this.push(null));
    out.on('error', (e) => this.destroy(e));
    inp.on('error', () => {}); // EPIPE after the child went: the close path reports it
  }

  override _read(): void { this.out.resume(); }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (this.inp.destroyed) { cb(); return; }
    this.inp.write(chunk, () => cb());
  }

  override _final(cb: (e?: Error | null) => void): void { this.inp.end(() => cb()); }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.inp.destroy();
    this.out.destroy();
    cb(err);
  }
}

/**
 * Opens one channel to the remote core: resolves with a stream once the remote `daemon stdio`
 * said hello (so a failed login is an error here, with ssh's own words, not a closed stream later).
 */
export async function openSshStream(t: SshTarget, opts: SshOptions = {}): Promise<Duplex> {
  const child = spawn('ssh', sshArgs(t, remoteStdioCommand(t), opts), { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString('utf8')).slice(-4096); });
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const spawnError = new Promise<never>((_r, reject) => child.once('error', (e: NodeJS.ErrnoException) => {
    reject(e.code === 'ENOENT'
      ? new HangarError('host-missing', 'ssh is not installed on this computer', 'apt-get install openssh-client')
      : new HangarError('daemon-unavailable', `cannot run ssh: ${e.message}`));
  }));
  const stream = new PipePair(child.stdout, child.stdin);
  stream.on('error', () => {});
  // ssh gone = the channel is gone, whichever side closed first.
  void exited.then(() => { if (!stream.destroyed) stream.destroy(); });
  stream.once('close', () => { if (child.exitCode === null) child.kill('SIGTERM'); });
  let first: { line: string; rest: Buffer };
  try {
    first = await Promise.race([readFirstLine(stream, HELLO_TIMEOUT_MS), spawnError]);
  } catch (e) {
    if (e instanceof HangarError) throw e;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      throw new HangarError('timeout', `no answer from the Hangar core on ${sshDestination(t)} within ${HELLO_TIMEOUT_MS / 1000} s`,
        `check that \`ssh ${sshDestination(t)}\` works without questions, and that Hangar runs there`);
    }
    throw sshFailure(t, await exited, stderr);
  }
  let hello: unknown;
  try { hello = JSON.parse(first.line); } catch { hello = null; }
  if ((hello as { hangar?: string } | null)?.hangar !== STDIO_HELLO.hangar) {
    stream.destroy();
    throw new HangarError('daemon-unavailable', `${sshDestination(t)} did not answer as a Hangar core (it printed "${first.line.slice(0, 80)}")`,
      'remove what the remote login prints on non-interactive shells, or name the right command with ?command=');
  }
  if (first.rest.length) stream.unshift(first.rest);
  return stream;
}
