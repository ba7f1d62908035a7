// The Terminal tab's and `hangar ssh`'s way into a guest (guest-ssh.ts): which forward or address
// is chosen, the errors when there is none, ssh's argv (jump host, HANGAR_SSH_CONFIG, user's
// options and command), and the terminal channel's resize control on the wire.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { VmInfo } from '../../core/common/api.ts';
import { HangarError } from '../../core/common/errors.ts';
import { decodeConsoleControl, encodeConsoleControl } from '../../core/common/transport.ts';
import { checkGuestUser, guestSshArgs, guestSshPlace, jumpHostOf, splitSshArgs } from '../../core/node/terminal/guest-ssh.ts';

type Net = Record<string, unknown> & { type: string };

function vm(nets: Net[], extra: Partial<VmInfo> = {}): VmInfo {
  return {
    id: 'c0ffee', name: 'web', state: 'running', dir: '/x',
    definition: { nics: nets.map((network, i) => ({ id: `net${i}`, model: 'virtio-net', mac: `52:54:00:00:00:0${i}`, network })) },
    ...extra,
  } as unknown as VmInfo;
}

const fwd = (hostPort: number, guestPort: number, hostAddress = '127.0.0.1', protocol = 'tcp'): Record<string, unknown> => ({ protocol, hostAddress, hostPort, guestPort });
const guest = (addresses: string[], agent = true): VmInfo['guest'] => ({ agent, addresses, at: 0 });

const refused = (fn: () => unknown, code: string, message: RegExp, hint: RegExp): void => {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof HangarError, String(e));
    assert.equal(e.code, code);
    assert.match(e.message, message);
    assert.match(e.hint ?? '', hint);
    return true;
  });
};

