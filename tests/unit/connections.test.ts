import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { HangarError } from '../../core/common/errors.ts';
import { checkConnectionName, connectionLabel, parseConnectionUri } from '../../core/common/connections.ts';
import { addConnection, allConnections, connectionsFile, readConnections, removeConnection, resolveConnection } from '../../core/node/connections/connection-store.ts';
import { remoteStdioCommand, sshArgs, sshFailure, sshLoginArgs } from '../../core/node/connections/ssh-stream.ts';
import { takeConnectOption } from '../../core/node/cli/connection.ts';
import { displayTunnelArgs, parseDomdisplay } from '../../core/node/connections/libvirt-display.ts';

const refused = (fn: () => unknown, code: string, re: RegExp): void => {
  assert.throws(fn, (e: unknown) => e instanceof HangarError && e.code === code && re.test(e.message) && Boolean(e.hint));
};

describe('connection URIs', () => {
  it('reads local, Hangar over ssh and libvirt URIs', () => {
    assert.deepEqual(parseConnectionUri('local'), { kind: 'local' });
    assert.deepEqual(parseConnectionUri('ssh://root@lab.example:2222'), { kind: 'hangar-ssh', host: 'lab.example', user: 'root', port: 2222 });
    assert.deepEqual(parseConnectionUri('ssh://lab?command=/opt/hangar/bin/hangar&env.HANGAR_HOME=/srv/h'),
      { kind: 'hangar-ssh', host: 'lab', command: '/opt/hangar/bin/hangar', env: { HANGAR_HOME: '/srv/h' } });
    assert.deepEqual(parseConnectionUri('qemu:///system'), { kind: 'libvirt', uri: 'qemu:///system', mode: 'system' });
    assert.deepEqual(parseConnectionUri('qemu:///session'), { kind: 'libvirt', uri: 'qemu:///session', mode: 'session' });
    assert.deepEqual(parseConnectionUri('qemu+ssh://admin@10.0.0.5/system'), { kind: 'libvirt', uri: 'qemu+ssh://admin@10.0.0.5/system', mode: 'system', host: '10.0.0.5', user: 'admin' });
    assert.deepEqual(parseConnectionUri('ssh://[::1]'), { kind: 'hangar-ssh', host: '[::1]' });
    assert.deepEqual(parseConnectionUri('hangar+unix:///tmp/b/run/hangar.sock'), { kind: 'hangar-unix', socket: '/tmp/b/run/hangar.sock' });
    assert.deepEqual(parseConnectionUri('qemu+unix:///system?socket=/tmp/lv2/libvirt-sock'),
      { kind: 'libvirt', uri: 'qemu+unix:///system?socket=/tmp/lv2/libvirt-sock', mode: 'system', socket: '/tmp/lv2/libvirt-sock' });
  });

  it('refuses what it cannot use, saying how to write it', () => {
    refused(() => parseConnectionUri('qemu:///nowhere'), 'invalid-input', /ends in \/system or \/session/);
    refused(() => parseConnectionUri('qemu://host/system'), 'invalid-input', /needs a transport/);
    refused(() => parseConnectionUri('xen:///system'), 'invalid-input', /unknown scheme "xen"/);
    refused(() => parseConnectionUri('ssh://'), 'invalid-input', /needs a host/);
    refused(() => parseConnectionUri('ssh://host:99999'), 'invalid-input', /outside 1-65535/);
    refused(() => parseConnectionUri('ssh://-oProxyCommand=x'), 'invalid-input', /not a host name/);
    refused(() => parseConnectionUri('ssh://host?env.PATH=/tmp'), 'invalid-input', /only HANGAR_\*/);
    refused(() => parseConnectionUri('ssh://host?command=rm -rf /'), 'invalid-input', /command=/);
    refused(() => parseConnectionUri('ssh://host?bogus=1'), 'invalid-input', /unknown parameter "bogus"/);
    refused(() => parseConnectionUri('not a uri'), 'invalid-input', /scheme:\/\//);
    refused(() => parseConnectionUri('hangar+unix://host/x.sock'), 'invalid-input', /absolute path of a core socket/);
    for (const u of ['qemu+unix:///system', 'qemu+unix://host/system?socket=/s', 'qemu+unix:///system?socket=rel/s', 'qemu+unix:///system?socket=/s&x=1']) {
      refused(() => parseConnectionUri(u), 'invalid-input', /absolute path of libvirtd's socket/);
    }
    refused(() => checkConnectionName('has space'), 'invalid-input', /not a usable connection name/);
  });

  it('labels connections for people', () => {
    assert.equal(connectionLabel({ kind: 'local' }), 'Hangar on this computer');
    assert.equal(connectionLabel(parseConnectionUri('ssh://root@lab')), 'Hangar on root@lab');
    assert.equal(connectionLabel(parseConnectionUri('qemu:///system')), 'libvirt system (this computer)');
    assert.equal(connectionLabel(parseConnectionUri('qemu+ssh://lab/system')), 'libvirt system on lab');
    assert.equal(connectionLabel(parseConnectionUri('qemu+unix:///system?socket=/run/lv2/libvirt-sock')), 'libvirt system at /run/lv2/libvirt-sock');
  });
});

describe('ssh channel', () => {
  it('runs `hangar daemon stdio` through the user\'s ssh without a tty', () => {
    const t = { kind: 'hangar-ssh' as const, host: 'lab', user: 'me', port: 2200, command: '/opt/h/bin/hangar', env: { HANGAR_HOME: '/srv/my data' } };
    assert.deepEqual(remoteStdioCommand(t), ['env', 'HANGAR_HOME=/srv/my data', '/opt/h/bin/hangar', 'daemon', 'stdio']);
    assert.deepEqual(sshArgs(t, remoteStdioCommand(t), { batch: true, env: { HANGAR_SSH_CONFIG: '/x/cfg' } }),
      ['-F', '/x/cfg', '-p', '2200', '-l', 'me', '-o', 'BatchMode=yes', '-T', '-e', 'none', '--', 'lab', "env 'HANGAR_HOME=/srv/my data' /opt/h/bin/hangar daemon stdio"]);
    assert.deepEqual(sshArgs({ host: 'lab' }, ['hangar', 'daemon', 'stdio'], { env: {} }), ['-T', '-e', 'none', '--', 'lab', 'hangar daemon stdio']);
    // A login master (made once in a terminal) carries later channels through its control socket.
    assert.deepEqual(sshArgs({ host: 'lab' }, ['x'], { env: {}, controlPath: '/run/h/ssh-%C' }), ['-o', 'ControlPath=/run/h/ssh-%C', '-T', '-e', 'none', '--', 'lab', 'x']);
    assert.deepEqual(sshLoginArgs({ host: 'lab', user: 'me' }, '/run/h/ssh-%C', {}),
      ['-l', 'me', '-M', '-N', '-o', 'ControlPersist=10m', '-o', 'ControlPath=/run/h/ssh-%C', '--', 'lab']);
  });

  it('turns ssh failures into errors with the fix', () => {
    const t = { kind: 'hangar-ssh' as const, host: 'lab' };
    const missing = sshFailure(t, 127, 'bash: line 1: hangar: command not found\n');
    assert.equal(missing.code, 'host-missing');
    assert.match(missing.message, /Hangar is not installed on lab: bash: line 1: hangar: command not found/);
    assert.match(missing.hint!, /\?command=/);
    const auth = sshFailure(t, 255, 'root@lab: Permission denied (publickey).\n');
    assert.equal(auth.code, 'daemon-unavailable');
    assert.match(auth.message, /ssh to lab failed: root@lab: Permission denied \(publickey\)\./);
  });
});

describe('connection list', () => {
  let dir = '';
  const env = (): NodeJS.ProcessEnv => ({ HANGAR_CONFIG_DIR: dir });
  after(async () => { if (dir) await rm(dir, { recursive: true, force: true }); });

  it('adds, lists, resolves and removes connections, in a private file', async () => {
    dir = await mkdtemp(join(tmpdir(), 'hangar-conn-'));
    assert.deepEqual(allConnections(env()), [{ name: 'local', uri: 'local' }]);
    await addConnection('lab', 'qemu+ssh://root@lab/system', env());
    await addConnection('box', 'ssh://box', env());
    assert.deepEqual(readConnections(env()).map((c) => c.name), ['lab', 'box']);
    const saved = JSON.parse(await readFile(connectionsFile(env()), 'utf8')) as { version: number };
    assert.equal(saved.version, 1);
    assert.deepEqual(resolveConnection('lab', env()).target, { kind: 'libvirt', uri: 'qemu+ssh://root@lab/system', mode: 'system', host: 'lab', user: 'root' });
    assert.equal(resolveConnection('qemu:///session', env()).target.kind, 'libvirt');
    assert.equal(resolveConnection('local', env()).target.kind, 'local');
    await assert.rejects(addConnection('lab', 'ssh://other', env()), (e: HangarError) => e.code === 'already-exists' && /hangar connect remove lab/.test(e.hint!));
    await assert.rejects(addConnection('local', 'ssh://other', env()), (e: HangarError) => e.code === 'invalid-input');
    await assert.rejects(addConnection('x', 'local', env()), (e: HangarError) => e.code === 'invalid-input');
    await assert.rejects(removeConnection('nope', env()), (e: HangarError) => e.code === 'not-found');
    await removeConnection('lab', env());
    assert.deepEqual(readConnections(env()), [{ name: 'box', uri: 'ssh://box' }]);
    refused(() => resolveConnection('lab', env()), 'not-found', /no connection named "lab"/);
  });

  it('names a damaged file instead of emptying it', async () => {
    await writeFile(connectionsFile(env()), '{"connections": [', 'utf8');
    refused(() => readConnections(env()), 'broken-definition', /connections\.json is damaged/);
    await assert.rejects(addConnection('y', 'ssh://y', env()), (e: HangarError) => e.code === 'broken-definition');
    assert.equal(await readFile(connectionsFile(env()), 'utf8'), '{"connections": [');
  });
});

describe('hangar --connect', () => {
  it('takes the connection off the front of the arguments', () => {
    assert.deepEqual(takeConnectOption(['--connect', 'lab', 'list', '--json']), ['list', '--json']);
    assert.deepEqual(takeConnectOption(['--connect=qemu:///system', 'list']), ['list']);
    assert.deepEqual(takeConnectOption(['-c', 'lab', 'start', 'vm1']), ['start', 'vm1']);
    assert.deepEqual(takeConnectOption(['list']), ['list']);
    refused(() => takeConnectOption(['--connect']), 'invalid-input', /needs a connection name or URI/);
  });
});

describe('libvirt display address', () => {
  it('reads virsh domdisplay\'s VNC URI as a TCP address', () => {
    assert.deepEqual(parseDomdisplay('vnc://127.0.0.1:0\n'), { host: '127.0.0.1', port: 5900 });
    assert.deepEqual(parseDomdisplay('vnc://localhost:3'), { host: '127.0.0.1', port: 5903 });
    assert.deepEqual(parseDomdisplay('vnc://[::]:1'), { host: '127.0.0.1', port: 5901 });
    assert.deepEqual(parseDomdisplay('vnc://192.168.1.5:5905'), { host: '192.168.1.5', port: 5905 });
    assert.equal(parseDomdisplay('spice://127.0.0.1:5900'), null);
    assert.equal(parseDomdisplay(''), null);
  });

  it('reaches a qemu+ssh host\'s VNC server with ssh -W, through the login master when there is one', () => {
    const t = { kind: 'libvirt' as const, uri: 'qemu+ssh://me@lab:2222/system', mode: 'system' as const, host: 'lab', user: 'me', port: 2222 };
    assert.deepEqual(displayTunnelArgs(t, '127.0.0.1', 5901, { batch: true, controlPath: '/run/h/ssh-%C', env: { HANGAR_SSH_CONFIG: '/x/cfg' } }),
      ['-F', '/x/cfg', '-p', '2222', '-l', 'me', '-o', 'BatchMode=yes', '-o', 'ControlPath=/run/h/ssh-%C', '-W', '127.0.0.1:5901', '--', 'lab']);
    assert.deepEqual(displayTunnelArgs({ kind: 'libvirt', uri: 'qemu+ssh://lab/system', mode: 'system', host: 'lab' }, '10.0.0.2', 5900, { env: {} }),
      ['-W', '10.0.0.2:5900', '--', 'lab']);
  });
});
