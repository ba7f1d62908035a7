// passt NICs: the model, the CLI's --nic passt, the netdev QEMU gets, passt's own command line
// and the runtime paths (without running passt; tests/integration/passt.test.ts runs it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDefinition } from '../../core/common/definition.ts';
import { HangarError } from '../../core/common/errors.ts';
import { parseNic } from '../../core/node/cli/create-args.ts';
import { requireBinary } from '../../core/node/host/binaries.ts';
import { MAX_PASST_NICS, runtimeDir, SOCKET_PATH_MAX, vmRuntimePaths } from '../../core/node/paths.ts';
import { netdevProps } from '../../core/node/qemu/devices/nic.ts';
import { BusAllocator } from '../../core/node/qemu/devices/buses.ts';
import { buildArgv } from '../../core/node/qemu/vm-argv.ts';
import { isOurPasst, passtArgs, passtLogFile, passtPortSpec, stopAllPasst } from '../../core/node/service/passt.ts';

const ID = '0b6c1c2e-8f0a-4c59-9d3e-8a6f1d1e2a3b';

function def(network: Record<string, unknown>) {
  return parseDefinition({ version: 1, id: ID, name: 'p', nics: [{ id: 'net0', mac: '52:54:00:00:00:01', network }] });
}

test('model: passt networks parse with default port forwards; user networks load unchanged', () => {
  const p = def({ type: 'passt' });
  assert.deepEqual(p.nics[0]!.network, { type: 'passt', portForwards: [] });
  const withFwd = def({ type: 'passt', portForwards: [{ hostPort: 2222, guestPort: 22 }], future: 1 });
  assert.deepEqual(withFwd.nics[0]!.network, { type: 'passt', portForwards: [{ protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: 2222, guestPort: 22 }], future: 1 },
    'defaults filled in, unknown fields kept');
  const u = def({ type: 'user', tftp: '/srv/tftp', bootfile: 'boot.ipxe' });
  assert.deepEqual(u.nics[0]!.network, { type: 'user', portForwards: [], tftp: '/srv/tftp', bootfile: 'boot.ipxe' });
  assert.throws(() => def({ type: 'bridge' }), HangarError);
  assert.throws(() => def({}), HangarError);
});