describe('guestSshPlace: where the guest\'s sshd is', () => {
  it('takes the tcp forward to guest port 22 on a user-mode or passt NIC, loopback for wildcard addresses', () => {
    const v = vm([{ type: 'user', portForwards: [fwd(8080, 80), fwd(2201, 22, '127.0.0.1', 'udp'), fwd(2222, 22)] }]);
    assert.deepEqual(guestSshPlace(v), { via: 'port-forward', host: '127.0.0.1', port: 2222, nic: 'net0', hostKeyAlias: 'hangar-vm-c0ffee' });
    assert.equal(guestSshPlace(vm([{ type: 'passt', portForwards: [fwd(2022, 22, '0.0.0.0')] }])).host, '127.0.0.1');
    assert.equal(guestSshPlace(vm([{ type: 'user', portForwards: [fwd(2022, 22, '')] }])).host, '127.0.0.1');
    assert.equal(guestSshPlace(vm([{ type: 'user', portForwards: [fwd(2022, 22, '::')] }])).host, '::1');
    assert.equal(guestSshPlace(vm([{ type: 'user', portForwards: [fwd(2022, 22, '192.168.7.2')] }])).host, '192.168.7.2');
  });

  it('prefers a forward to the agent\'s address', () => {
    const v = vm([{ type: 'bridge', bridge: 'br0' }, { type: 'user', portForwards: [fwd(2222, 22)] }], { guest: guest(['192.168.1.50']) });
    assert.equal(guestSshPlace(v).via, 'port-forward');
    assert.equal(guestSshPlace(v).nic, 'net1');
  });

  it('else takes the first usable IPv4 address the agent reports, on a NIC the host can reach', () => {
    const v = vm([{ type: 'user', portForwards: [] }, { type: 'bridge', bridge: 'br0' }], { guest: guest(['fd00::5', '169.254.3.3', '10.0.2.15', '192.168.1.50', '192.168.1.51']) });
    assert.deepEqual(guestSshPlace(v), { via: 'guest-agent', host: '192.168.1.50' });
    assert.equal(guestSshPlace(vm([{ type: 'tap', ifname: 'tap0' }], { guest: guest(['10.0.2.15']) })).host, '10.0.2.15');
  });

  it('on a libvirt connection any NIC counts (libvirt\'s NAT network is on the host)', () => {
    const v = vm([{ type: 'user', portForwards: [] }], { guest: guest(['192.168.122.40']) });
    assert.deepEqual(guestSshPlace(v, { kind: 'libvirt', uri: 'qemu:///system', mode: 'system' }), { via: 'guest-agent', host: '192.168.122.40' });
  });

  it('a VM on another machine is reached through it (ssh -J), its forward on that machine\'s loopback', () => {
    const v = vm([{ type: 'user', portForwards: [fwd(2222, 22)] }]);
    assert.equal(guestSshPlace(v, { kind: 'hangar-ssh', host: 'lab.example', user: 'ops', port: 2200 }, 'lab').jump, 'ops@lab.example:2200');
    assert.equal(guestSshPlace(v, { kind: 'hangar-unix', socket: '/tmp/b.sock' }).jump, undefined);
    assert.equal(jumpHostOf({ kind: 'libvirt', uri: 'qemu+ssh://admin@10.0.0.5/system', mode: 'system', host: '10.0.0.5', user: 'admin' }), 'admin@10.0.0.5');
    assert.equal(jumpHostOf({ kind: 'hangar-ssh', host: '[::1]', port: 22 }), '[::1]:22');
    assert.equal(jumpHostOf({ kind: 'hangar-ssh', host: 'fd00::7' }), '[fd00::7]');
    assert.equal(jumpHostOf({ kind: 'local' }), undefined);
  });

  it('a VM that does not run: the state and how to start it (with --connect for another connection)', () => {
    refused(() => guestSshPlace(vm([], { state: 'stopped' })), 'invalid-state', /VM "web" is not running \(stopped\)/, /hangar start web/);
    refused(() => guestSshPlace(vm([], { state: 'paused' }), { kind: 'hangar-ssh', host: 'lab' }, 'lab'), 'invalid-state', /paused/, /hangar --connect lab resume web/);
  });

  it('no way in: names why and gives the exact command that adds a forward', () => {
    refused(() => guestSshPlace(vm([{ type: 'user', portForwards: [fwd(8080, 80)] }], { guest: guest(['10.0.2.15']) })), 'invalid-state',
      /no way to reach VM "web" over ssh: no NIC forwards a host port to guest port 22/,
      /hangar device edit web nic net0 user,hostfwd=tcp::8080-:80,hostfwd=tcp::2222-:22`.*bridged NIC.*qemu-guest-agent/);
    refused(() => guestSshPlace(vm([])), 'invalid-state', /it has no NIC/, /hangar device add web nic user,hostfwd=tcp::2222-:22/);
    refused(() => guestSshPlace(vm([{ type: 'isolated', network: 'lab' }])), 'invalid-state', /user-mode or VM-only/, /device add web nic user,hostfwd/);
    refused(() => guestSshPlace(vm([{ type: 'bridge', bridge: 'br0' }])), 'invalid-state', /guest agent did not answer/, /port forward/);
    refused(() => guestSshPlace(vm([{ type: 'bridge', bridge: 'br0' }], { guest: guest(['fe80::1'], true) })), 'invalid-state', /reports no IPv4 address/, /port forward/);
  });
});

describe('guestSshArgs: the ssh command line', () => {
  const place = { via: 'port-forward' as const, host: '127.0.0.1', port: 2222, nic: 'net0', hostKeyAlias: 'hangar-vm-c0ffee' };

  it('port, host key alias, the user\'s options and command after the destination', () => {
    assert.deepEqual(guestSshArgs(place, { user: 'root', options: ['-i', '/k', '-o', 'X=y'], command: ['exit', '7'], env: {} }),
      ['-p', '2222', '-o', 'HostKeyAlias=hangar-vm-c0ffee', '-i', '/k', '-o', 'X=y', '--', 'root@127.0.0.1', 'exit', '7']);
  });

  it('HANGAR_SSH_CONFIG first (ssh -F), then the jump host; no -p for port 22; no user = ssh\'s choice', () => {
    assert.deepEqual(guestSshArgs({ via: 'guest-agent', host: '192.168.1.50', jump: 'ops@lab:2200' }, { env: { HANGAR_SSH_CONFIG: '/t/ssh_config' } }),
      ['-F', '/t/ssh_config', '-J', 'ops@lab:2200', '--', '192.168.1.50']);
    assert.deepEqual(guestSshArgs({ via: 'guest-agent', host: '10.1.1.1', port: 22 }, { user: 'u', env: {} }), ['--', 'u@10.1.1.1']);
  });

  it('refuses a login name that is not a word', () => {
    for (const bad of ['a b', '-oProxyCommand=x', 'a@b', '', 'x'.repeat(65)]) {
      assert.throws(() => checkGuestUser(bad), (e: unknown) => e instanceof HangarError && e.code === 'invalid-input');
      assert.throws(() => guestSshArgs(place, { user: bad, env: {} }), HangarError);
    }
    assert.equal(checkGuestUser('deploy-1.x_y'), 'deploy-1.x_y');
  });

  it('splitSshArgs: options (with their values) first, then the command; -- ends the options', () => {
    assert.deepEqual(splitSshArgs(['-i', 'K', '-oA=b', '-v', 'uname', '-a']), { options: ['-i', 'K', '-oA=b', '-v'], command: ['uname', '-a'] });
    assert.deepEqual(splitSshArgs(['-vi', 'K', '--', '-weird', 'x']), { options: ['-vi', 'K'], command: ['-weird', 'x'] });
    assert.deepEqual(splitSshArgs(['-o', 'StrictHostKeyChecking=accept-new', '-o', 'UserKnownHostsFile=/t', '--', 'echo']),
      { options: ['-o', 'StrictHostKeyChecking=accept-new', '-o', 'UserKnownHostsFile=/t'], command: ['echo'] });
    assert.deepEqual(splitSshArgs([]), { options: [], command: [] });
    assert.throws(() => splitSshArgs(['-i']), (e: unknown) => e instanceof HangarError && /needs a value/.test(e.message));
  });
});

describe('terminal resize control', () => {
  it('decodes cols and rows 1..1000 and round-trips', () => {
    assert.deepEqual(decodeConsoleControl('{"type":"resize","cols":132,"rows":43}'), { type: 'resize', cols: 132, rows: 43 });
    assert.deepEqual(decodeConsoleControl(encodeConsoleControl({ type: 'resize', cols: 1, rows: 1000 })), { type: 'resize', cols: 1, rows: 1000 });
  });

  it('refuses sizes out of range, fractions, strings and missing fields', () => {
    for (const bad of ['{"type":"resize","cols":0,"rows":24}', '{"type":"resize","cols":80,"rows":1001}', '{"type":"resize","cols":80.5,"rows":24}',
      '{"type":"resize","cols":"80","rows":24}', '{"type":"resize","cols":80}', '{"type":"resize","cols":-3,"rows":24}']) {
      assert.equal(decodeConsoleControl(bad), null, bad);
    }
  });

  it('an end control carries the program\'s exit code', () => {
    assert.deepEqual(decodeConsoleControl('{"type":"end","reason":"session-ended","exitCode":130}'), { type: 'end', reason: 'session-ended', exitCode: 130 });
    assert.deepEqual(decodeConsoleControl('{"type":"end","reason":"vm-stopped","exitCode":"x"}'), { type: 'end', reason: 'vm-stopped' });
  });
});
