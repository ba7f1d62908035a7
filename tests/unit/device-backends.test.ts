// tap / vhost-net / vhost-user NICs, virtio-serial channels, extra serial ports, vsock and
// virtiofs shares: definition rules, the builders' structured output, socket paths, the start
// checks (against fixture /dev and /sys trees), the CLI's --nic forms and the device rows.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseDefinition } from '../../core/common/definition.ts';
import { deviceChoices } from '../../core/common/device-advice.ts';
import { deviceRows } from '../../core/common/device-rows.ts';
import { HangarError } from '../../core/common/errors.ts';
import { parseNic } from '../../core/node/cli/create-args.ts';
import { checkDeviceBackends } from '../../core/node/host/device-checks.ts';
import { SOCKET_PATH_MAX, vmRuntimePaths } from '../../core/node/paths.ts';
import { buildArgv, needsSharedMemory } from '../../core/node/qemu/vm-argv.ts';
import { virtiofsdArgs } from '../../core/node/service/virtiofsd.ts';

const ID = '0b6c1c2e-8f0a-4c59-9d3e-8a6f1d1e2a3b';
const def = (extra: Record<string, unknown>) => parseDefinition({ version: 1, id: ID, name: 'vm', ...extra });
const nic = (network: Record<string, unknown>, model = 'virtio-net', id = 'net0', mac = '52:54:00:00:00:01') => ({ id, model, mac, network });
const paths = {
  qmpSocket: '/r/qmp.sock', serialSocket: '/r/serial0.sock', pidfile: '/r/qemu.pid',
  channelSocket: (i: number) => `/r/chan${i}.sock`, serialPortSocket: (i: number) => `/r/ttyS${i + 1}.sock`, virtiofsdSocket: (i: number) => `/r/vfs${i}.sock`,
};

function invalid(extra: Record<string, unknown>, re: RegExp): void {
  assert.throws(() => def(extra), (e: unknown) => e instanceof HangarError && re.test(e.message), String(re));
}

/** The JSON after each `opt` in argv. */
function jsonArgs(argv: string[], opt: string): Array<Record<string, unknown>> {
  return argv.flatMap((a, i) => (a === opt ? [JSON.parse(argv[i + 1]!) as Record<string, unknown>] : []));
}

test('definition rules: vhost and vhost-user need virtio-net; unique device ids, channel names, taps, sockets; 3 extra UARTs; virtiofs not read-only', () => {
  invalid({ nics: [nic({ type: 'tap', ifname: 'tap0', vhost: true }, 'e1000')] }, /NIC "net0": vhost-net serves virtio-net only, not e1000/);
  invalid({ nics: [nic({ type: 'bridge', bridge: 'br0', vhost: true }, 'rtl8139')] }, /vhost-net serves virtio-net only/);
  invalid({ nics: [nic({ type: 'vhost-user', socket: '/s.sock' }, 'e1000')] }, /a vhost-user back end serves virtio-net only/);
  assert.doesNotThrow(() => def({ nics: [nic({ type: 'tap', ifname: 'tap0' }, 'e1000')] }), 'a tap without vhost takes any model');
  invalid({ nics: [nic({ type: 'tap', ifname: 'tap0' }), nic({ type: 'tap', ifname: 'tap0' }, 'virtio-net', 'net1', '52:54:00:00:00:02')] }, /tap device tap0 is used by two NICs/);
  invalid({ nics: [nic({ type: 'vhost-user', socket: '/s.sock' }), nic({ type: 'vhost-user', socket: '/s.sock' }, 'virtio-net', 'net1', '52:54:00:00:00:02')] }, /vhost-user socket \/s\.sock is used by two NICs/);
  invalid({ channels: [{ id: 'a', name: 'org.x' }, { id: 'b', name: 'org.x' }] }, /channel name "org\.x" is used twice/);
  invalid({ channels: [{ id: 'net0', name: 'org.x' }], nics: [nic({ type: 'user' })] }, /device id "net0" is used twice/);
  invalid({ serialPorts: [{ id: 'disk0' }], disks: [{ id: 'disk0', file: '/d.qcow2' }] }, /device id "disk0" is used twice/);
  invalid({ serialPorts: [{ id: 'u1' }, { id: 'u2' }, { id: 'u3' }, { id: 'u4' }] }, /at most 3 extra serial ports \(ttyS1-ttyS3\)/);
  invalid({ shares: [{ id: 'a', driver: 'virtiofs', source: '/a', tag: 't' }, { id: 'b', source: '/b', tag: 't' }] }, /mount tag "t" is used by two shared folders/);
  invalid({ shares: [{ id: 'a', driver: 'virtiofs', source: '/a', tag: 't', readOnly: true }] }, /virtiofs shares cannot be read-only here/);
  assert.throws(() => def({ vsock: { cid: 2 } }), HangarError, 'CIDs 0-2 are reserved');
  assert.equal(def({ vsock: { cid: 3 } }).vsock!.cid, 3);
});

