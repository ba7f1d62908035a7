// `hangar ssh NAME [--user U] [-- SSH_OPTIONS... [--] COMMAND...]`: the user's own ssh to a running
// guest, through its port forward to guest port 22 or the address its guest agent reports (see
// terminal/guest-ssh.ts), with this terminal (prompts included); ssh's exit code is ours.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { HangarError } from '../../common/errors.ts';
import { guestSshArgs, guestSshPlace, splitSshArgs } from '../terminal/guest-ssh.ts';
import { cliConnect } from './connection.ts';

export const SSH_USAGE = `Usage: hangar ssh NAME [--user U] [-- SSH_OPTIONS... [--] [COMMAND...]]
  Logs in to a running guest with your ssh (keys, agent, known_hosts, ~/.ssh/config): through a
  user-mode NIC's port forward to guest port 22, else the IPv4 address the guest agent reports.
  A VM on another machine (--connect ssh://...) is reached through that machine (ssh -J).
  After --: ssh options (-i KEY, -o Opt=val, -v ...), then a command to run instead of a shell
  (a second -- may separate them). ssh's exit code is hangar's.
  e.g. hangar ssh web --user root -- -i ~/.ssh/lab uname -a
`;

export async function sshCommand(name: string, user: string | undefined, after: string[]): Promise<number> {
  const { options, command } = splitSshArgs(after);
  const conn = await cliConnect({ autostart: true });
  let args: string[];
  try {
    const vm = await conn.api.get(name);
    args = guestSshArgs(guestSshPlace(vm, conn.target, conn.name), { ...(user !== undefined ? { user } : {}), options, command });
  } finally {
    conn.close();
  }
  // Ctrl+C belongs to ssh (and the guest): hangar waits for ssh's own exit.
  const ignore = (): void => {};
  process.on('SIGINT', ignore);
  process.on('SIGQUIT', ignore);
  try {
    return await new Promise<number>((resolve, reject) => {
      const child = spawn('ssh', args, { stdio: 'inherit' });
      child.once('error', (e: NodeJS.ErrnoException) => {
        reject(e.code === 'ENOENT'
          ? new HangarError('host-missing', 'ssh is not installed on this computer', 'apt-get install openssh-client')
          : new HangarError('io-error', `cannot run ssh: ${e.message}`));
      });
      child.once('exit', (code, signal) => {
        resolve(code ?? 128 + (signal ? constants.signals[signal] : 0));
      });
    });
  } finally {
    process.off('SIGINT', ignore);
    process.off('SIGQUIT', ignore);
  }
}
