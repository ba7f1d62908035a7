// A Terminal tab's channel: `ssh [user@]guest` in a pty in this process (the UI host: `hangar
// serve`, or the Electron app's core host), served to one viewer with the console protocol plus
// resize controls. The VM may be on any connection: its VmInfo comes from that connection's API,
// and a VM on another machine is reached through that machine (guest-ssh.ts).
import { HangarError } from '../../common/errors.ts';
import { encodeConsoleControl, isTerminalSize, MAX_TERMINAL_SIZE } from '../../common/transport.ts';
import type { ConsoleLink, TerminalRequest } from '../../common/transport.ts';
import { LOCAL_CONNECTION } from '../../common/connections.ts';
import type { HangarConnection, OpenOptions } from '../connections/open-connection.ts';
import { sshControlPath } from '../connections/ssh-stream.ts';
import { spawnPty } from '../pty/pty-session.ts';
import { serveStreamOn, toPayload } from '../rpc/endpoint.ts';
import { checkGuestUser, guestSshArgs, guestSshPlace } from './guest-ssh.ts';

export type OpenConnection = (ref: string, opts?: OpenOptions) => Promise<HangarConnection>;

/** A size from a request, or the default when absent; a bad one is refused (the UI sent it). */
function size(v: number | undefined, fallback: number, what: string): number {
  if (v === undefined) return fallback;
  if (!isTerminalSize(v)) {
    throw new HangarError('invalid-input', `terminal ${what} ${String(v)} is out of range`, `1..${MAX_TERMINAL_SIZE}`);
  }
  return v;
}

/** Where ssh would go and with which arguments, for a VM on a connection. */
export async function terminalCommand(open: OpenConnection, vmRef: string, req: TerminalRequest): Promise<{ vmName: string; args: string[] }> {
  if (req.user !== undefined) checkGuestUser(req.user);
  // The API only: a core without a terminal must not wait for an ssh password (a login master
  // made in a terminal carries it).
  const conn = await open(req.connection || LOCAL_CONNECTION, { autostart: true, ssh: { batch: true, controlPath: sshControlPath() } });
  try {
    const vm = await conn.api.get(vmRef);
    const place = guestSshPlace(vm, conn.target, conn.name);
    return { vmName: vm.name, args: guestSshArgs(place, req.user !== undefined ? { user: req.user } : {}) };
  } finally {
    conn.close();
  }
}

/** Serves one terminal: an error control, or ready, the pty's bytes both ways, resizes, and end with ssh's exit code. */
export function serveGuestTerminal(link: ConsoleLink, vmRef: string, req: TerminalRequest, open: OpenConnection): void {
  let closed = false;
  link.onClose(() => { closed = true; });
  Promise.resolve().then(async () => {
    const cols = size(req.cols, 80, 'cols');
    const rows = size(req.rows, 24, 'rows');
    const { vmName, args } = await terminalCommand(open, vmRef, req);
    if (closed) return;
    let pty;
    try {
      pty = spawnPty('ssh', args, { cols, rows });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new HangarError('host-missing', 'ssh is not installed on this computer', 'apt-get install openssh-client');
      throw e;
    }
    const session = pty;
    serveStreamOn(link, session.toDuplex(), {
      name: vmName,
      // The stream closes once ssh has exited and its last output was read.
      endReason: async () => ({ reason: 'session-ended', exitCode: (await session.exited).exitCode }),
      onResize: (c, r) => session.resize(c, r),
    });
  }).catch((e: unknown) => {
    if (closed) return;
    try { link.send(encodeConsoleControl({ type: 'error', error: toPayload(e) })); } catch { /* gone */ }
    link.close();
  });
}
