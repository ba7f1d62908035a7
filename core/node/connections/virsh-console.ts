// A libvirt domain's serial console: `virsh console` wants a terminal, so it runs in a pty and its
// bytes become the same stream a Hangar console is (the CLI and the Console tab carry either).
import { HangarError } from '../../common/errors.ts';
import { spawnPty } from '../pty/pty-session.ts';
import type { StreamChannel } from './open-connection.ts';

/** How long virsh gets to say it connected (or why not) before the stream is handed over. */
const CONNECT_TIMEOUT_MS = 15_000;

export async function openVirshConsole(uri: string, vm: string): Promise<StreamChannel> {
  if (!vm) throw new HangarError('invalid-input', 'which domain\'s console? The name is empty', 'give the domain\'s name or UUID');
  // --force: take the console over from a stale session (virsh refuses a second one otherwise).
  const pty = spawnPty('virsh', ['-c', uri, 'console', '--force', vm], { cols: 120, rows: 40, env: { ...process.env, LC_ALL: 'C' } });
  const stream = pty.toDuplex();
  // virsh console ignores SIGHUP and SIGTERM; its escape key (Ctrl+]) ends it. SIGKILL if that fails.
  stream.once('close', () => {
    pty.write(Buffer.from([0x1d]));
    setTimeout(() => pty.kill('SIGKILL'), 2000).unref();
  });
  let seen = '';
  const exited = new Promise<number>((resolve) => pty.onExit((e) => resolve(e.exitCode)));
  // virsh prints "Connected to domain 'x'" then "Escape character is ^]" before the guest's bytes.
  const ready = new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(() => { stream.off('data', onData); reject(new HangarError('timeout', `virsh console ${vm} did not connect within ${CONNECT_TIMEOUT_MS / 1000} s`)); }, CONNECT_TIMEOUT_MS);
    const onData = (d: Buffer): void => {
      seen += d.toString('latin1');
      const m = /Escape character is [^\n]*\n/.exec(seen);
      if (!m) return;
      clearTimeout(timer);
      stream.off('data', onData);
      stream.pause();
      resolve(Buffer.from(seen.slice(m.index + m[0].length), 'latin1'));
    };
    stream.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      stream.off('data', onData);
      const why = seen.replace(/\r/g, '').trim().split('\n').filter(Boolean).pop() ?? `virsh exited with ${code}`;
      reject(/not running|inactive/i.test(why)
        ? new HangarError('invalid-state', `VM "${vm}" is not running: its console is not live (${why})`, `start it first: hangar --connect ${uri} start ${vm}`)
        : /failed to get domain|not found/i.test(why)
          ? new HangarError('not-found', `no libvirt domain "${vm}" on ${uri}`, `see hangar --connect ${uri} list`)
          : new HangarError('daemon-unavailable', `virsh console ${vm} failed: ${why}`));
    });
  });
  try {
    const rest = await ready;
    return { socket: stream, rest, vmName: vm, replayBytes: 0 };
  } catch (e) {
    stream.destroy();
    throw e;
  }
}
