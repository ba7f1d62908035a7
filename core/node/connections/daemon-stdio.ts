// `hangar daemon stdio`: what a remote `ssh host hangar daemon stdio` runs. Relays its stdin and
// stdout to this machine's core socket (starting the core when none runs), byte for byte, after
// one hello line, like libvirt's virt-ssh-helper. Nothing else may be written to stdout.
import { openSocket } from '../rpc/client.ts';
import { STDIO_HELLO } from './ssh-stream.ts';

export async function runDaemonStdio(): Promise<number> {
  const sock = await openSocket({ autostart: true });
  process.stdout.write(JSON.stringify(STDIO_HELLO) + '\n');
  sock.on('error', () => {});
  process.stdin.pipe(sock);
  sock.pipe(process.stdout);
  return new Promise((resolve) => {
    // Either side gone ends the relay: the ssh session closing, or the core closing the channel.
    process.stdin.once('end', () => sock.end());
    process.stdin.once('error', () => sock.destroy());
    sock.once('close', () => resolve(0));
  });
}
