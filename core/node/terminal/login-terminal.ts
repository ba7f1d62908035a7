// Logging in to a connection's host in a terminal (the app's answer to ssh's questions: unknown
// host key, password, key passphrase). ssh authenticates and leaves a master connection behind
// (sshLoginArgs); every later channel of that connection rides it without asking again.
import { HangarError } from '../../common/errors.ts';
import { encodeConsoleControl, isTerminalSize } from '../../common/transport.ts';
import type { ConsoleLink, TerminalRequest } from '../../common/transport.ts';
import { LOCAL_CONNECTION } from '../../common/connections.ts';
import { resolveConnection } from '../connections/connection-store.ts';
import { sshControlPath, sshLoginArgs } from '../connections/ssh-stream.ts';
import { spawnPty } from '../pty/pty-session.ts';
import { serveStreamOn, toPayload } from '../rpc/endpoint.ts';

/** The ssh destination a connection logs in to, or an error saying it needs no login. */
export function loginTarget(ref: string): { host: string; user?: string; port?: number } {
  const { name, target } = resolveConnection(ref);
  if (target.kind === 'hangar-ssh' || (target.kind === 'libvirt' && target.host)) {
    return { host: target.host!, ...(target.user ? { user: target.user } : {}), ...(target.port ? { port: target.port } : {}) };
  }
  throw new HangarError('invalid-input', `connection "${name}" is on this computer: there is nothing to log in to`, 'log in is for ssh:// and qemu+ssh:// connections');
}

export function serveLoginTerminal(link: ConsoleLink, req: TerminalRequest): void {
  let closed = false;
  link.onClose(() => { closed = true; });
  Promise.resolve().then(() => {
    const ref = req.connection || LOCAL_CONNECTION;
    const target = loginTarget(ref);
    const fit = (v: number | undefined, d: number): number => (isTerminalSize(v) ? v : d);
    const pty = spawnPty('ssh', sshLoginArgs(target, sshControlPath()), { cols: fit(req.cols, 80), rows: fit(req.rows, 24) });
    if (closed) { pty.kill('SIGTERM'); return; }
    serveStreamOn(link, pty.toDuplex(), {
      name: ref,
      // ssh returns once the master runs in the background (exit 0), or with 255 when the login failed.
      endReason: async () => ({ reason: 'session-ended', exitCode: (await pty.exited).exitCode }),
      onResize: (c, r) => pty.resize(c, r),
    });
  }).catch((e: unknown) => {
    if (closed) return;
    try { link.send(encodeConsoleControl({ type: 'error', error: toPayload(e) })); } catch { /* gone */ }
    link.close();
  });
}
