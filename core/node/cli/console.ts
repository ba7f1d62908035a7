// `hangar console`: raw-terminal attach (Ctrl+] detaches), or a scripted pipe when stdin is
// not a terminal: stdin goes to the guest, guest output is printed until stdin ends + grace.
import { HangarError } from '../../common/errors.ts';
import { cliStreams } from './connection.ts';
import { stripTerminalQueries } from '../console/terminal-queries.ts';

const DETACH_BYTE = 0x1d; // Ctrl+]

export async function runConsole(vm: string, opts: { graceSec: number; replay: boolean }): Promise<number> {
  const { socket, rest, vmName, replayBytes } = await (await cliStreams()).openConsole(vm, opts.replay);
  const out = process.stdout;
  // The first replayBytes are history: shown without the terminal queries they contain.
  let historyLeft = replayBytes;
  const show = (d: Buffer): void => {
    if (historyLeft <= 0) { out.write(d); return; }
    const n = Math.min(historyLeft, d.length);
    historyLeft -= n;
    out.write(stripTerminalQueries(d.subarray(0, n)));
    if (n < d.length) out.write(d.subarray(n));
  };
  if (rest.length) show(rest);
  socket.on('data', show);
  socket.resume(); // readFirstLine left it paused
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const stdin = process.stdin;

  if (stdin.isTTY) {
    process.stderr.write(`Connected to the serial console of "${vmName}". Press Ctrl+] to detach.\r\n`);
    stdin.setRawMode(true);
    stdin.resume();
    const detached = new Promise<void>((resolve) => {
      stdin.on('data', (d: Buffer) => {
        const i = d.indexOf(DETACH_BYTE);
        if (i >= 0) {
          if (i > 0) socket.write(d.subarray(0, i));
          resolve();
          return;
        }
        socket.write(d);
      });
    });
    await Promise.race([ended, detached]);
    stdin.setRawMode(false);
    stdin.pause();
    socket.destroy();
    process.stderr.write(`\r\nDetached from "${vmName}".\r\n`);
    return 0;
  }

  stdin.on('data', (d: Buffer) => socket.write(d));
  const stdinEnded = new Promise<void>((resolve) => stdin.once('end', () => resolve()));
  stdin.resume();
  await Promise.race([ended, stdinEnded]);
  if (!socket.destroyed) {
    await Promise.race([ended, new Promise((r) => setTimeout(r, opts.graceSec * 1000))]);
    socket.destroy();
  }
  return 0;
}

export function parseGrace(v: string | undefined): number {
  if (v === undefined) return 1;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new HangarError('invalid-input', `--grace must be a number of seconds, got "${v}"`);
  return n;
}
