// `hangar connect add|list|remove|test`: the user's connection list (see connections/connection-store.ts).
import { HangarError } from '../../common/errors.ts';
import { connectionLabel, parseConnectionUri } from '../../common/connections.ts';
import { addConnection, allConnections, connectionsFile, removeConnection } from '../connections/connection-store.ts';
import { openConnection } from '../connections/open-connection.ts';
import { table } from './table.ts';

type Print = (s: string) => void;

export async function connectCommand(sub: string | undefined, positionals: string[], values: { json?: boolean }, print: Print): Promise<number> {
  switch (sub) {
    case 'add': {
      if (positionals.length !== 2) throw new HangarError('invalid-input', `expected NAME URI, got ${positionals.map((p) => JSON.stringify(p)).join(' ') || 'nothing'}`, 'hangar connect add NAME URI (e.g. hangar connect add lab qemu+ssh://root@lab/system)');
      const [name, uri] = positionals as [string, string];
      const entry = await addConnection(name, uri);
      if (values.json) print(JSON.stringify(entry, null, 2));
      else print(`Added connection "${entry.name}": ${connectionLabel(parseConnectionUri(entry.uri))} (${entry.uri}). Use it with: hangar --connect ${entry.name} list`);
      return 0;
    }
    case 'remove': {
      if (positionals.length !== 1) throw new HangarError('invalid-input', 'expected one connection name', 'hangar connect remove NAME');
      await removeConnection(positionals[0]!);
      print(`Removed connection "${positionals[0]}" (its VMs are untouched)`);
      return 0;
    }
    case 'list':
    case undefined: {
      const list = allConnections().map((c) => ({ ...c, label: connectionLabel(parseConnectionUri(c.uri)) }));
      if (values.json) { print(JSON.stringify(list, null, 2)); return 0; }
      print(table([['NAME', 'URI', 'WHAT'], ...list.map((c) => [c.name, c.uri, c.label])]));
      print(`\n(saved in ${connectionsFile()})`);
      return 0;
    }
    case 'test': {
      if (positionals.length !== 1) throw new HangarError('invalid-input', 'expected one connection name or URI', 'hangar connect test NAME');
      const conn = await openConnection(positionals[0]!, { autostart: true });
      try {
        const [caps, vms] = await Promise.all([conn.api.capabilities(), conn.api.list()]);
        if (values.json) print(JSON.stringify({ ...caps, vmCount: vms.length }, null, 2));
        else print(`${caps.label}: reachable, ${vms.length} VM${vms.length === 1 ? '' : 's'} (${caps.driver} driver${Object.keys(caps.unsupported).length ? `; ${Object.keys(caps.unsupported).length} Hangar features not available there` : ''})`);
        return 0;
      } finally {
        conn.close();
      }
    }
    default:
      throw new HangarError('invalid-input', `unknown connect command "${sub}"`, 'use add, list, remove or test');
  }
}
