// Which connection this CLI run talks to: `hangar --connect NAME|URI COMMAND`, else
// HANGAR_CONNECT, else this computer's core.
import type { CoreEvents } from '../../common/api.ts';
import { HangarError } from '../../common/errors.ts';
import { LOCAL_CONNECTION } from '../../common/connections.ts';
import { connectionStreams, openConnection } from '../connections/open-connection.ts';
import type { ConnectionStreams, HangarConnection } from '../connections/open-connection.ts';
import { sshControlPath } from '../connections/ssh-stream.ts';

let chosen = process.env.HANGAR_CONNECT || LOCAL_CONNECTION;

/** Takes a leading `--connect X`, `--connect=X` or `-c X` off the arguments. */
export function takeConnectOption(argv: string[]): string[] {
  const [first, second, ...rest] = argv;
  if (first === '--connect' || first === '-c') {
    if (!second || second.startsWith('-')) throw new HangarError('invalid-input', `${first} needs a connection name or URI`, 'e.g. hangar --connect qemu:///system list (see hangar connect list)');
    chosen = second;
    return rest;
  }
  if (first?.startsWith('--connect=')) {
    chosen = first.slice('--connect='.length);
    return second === undefined ? rest : [second, ...rest];
  }
  return argv;
}

export function chosenConnection(): string {
  return chosen;
}

export function cliConnect(opts: { autostart?: boolean; events?: Partial<CoreEvents> } = {}): Promise<HangarConnection> {
  // A login master the app made (or an earlier one) carries the channels: no second password.
  return openConnection(chosen, { autostart: opts.autostart ?? true, events: opts.events ?? {}, ssh: { controlPath: sshControlPath() } });
}

export function cliStreams(): Promise<ConnectionStreams> {
  return connectionStreams(chosen, { autostart: true, ssh: { controlPath: sshControlPath() } });
}