test('builders: tap (with and without vhost), bridge with vhost, vhost-user (client and server); shared memory for vhost-user NICs and virtiofs', () => {
  const d = def({
    machine: 'q35',
    nics: [
      nic({ type: 'tap', ifname: 'tap0' }, 'e1000'),
      nic({ type: 'tap', ifname: 'tap1', vhost: true }, 'virtio-net', 'net1', '52:54:00:00:00:02'),
      nic({ type: 'bridge', bridge: 'br0', vhost: true }, 'virtio-net', 'net2', '52:54:00:00:00:03'),
      nic({ type: 'vhost-user', socket: '/run/sw, a.sock' }, 'virtio-net', 'net3', '52:54:00:00:00:04'),
      nic({ type: 'vhost-user', socket: '/run/b.sock', server: true }, 'virtio-net', 'net4', '52:54:00:00:00:05'),
    ],
  });
  const argv = buildArgv(d, { accel: 'tcg', paths, bridgeHelper: '/h/qemu-bridge-helper' });
  assert.deepEqual(jsonArgs(argv, '-netdev'), [
    { type: 'tap', id: 'net0-net', ifname: 'tap0', script: 'no', downscript: 'no' },
    { type: 'tap', id: 'net1-net', ifname: 'tap1', script: 'no', downscript: 'no', vhost: true },
    { type: 'tap', id: 'net2-net', helper: '/h/qemu-bridge-helper', br: 'br0', vhost: true },
    { type: 'vhost-user', id: 'net3-net', chardev: 'net3-vhu' },
    { type: 'vhost-user', id: 'net4-net', chardev: 'net4-vhu' },
  ]);
  assert.ok(argv.includes('socket,id=net3-vhu,path=/run/sw,, a.sock'), 'QEMU connects; the comma is doubled');
  assert.ok(argv.includes('socket,id=net4-vhu,path=/run/b.sock,server=on,wait=off'), 'QEMU listens');
  assert.ok(needsSharedMemory(d));
  assert.ok(argv.some((a) => a.includes('"qom-type":"memory-backend-memfd"') && a.includes('"share":true')));
  assert.ok(!needsSharedMemory(def({ nics: [nic({ type: 'tap', ifname: 'tap0', vhost: true })] })), 'vhost-net needs no shared memory');
  assert.ok(needsSharedMemory(def({ shares: [{ id: 'fs0', driver: 'virtiofs', source: '/srv', tag: 'srv' }] })));
  assert.ok(!needsSharedMemory(def({ shares: [{ id: 'fs0', source: '/srv', tag: 'srv' }] })), 'virtio-9p is served by QEMU itself');
});

