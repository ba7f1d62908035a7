// A throw-away OpenSSH server for tests (Debian's openssh-server): /usr/sbin/sshd in the foreground
// on 127.0.0.1 at a free port, with its own host key and one client key, both made with ssh-keygen
// in a temporary directory. Nothing outside that directory changes (not /etc/ssh, not ~/.ssh):
// sshd reads the authorized key from the directory (AuthorizedKeysFile), and the ssh client is
// pointed at it with a client config file, `ssh -F <configFile> hangar-test-sshd ...`.
import { spawn, execFile } from 'node:child_process';
import { accessSync, constants, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port.ts';

const SSHD = '/usr/sbin/sshd';
const SSH_KEYGEN = '/usr/bin/ssh-keygen';
/** The Host name in the client config (127.0.0.1 is matched too). */
export const SSHD_HOST_ALIAS = 'hangar-test-sshd';

export interface SshdOptions {
  /**
   * true (default): known_hosts already holds the server's key. false: it starts empty, so ssh
   * asks "Are you sure you want to continue connecting" (answer it in a pty) or, in batch mode,
   * refuses.
   */
  trustHostKey?: boolean;
  /**
   * BatchMode in the client config: no prompts at all. Default: yes when the host key is trusted,
   * no when it is not (the point of an untrusted key is the prompt). `-o BatchMode=...` on the
   * command line wins over it.
   */
  batchMode?: boolean;
}

export interface SshdHandle {
  port: number;
  /** The temporary directory with keys, configs and the log; removed by stop(). */
  dir: string;
  /** ssh CLIENT config: `ssh -F configFile hangar-test-sshd CMD`. */
  configFile: string;
  /** The client's UserKnownHostsFile. */
  knownHosts: string;
  /** The client's private key (its public half is the only authorized key). */
  identity: string;
  /** The user ssh logs in as (this process's user: root in the test environment). */
  user: string;
  /** The server's own config and its log (sshd -e). */
  sshdConfig: string;
  logFile: string;
  /** The server's public host key line ("ssh-ed25519 AAAA... comment"). */
  hostKey: string;
  /** `known_hosts` line for the server, as ssh writes it. */
  knownHostsLine: string;
  /** ['-F', configFile, 'hangar-test-sshd', ...rest]: argv for ssh. */
  sshArgs(...rest: string[]): string[];
  pid: number;
  /** Stops sshd and every session it started, removes the directory. Safe to call twice. */
  stop(): Promise<void>;
}

function need(file: string, pkg: string): void {
  try {
    accessSync(file, constants.X_OK);
  } catch {
    throw new Error(`${file} is missing: the SSH tests need Debian's ${pkg} (\`npm run setup -- --test\` installs it, or apt-get install ${pkg})`);
  }
}


/** Resolves true once the port answers with an SSH banner; false if it does not in time. */
async function bannerSeen(port: number, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let buf = '';
    const done = (ok: boolean): void => { clearTimeout(t); s.destroy(); resolve(ok); };
    const t = setTimeout(() => done(false), ms);
    s.on('data', (d) => { buf += d.toString('latin1'); if (buf.includes('SSH-2.0-')) done(true); });
    s.on('error', () => done(false));
    s.on('close', () => done(false));
  });
}