test('--nic passt: model, mac, repeated hostfwd; tftp/bootfile refused; unknown back ends named', async () => {
  assert.deepEqual(await parseNic('passt', 0), { id: 'net0', network: { type: 'passt', portForwards: [] } });
  assert.deepEqual(await parseNic('passt,model=e1000,mac=52:54:00:AB:CD:EF,hostfwd=tcp::2222-:22,hostfwd=udp:0.0.0.0:5353-:53', 1), {
    id: 'net1', model: 'e1000', mac: '52:54:00:ab:cd:ef',
    network: { type: 'passt', portForwards: [
      { protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: 2222, guestPort: 22 },
      { protocol: 'udp', hostAddress: '0.0.0.0', hostPort: 5353, guestPort: 53 },
    ] },
  });
  await assert.rejects(parseNic('passt,tftp=/srv', 0), /--nic passt: tftp= is only for --nic user/);
  await assert.rejects(parseNic('passt,bootfile=boot.ipxe', 0), /--nic passt: bootfile= is only for --nic user/);
  await assert.rejects(parseNic('passt,foo=1', 0), /--nic: unknown option "foo"/);
  await assert.rejects(parseNic('vde', 0), (e: HangarError) => /--nic "vde": unknown network back end \(known: user = .*; passt = /.test(e.message) && /user\|passt/.test(e.hint ?? ''));
  assert.deepEqual((await parseNic('user,tftp=/srv,bootfile=b', 0)).network, { type: 'user', portForwards: [], tftp: '/srv', bootfile: 'b' });
});

test('netdev: a passt NIC is a stream netdev connecting to its passt socket', () => {
  const nic = def({ type: 'passt', portForwards: [{ hostPort: 2222, guestPort: 22 }] }).nics[0]!;
  const ctx = { machine: 'q35' as const, buses: new BusAllocator('q35'), bootIndex: new Map<string, number>() };
  assert.deepEqual(netdevProps(nic, { ...ctx, passtSockets: new Map([['net0', '/run/x/passt0.sock']]) }),
    { type: 'stream', id: 'net0-net', server: false, addr: { type: 'unix', path: '/run/x/passt0.sock' } });
  assert.throws(() => netdevProps(nic, ctx), /no passt socket/);
  const paths = { qmpSocket: '/r/qmp.sock', serialSocket: '/r/serial0.sock', pidfile: '/r/qemu.pid' };
  assert.throws(() => buildArgv(def({ type: 'passt' }), { accel: 'tcg', paths }), /passt NIC but no passt socket paths/);
  const argv = buildArgv(def({ type: 'passt' }), { accel: 'tcg', paths: { ...paths, passtSocket: (i) => `/r/passt${i}.sock` } });
  assert.ok(argv.includes('{"type":"stream","id":"net0-net","server":false,"addr":{"type":"unix","path":"/r/passt0.sock"}}'), argv.join(' '));
  assert.ok(!argv.some((a) => a.includes('hostfwd')), 'passt binds the forwards, not QEMU');
});

test('passt command line: socket, pidfile, log, one client; forwards as [ADDR/]HOST:GUEST; --runas 0 only as root', () => {
  const p = { vmDir: '/d/vm', nicId: 'net1', socket: '/r/passt1.sock', pidfile: '/r/passt1.pid' };
  const fwds = [
    { protocol: 'tcp' as const, hostAddress: '127.0.0.1', hostPort: 2222, guestPort: 22 },
    { protocol: 'udp' as const, hostAddress: '', hostPort: 5353, guestPort: 53 },
    { protocol: 'tcp' as const, hostAddress: '::1', hostPort: 8080, guestPort: 80 },
  ];
  assert.deepEqual(passtArgs(p, fwds, { euid: 1000 }), [
    '--socket', '/r/passt1.sock', '--pid', '/r/passt1.pid', '--log-file', '/d/vm/logs/passt-net1.log', '--one-off',
    '-t', '127.0.0.1/2222:22', '-u', '5353:53', '-t', '::1/8080:80',
  ]);
  assert.deepEqual(passtArgs(p, [], { euid: 0 }), [
    '--socket', '/r/passt1.sock', '--pid', '/r/passt1.pid', '--log-file', '/d/vm/logs/passt-net1.log', '--one-off', '--runas', '0',
  ]);
  assert.equal(passtPortSpec({ protocol: 'tcp', hostAddress: '0.0.0.0', hostPort: 1, guestPort: 2 }), '0.0.0.0/1:2');
  assert.equal(passtLogFile('/d/vm', 'net0'), '/d/vm/logs/passt-net0.log');
});

test('passt sockets are numbered by NIC position and stay within the unix socket limit', () => {
  const p = vmRuntimePaths('/run/user/1000/hangar', ID);
  assert.equal(p.passtSocket(0), `/run/user/1000/hangar/vms/${ID}/passt0.sock`);
  assert.equal(p.passtPidfile(3), `/run/user/1000/hangar/vms/${ID}/passt3.pid`);
  assert.throws(() => p.passtSocket(MAX_PASST_NICS), /at most 100 passt NICs/);
  assert.throws(() => p.passtSocket(-1), HangarError);
  // The longest runtime dir Hangar keeps, and the short fallback beyond it.
  for (const home of ['/tmp/' + 'h'.repeat(44), '/tmp/' + 'x'.repeat(120)]) {
    const q = vmRuntimePaths(runtimeDir({ HANGAR_HOME: home }), ID);
    assert.ok(Buffer.byteLength(q.passtSocket(MAX_PASST_NICS - 1)) <= SOCKET_PATH_MAX, q.passtSocket(MAX_PASST_NICS - 1));
  }
});

test('passt is a known host program (apt package passt)', () => {
  assert.throws(() => requireBinary('passt', undefined, { env: { PATH: '' }, fallbackDirs: [] }),
    (e: HangarError) => e.code === 'host-missing' && e.hint === 'install it: apt-get install passt');
});

test('stopping passt never kills a process that is not the passt of that socket', async () => {
  assert.equal(isOurPasst(process.pid, '/r/passt0.sock'), false, 'this node process is not passt');
  const dir = mkdtempSync(join(tmpdir(), 'hg-passt-'));
  try {
    // Stale files of an earlier run; the pidfile names a live process that is not passt (us).
    writeFileSync(join(dir, 'passt0.pid'), `${process.pid}\n`);
    writeFileSync(join(dir, 'passt0.sock'), '');
    writeFileSync(join(dir, 'passt1.pid'), 'garbage');
    writeFileSync(join(dir, 'qemu.pid'), `${process.pid}\n`);
    await stopAllPasst(dir);
    assert.deepEqual(readdirSync(dir), ['qemu.pid'], 'passt files removed, others kept');
    await stopAllPasst(join(dir, 'missing'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