test('builders: channels on one virtio-serial controller, UARTs pinned to ttyS1..3, vsock, virtiofs; the paths each needs are required', () => {
  const d = def({
    machine: 'q35',
    channels: [{ id: 'ga', name: 'org.qemu.guest_agent.0' }, { id: 'c2', name: 'com.example' }],
    serialPorts: [{ id: 'u1', output: 'log' }, { id: 'u2', output: 'socket' }],
    vsock: { cid: 9 },
    shares: [{ id: 'fs0', driver: 'virtiofs', source: '/srv', tag: 'srv' }],
  });
  const argv = buildArgv(d, { accel: 'tcg', paths, vmDir: '/vm' });
  const devices = jsonArgs(argv, '-device');
  assert.deepEqual(devices.filter((x) => x.driver === 'virtio-serial-pci'), [{ driver: 'virtio-serial-pci', id: 'vser0' }]);
  assert.deepEqual(devices.filter((x) => x.driver === 'virtserialport'), [
    { driver: 'virtserialport', id: 'ga', bus: 'vser0.0', chardev: 'ga-chardev', name: 'org.qemu.guest_agent.0' },
    { driver: 'virtserialport', id: 'c2', bus: 'vser0.0', chardev: 'c2-chardev', name: 'com.example' },
  ]);
  assert.ok(argv.includes('socket,id=ga-chardev,path=/r/chan0.sock,server=on,wait=off'));
  assert.ok(argv.includes('file,id=u1-chardev,path=/vm/logs/u1.log,append=on'));
  assert.ok(argv.includes('socket,id=u2-chardev,path=/r/ttyS2.sock,server=on,wait=off'));
  assert.deepEqual(devices.filter((x) => x.driver === 'isa-serial').map((x) => [x.id, x.index]), [['serial0', undefined], ['u1', 1], ['u2', 2]]);
  assert.deepEqual(devices.find((x) => x.id === 'vsock0'), { driver: 'vhost-vsock-pci', id: 'vsock0', 'guest-cid': 9 });
  assert.deepEqual(devices.find((x) => x.id === 'fs0'), { driver: 'vhost-user-fs-pci', id: 'fs0', chardev: 'fs0-virtiofs', tag: 'srv' });
  assert.ok(argv.includes('socket,id=fs0-virtiofs,path=/r/vfs0.sock'), 'QEMU connects to virtiofsd');
  const micro = def({ machine: 'microvm', boot: { kernel: { kernel: '/k' } }, channels: [{ id: 'ga', name: 'x' }], vsock: { cid: 3 }, shares: [{ id: 'fs0', driver: 'virtiofs', source: '/s', tag: 's' }] });
  const mdev = jsonArgs(buildArgv(micro, { accel: 'tcg', paths }), '-device').map((x) => x.driver);
  for (const drv of ['virtio-serial-device', 'vhost-vsock-device', 'vhost-user-fs-device']) assert.ok(mdev.includes(drv), drv);
  const bare = { qmpSocket: '/q', serialSocket: '/s', pidfile: '/p' };
  assert.throws(() => buildArgv(d, { accel: 'tcg', paths: { ...paths, channelSocket: undefined }, vmDir: '/vm' }), /channels but no channel socket paths/);
  assert.throws(() => buildArgv(d, { accel: 'tcg', paths }), /serial port logging to a file but no VM folder/);
  assert.throws(() => buildArgv(d, { accel: 'tcg', paths: bare, vmDir: '/vm' }), /virtiofs share but no virtiofsd socket paths/);
});

test('runtime paths: channel, serial port and virtiofsd sockets fit the unix socket limit in the longest runtime dir', () => {
  const runtime = `/${'r'.repeat(SOCKET_PATH_MAX - '/vms/00000000-0000-0000-0000-000000000000/serial0.sock'.length - 1)}`;
  const p = vmRuntimePaths(runtime, '00000000-0000-0000-0000-000000000000');
  for (const s of [p.serialSocket, p.channelSocket(99), p.serialPortSocket(2), p.virtiofsdSocket(99)]) assert.ok(Buffer.byteLength(s) <= SOCKET_PATH_MAX, s);
  assert.match(p.serialPortSocket(0), /\/ttyS1\.sock$/, 'named after the guest tty');
  assert.match(p.virtiofsdPidfile(0), /\/vfs0\.pid$/);
});