export async function startSshd(opts: SshdOptions = {}): Promise<SshdHandle> {
  need(SSHD, 'openssh-server');
  need(SSH_KEYGEN, 'openssh-client');
  const trust = opts.trustHostKey ?? true;
  const batch = opts.batchMode ?? trust;
  const user = userInfo().username;
  // Privilege separation: sshd refuses to start as root without this directory (normally made by
  // the service unit, which does not run here).
  if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });

  const dir = mkdtempSync(join(tmpdir(), 'hangar-sshd-'));
  try {
    const hostKeyFile = join(dir, 'ssh_host_ed25519_key');
    const identity = join(dir, 'id_ed25519');
    const keygen = promisify(execFile);
    await Promise.all([
      keygen(SSH_KEYGEN, ['-q', '-t', 'ed25519', '-N', '', '-C', 'hangar-test-host', '-f', hostKeyFile]),
      keygen(SSH_KEYGEN, ['-q', '-t', 'ed25519', '-N', '', '-C', 'hangar-test-client', '-f', identity]),
    ]);
    const authorizedKeys = join(dir, 'authorized_keys');
    writeFileSync(authorizedKeys, readFileSync(`${identity}.pub`), { mode: 0o600 });
    const hostKey = readFileSync(`${hostKeyFile}.pub`, 'utf8').trim();
    const knownHosts = join(dir, 'known_hosts');
    const sshdConfig = join(dir, 'sshd_config');
    const configFile = join(dir, 'ssh_config');
    const logFile = join(dir, 'sshd.log');

    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      writeFileSync(sshdConfig, [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${hostKeyFile}`,
        'PidFile none',
        `AuthorizedKeysFile ${authorizedKeys}`,
        'PermitRootLogin prohibit-password',
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        // The temp directory is not the user's home: skip sshd's ownership checks of it.
        'StrictModes no',
        // No PAM session (logind, motd, limits): faster, and nothing host-wide is touched.
        'UsePAM no',
        'PrintMotd no',
        'PrintLastLog no',
        'UseDNS no',
        'Subsystem sftp internal-sftp',
        'LogLevel VERBOSE',
        '',
      ].join('\n'));
      const knownHostsLine = `[127.0.0.1]:${port} ${hostKey}`;
      writeFileSync(knownHosts, trust ? `${knownHostsLine}\n` : '');
      writeFileSync(configFile, [
        `Host ${SSHD_HOST_ALIAS} 127.0.0.1`,
        '  HostName 127.0.0.1',
        `  Port ${port}`,
        `  User ${user}`,
        `  IdentityFile ${identity}`,
        '  IdentitiesOnly yes',
        `  UserKnownHostsFile ${knownHosts}`,
        '  GlobalKnownHostsFile /dev/null',
        '  HashKnownHosts no',
        '  UpdateHostKeys no',
        '  StrictHostKeyChecking ask',
        `  BatchMode ${batch ? 'yes' : 'no'}`,
        '  PreferredAuthentications publickey',
        '  ControlMaster no',
        '  ControlPath none',
        '  ConnectTimeout 10',
        '',
      ].join('\n'));

      const logFd = openSync(logFile, 'a');
      // Its own process group, so stop() also ends the per-connection processes.
      const child = spawn(SSHD, ['-D', '-e', '-f', sshdConfig], { stdio: ['ignore', logFd, logFd], detached: true });
      closeSync(logFd);
      child.unref();
      let exited: string | null = null;
      child.once('exit', (code, signal) => { exited = signal ? `signal ${signal}` : `exit code ${code}`; });
      child.once('error', (e) => { exited = e.message; });
      const killGroup = (sig: NodeJS.Signals): void => { try { process.kill(-child.pid!, sig); } catch { /* gone */ } };
      const onProcessExit = (): void => killGroup('SIGKILL');
      process.once('exit', onProcessExit);

      const deadline = Date.now() + 10_000;
      let up = false;
      while (!up && exited === null && Date.now() < deadline) {
        up = await bannerSeen(port, 1000);
        if (!up) await new Promise((r) => setTimeout(r, 50));
      }
      if (!up) {
        killGroup('SIGKILL');
        process.removeListener('exit', onProcessExit);
        const log = readFileSync(logFile, 'utf8');
        if (attempt < 3 && /Address already in use|Cannot bind/i.test(log)) continue;
        throw new Error(`sshd did not start (${exited ?? 'no SSH banner on the port within 10 s'}): ${log.trim() || '(no output)'}`);
      }

      let stopped: Promise<void> | null = null;
      const stop = (): Promise<void> => {
        stopped ??= (async () => {
          process.removeListener('exit', onProcessExit);
          if (exited === null) {
            const gone = new Promise<void>((r) => child.once('exit', () => r()));
            killGroup('SIGTERM');
            const t = setTimeout(() => killGroup('SIGKILL'), 3000);
            await gone;
            clearTimeout(t);
          }
          killGroup('SIGKILL'); // sessions that outlived the listener
          rmSync(dir, { recursive: true, force: true });
        })();
        return stopped;
      };
      return {
        port, dir, configFile, knownHosts, identity, user, sshdConfig, logFile, hostKey, knownHostsLine,
        pid: child.pid!,
        sshArgs: (...rest) => ['-F', configFile, SSHD_HOST_ALIAS, ...rest],
        stop,
      };
    }
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
