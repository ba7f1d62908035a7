// `hangar service install|remove [--user|--system]`: a systemd unit that runs the core at login
// (user unit) or at boot (system unit), so that autostart VMs start then. KillMode=process: when
// the unit stops, only the core stops; its VMs keep running (as with `hangar daemon stop`).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { HangarError } from '../../common/errors.ts';
import { dataDir } from '../paths.ts';

export const UNIT_NAME = 'hangar.service';

export const SERVICE_USAGE = `Usage:
  hangar service install [--user|--system] [--no-enable]
        write a systemd unit that runs the Hangar core at login (--user, the default) or at boot
        (--system, as root), then enable it (systemctl [--user] enable --now hangar.service)
  hangar service remove [--user|--system]
        disable it and delete the unit (the core and its VMs keep running until stopped)
`;

/** Systemd quotes: a word with spaces or quotes in double quotes, backslash and quote escaped; % doubled. */
function unitQuote(word: string): string {
  const w = word.replace(/%/g, '%%');
  return /[\s"'\\]/.test(w) ? `"${w.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"` : w;
}

export function unitText(scope: 'user' | 'system', command: string[], env: Record<string, string>): string {
  const lines = [
    '# Written by `hangar service install`; `hangar service remove` deletes it.',
    '[Unit]',
    'Description=Hangar core: QEMU/KVM virtual machines (starts autostart VMs)',
    // Bridged NICs need the host's network up; a user manager has no such target.
    ...(scope === 'system' ? ['After=network-online.target', 'Wants=network-online.target'] : []),
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${command.map(unitQuote).join(' ')}`,
    ...Object.entries(env).map(([k, v]) => `Environment=${unitQuote(`${k}=${v}`)}`),
    // Only the core is stopped with the unit: QEMU and its back ends keep running, the next core re-attaches.
    'KillMode=process',
    'Restart=on-failure',
    'RestartSec=2',
    '',
    '[Install]',
    `WantedBy=${scope === 'user' ? 'default.target' : 'multi-user.target'}`,
    '',
  ];
  return lines.join('\n');
}

function unitPath(scope: 'user' | 'system'): string {
  if (scope === 'system') return join('/etc/systemd/system', UNIT_NAME);
  const config = process.env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(config, 'systemd', 'user', UNIT_NAME);
}

function systemctl(scope: 'user' | 'system', args: string[]): { ok: boolean; out: string } {
  const r = spawnSync('systemctl', [...(scope === 'user' ? ['--user'] : []), ...args], { encoding: 'utf8', timeout: 30_000 });
  if (r.error) return { ok: false, out: (r.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'systemctl is not installed' : r.error.message };
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}`.trim() };
}

export function serviceCommand(sub: string | undefined, positionals: string[], values: Record<string, unknown>, print: (s: string) => void): number {
  if (!sub || values.help || sub === 'help' || sub === '--help') {
    print(SERVICE_USAGE);
    return sub ? 0 : 2;
  }
  if (positionals.length) throw new HangarError('invalid-input', `unexpected ${positionals.map((p) => JSON.stringify(p)).join(' ')}`, 'hangar service install|remove [--user|--system]');
  if (values.user && values.system) throw new HangarError('invalid-input', '--user and --system exclude each other', 'choose one');
  const scope = values.system ? 'system' : 'user';
  if (scope === 'system' && process.getuid?.() !== 0) {
    throw new HangarError('permission', 'a system unit is written to /etc/systemd/system, which needs root', 'run it with sudo, or use --user (the core then starts at your login)');
  }
  const path = unitPath(scope);
  const sc = scope === 'user' ? 'systemctl --user' : 'systemctl';
  if (sub === 'install') {
    const entry = process.env.HANGAR_ENTRY || process.argv[1];
    if (!entry) throw new HangarError('internal', 'cannot tell how this hangar was started');
    const env: Record<string, string> = {};
    if (process.env.HANGAR_HOME) env.HANGAR_HOME = dataDir();
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, unitText(scope, [process.execPath, ...process.execArgv, entry, 'daemon', 'run', '--foreground'], env), { mode: 0o644 });
    print(`wrote ${path}`);
    if (values['no-enable']) {
      print(`enable it with: ${sc} daemon-reload && ${sc} enable --now ${UNIT_NAME}`);
      return 0;
    }
    for (const args of [['daemon-reload'], ['enable', UNIT_NAME]]) {
      const r = systemctl(scope, args);
      if (!r.ok) {
        throw new HangarError('host-missing', `the unit is written, but \`${sc} ${args.join(' ')}\` failed: ${r.out || 'no output'}`,
          `once systemd runs for this ${scope === 'user' ? 'user' : 'host'}: ${sc} daemon-reload && ${sc} enable --now ${UNIT_NAME}`);
      }
    }
    print(`enabled: the core (and its autostart VMs) starts ${scope === 'user' ? 'at your login' : 'at boot'}`);
    return 0;
  }
  if (sub === 'remove') {
    if (!existsSync(path)) throw new HangarError('not-found', `no unit at ${path}`, `nothing to remove${scope === 'user' ? ' (a system unit needs --system)' : ''}`);
    const r = systemctl(scope, ['disable', UNIT_NAME]);
    unlinkSync(path);
    systemctl(scope, ['daemon-reload']);
    print(`removed ${path}${r.ok ? '' : ` (${sc} disable said: ${r.out || 'nothing'})`}`);
    return 0;
  }
  throw new HangarError('invalid-input', `unknown service command "${sub}"`, 'hangar service install|remove');
}
