// The user's connection list (virt-manager keeps the same in its gsettings): name -> URI, in
// connections.json under the user's config dir. `local` is always there and cannot be removed.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { HangarError } from '../../common/errors.ts';
import { checkConnectionName, connectionLabel, LOCAL_CONNECTION, parseConnectionUri } from '../../common/connections.ts';
import type { ConnectionEntry, ConnectionInfo, ConnectionTarget } from '../../common/connections.ts';
import { writeFileAtomic } from '../store/atomic-write.ts';
import { ensurePrivateDir } from '../paths.ts';

export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HANGAR_CONFIG_DIR) return resolve(env.HANGAR_CONFIG_DIR);
  // A HANGAR_HOME is a whole separate Hangar (tests, a second core): its connections too.
  if (env.HANGAR_HOME) return join(resolve(env.HANGAR_HOME), 'config');
  return join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'hangar');
}

export function connectionsFile(env: NodeJS.ProcessEnv = process.env): string {
  return join(configDir(env), 'connections.json');
}

interface StoredConnections {
  version: 1;
  connections: ConnectionEntry[];
}

/** The saved connections (without `local`); a damaged file is an error naming it, never silently emptied. */
export function readConnections(env: NodeJS.ProcessEnv = process.env): ConnectionEntry[] {
  const file = connectionsFile(env);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new HangarError('io-error', `cannot read the connection list ${file}: ${(e as Error).message}`, 'check its permissions');
  }
  const damaged = (why: string): HangarError => new HangarError('broken-definition', `the connection list ${file} is damaged: ${why}`,
    `fix it by hand, or move it away (mv ${file} ${file}.bad) and add the connections again`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw damaged((e as Error).message);
  }
  const list = (parsed as Partial<StoredConnections> | null)?.connections;
  if (!Array.isArray(list)) throw damaged('no "connections" list');
  return list.map((c: unknown, i) => {
    const { name, uri } = (c ?? {}) as Partial<ConnectionEntry>;
    if (typeof name !== 'string' || typeof uri !== 'string') throw damaged(`entry ${i + 1} needs a name and a uri`);
    return { name, uri };
  });
}

async function writeConnections(list: ConnectionEntry[], env: NodeJS.ProcessEnv): Promise<void> {
  ensurePrivateDir(configDir(env));
  const body: StoredConnections = { version: 1, connections: list };
  await writeFileAtomic(connectionsFile(env), JSON.stringify(body, null, 2) + '\n', 0o600);
}

export async function addConnection(name: string, uri: string, env: NodeJS.ProcessEnv = process.env): Promise<ConnectionEntry> {
  checkConnectionName(name);
  if (name === LOCAL_CONNECTION) throw new HangarError('invalid-input', '"local" is the built-in connection to this computer', 'choose another name');
  const target = parseConnectionUri(uri);
  if (target.kind === 'local') throw new HangarError('invalid-input', `"${uri}" is this computer's own core, which is always there as "local"`, 'add a remote host or a libvirt URI');
  const list = readConnections(env);
  const same = list.find((c) => c.name === name);
  if (same) throw new HangarError('already-exists', `a connection named "${name}" already exists (${same.uri})`, `remove it first: hangar connect remove ${name}`);
  const entry = { name, uri: uri.trim() };
  await writeConnections([...list, entry], env);
  return entry;
}

export async function removeConnection(name: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (name === LOCAL_CONNECTION) throw new HangarError('invalid-input', 'the "local" connection cannot be removed', 'remove the connections you added');
  const list = readConnections(env);
  if (!list.some((c) => c.name === name)) throw new HangarError('not-found', `no connection named "${name}"`, 'see hangar connect list');
  await writeConnections(list.filter((c) => c.name !== name), env);
}

export interface ResolvedConnection {
  name: string;
  uri: string;
  target: ConnectionTarget;
}

/** A saved connection's name, `local`, or a URI typed directly (`--connect qemu:///system`). */
export function resolveConnection(ref: string, env: NodeJS.ProcessEnv = process.env): ResolvedConnection {
  if (ref === LOCAL_CONNECTION || ref === '') return { name: LOCAL_CONNECTION, uri: LOCAL_CONNECTION, target: { kind: 'local' } };
  const saved = readConnections(env).find((c) => c.name === ref);
  if (saved) return { name: saved.name, uri: saved.uri, target: parseConnectionUri(saved.uri) };
  if (!ref.includes(':')) {
    throw new HangarError('not-found', `no connection named "${ref}"`, `see hangar connect list, or add it: hangar connect add ${ref} URI`);
  }
  return { name: ref, uri: ref, target: parseConnectionUri(ref) };
}

/** Every connection for a switcher: `local` first, then the saved ones. */
export function allConnections(env: NodeJS.ProcessEnv = process.env): ConnectionEntry[] {
  return [{ name: LOCAL_CONNECTION, uri: LOCAL_CONNECTION }, ...readConnections(env)];
}

/** The list as the API gives it: each with its label and kind (an unreadable URI says so in its label). */
export function connectionInfos(env: NodeJS.ProcessEnv = process.env): ConnectionInfo[] {
  return allConnections(env).map((c) => {
    try {
      const t = parseConnectionUri(c.uri);
      return { ...c, kind: t.kind, label: connectionLabel(t) };
    } catch (e) {
      return { ...c, kind: 'local' as const, label: `unusable: ${(e as Error).message}` };
    }
  });
}