test('virtiofsd argv: socket, source (a comma escaped for its -o parser), cache auto', () => {
  const share = def({ shares: [{ id: 'fs0', driver: 'virtiofs', source: '/srv/a,b', tag: 's' }] }).shares[0]!;
  assert.deepEqual(virtiofsdArgs(share, { socket: '/r/vfs0.sock' }), ['--socket-path=/r/vfs0.sock', '-o', 'source=/srv/a\\,b', '-o', 'cache=auto']);
});

test('start checks against fixture /dev and /sys trees: vhost-net, vhost-vsock, tun, the tap device, a vhost-user socket', async () => {
  const root = mkdtempSync(join(tmpdir(), 'hgt-devchk-'));
  try {
    const dev = join(root, 'dev');
    const sys = join(root, 'sys');
    mkdirSync(join(dev, 'net'), { recursive: true });
    mkdirSync(join(sys, 'class', 'net', 'eth0'), { recursive: true });
    const opts = { devRoot: dev, sysRoot: sys };
    const refused = async (extra: Record<string, unknown>, re: RegExp, hint?: RegExp): Promise<void> => {
      await assert.rejects(checkDeviceBackends(def(extra), opts), (e: unknown) => e instanceof HangarError && re.test(e.message) && (!hint || hint.test(e.hint ?? '')), String(re));
    };
    await refused({ nics: [nic({ type: 'tap', ifname: 'tap0', vhost: true })] }, /NIC "net0" has vhost on, and \/dev\/vhost-net missing: load the vhost_net module \(modprobe vhost_net\)/, /modprobe vhost_net, or turn vhost off/);
    await refused({ vsock: { cid: 5 } }, /\/dev\/vhost-vsock missing: load the vhost_vsock module \(modprobe vhost_vsock\)/, /or remove vsock/);
    await refused({ nics: [nic({ type: 'tap', ifname: 'tap0' })] }, /\/dev\/net\/tun missing: load the tun module \(modprobe tun\)/);
    writeFileSync(join(dev, 'net', 'tun'), '');
    writeFileSync(join(dev, 'vhost-net'), '');
    await refused({ nics: [nic({ type: 'tap', ifname: 'tap0', vhost: true })] }, /uses the tap device tap0, which does not exist/, /ip tuntap add dev tap0 mode tap user \S+/);
    await refused({ nics: [nic({ type: 'tap', ifname: 'eth0' })] }, /uses eth0 as a tap device, but it is not a tun\/tap interface/);
    mkdirSync(join(sys, 'class', 'net', 'tap0'));
    writeFileSync(join(sys, 'class', 'net', 'tap0', 'tun_flags'), '0x1002\n');
    await checkDeviceBackends(def({ nics: [nic({ type: 'tap', ifname: 'tap0', vhost: true })] }), opts);
    const sock = join(root, 'sw.sock');
    await refused({ nics: [nic({ type: 'vhost-user', socket: sock })] }, /connects to the vhost-user socket .*sw\.sock, which does not exist/, /or set server=on/);
    await checkDeviceBackends(def({ nics: [nic({ type: 'vhost-user', socket: sock, server: true })] }), opts);
    const server = createServer();
    await new Promise<void>((r) => server.listen(sock, r));
    try {
      await checkDeviceBackends(def({ nics: [nic({ type: 'vhost-user', socket: sock })] }), opts);
    } finally {
      server.close();
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('--nic tap / vhost-user / bridge vhost', async () => {
  assert.deepEqual(await parseNic('tap,ifname=tap0', 1), { id: 'net1', network: { type: 'tap', ifname: 'tap0' } });
  assert.deepEqual(await parseNic('tap,ifname=tap0,vhost=on,model=virtio-net,mac=52:54:00:AA:00:01', 0),
    { id: 'net0', network: { type: 'tap', ifname: 'tap0', vhost: true }, model: 'virtio-net', mac: '52:54:00:aa:00:01' });
  assert.deepEqual(await parseNic('vhost-user,socket=/run/vhu0.sock,server=on', 0), { id: 'net0', network: { type: 'vhost-user', socket: '/run/vhu0.sock', server: true } });
  assert.deepEqual(await parseNic('vhost-user,socket=/run/vhu0.sock', 0), { id: 'net0', network: { type: 'vhost-user', socket: '/run/vhu0.sock' } });
  await assert.rejects(parseNic('tap', 0), /--nic tap needs the tap device: ifname=NAME/);
  await assert.rejects(parseNic('vhost-user', 0), /--nic vhost-user needs the back end's socket: socket=PATH/);
  await assert.rejects(parseNic('tap,ifname=tap0,server=on', 0), /unknown option "server"/);
  await assert.rejects(parseNic('vhost-user,socket=/s,vhost=on', 0), /unknown option "vhost"/);
  await assert.rejects(parseNic('tap,ifname=tap0,hostfwd=tcp::1-:2', 0), /--nic tap: hostfwd= is only for user-mode NICs/);
});

test('advice and rows: the new choices are configurable; each device shows with its mode', () => {
  for (const id of ['vhost-net', 'vhost-user-net', 'virtiofs', 'vhost-vsock', 'tap', 'virtio-serial', 'isa-serial']) {
    const c = deviceChoices.find((x) => x.id === id);
    assert.ok(c?.supported, `${id} is in the table and supported`);
  }
  const d = def({
    nics: [nic({ type: 'tap', ifname: 'tap0' }), nic({ type: 'tap', ifname: 'tap1', vhost: true }, 'virtio-net', 'net1', '52:54:00:00:00:02'),
      nic({ type: 'bridge', bridge: 'br0', vhost: true }, 'virtio-net', 'net2', '52:54:00:00:00:03'), nic({ type: 'vhost-user', socket: '/s.sock' }, 'virtio-net', 'net3', '52:54:00:00:00:04'),
      nic({ type: 'tap', ifname: 'tap9' }, 'e1000', 'net4', '52:54:00:00:00:05')],
    channels: [{ id: 'ga', name: 'org.qemu.guest_agent.0' }], serialPorts: [{ id: 'u1' }], vsock: { cid: 3 },
    shares: [{ id: 'fs0', driver: 'virtiofs', source: '/srv', tag: 'srv' }],
  });
  const rows = deviceRows(d).map((r) => `${r.kind}/${r.id}/${r.type}/${r.mode}`);
  assert.deepEqual(rows, [
    'nic/net0/virtio-net/Paravirtual', 'nic/net1/virtio-net/vhost (host kernel)', 'nic/net2/virtio-net/vhost (host kernel)',
    'nic/net3/virtio-net/vhost-user (user-space back end)', 'nic/net4/e1000/Emulated',
    'share/fs0/virtiofs/vhost-user (user-space back end)', 'channel/ga/virtio-serial/Paravirtual', 'vsock/vsock0/vhost-vsock/vhost (host kernel)',
    'serial/serial0/isa-serial/Emulated', 'serial/u1/isa-serial/Emulated',
  ]);
  const detail = (id: string): string => deviceRows(d).find((r) => r.id === id)!.detail;
  assert.match(detail('net1'), /tap tap1, vhost-net/);
  assert.match(detail('net3'), /vhost-user socket \/s\.sock/);
  assert.match(detail('u1'), /ttyS1, logs\/u1\.log/);
  assert.match(detail('vsock0'), /guest CID 3/);
});
