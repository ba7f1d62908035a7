// Bridged NICs end to end (real CLI, daemon, QEMU under TCG, the test guest booted by kernel +
// initrd): a real Linux bridge with a host address, allowed in qemu-bridge-helper's ACL; QEMU's
// helper puts a tap device on it, the guest takes an address on the bridge's LAN and talks to the
// host both ways; the tap leaves the bridge when the VM is destroyed. A missing bridge and an ACL
// that does not allow (or denies) the bridge fail the start before QEMU runs, with the fix.
// Needs root (bridges, /etc/qemu/bridge.conf): fails, never skips, without it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { BRIDGE_CONF, bridgeAccess, findBridgeHelper } from '../../core/node/host/bridges.ts';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import { addAclLines, createBridge, requireRoot, testBridgeName } from '../helpers/bridge-host.ts';
import type { TestBridge } from '../helpers/bridge-host.ts';
import { HangarHarness, sleep } from '../helpers/hangar.ts';

let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;
const HOST_IP = '10.231.0.1';
const GUEST_IP = '10.231.0.2';

interface Info { id: string; dir: string; pid?: number; state: string; definition: { nics: Array<{ id: string; mac: string; network: Record<string, unknown> }> } }

/** Connects to addr:port, sends `send`, returns what came back until `expect` (retried while the guest is not listening yet). */
async function exchange(host: string, port: number, send: string, expect: string, timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const got = await new Promise<string>((resolve) => {
      let data = '';
      const s = createConnection({ host, port });
      const t = setTimeout(() => { s.destroy(); resolve(data); }, 10_000);
      s.setEncoding('utf8');
      s.on('connect', () => { s.write(send); });
      s.on('data', (d: string) => { data += d; if (data.includes(expect)) { clearTimeout(t); s.end(); resolve(data); } });
      s.on('error', (e) => { clearTimeout(t); last = e.message; resolve(data); });
      s.on('close', () => { clearTimeout(t); resolve(data); });
    });
    if (got.includes(expect)) return got;
    if (Date.now() > deadline) throw new Error(`no "${expect}" from ${host}:${port} within ${timeoutMs} ms (last: ${last || JSON.stringify(got)})`);
    await sleep(500);
  }
}

async function waitNoPorts(br: TestBridge, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (br.ports().length) {
    if (Date.now() > deadline) throw new Error(`${br.name} still has ports: ${br.ports().join(' ')}`);
    await sleep(100);
  }
}

before(async () => {
  requireRoot('the bridged NIC integration test');
  guest = await ensureTestGuest();
  h = new HangarHarness();
});

after(async () => {
  await h?.cleanup();
});

describe('bridge', () => {
  test('a bridge NIC: the helper puts a tap on the bridge, guest and host talk over it both ways; the tap is gone after destroy',
    { timeout: 600_000 }, async () => {
      const br = createBridge(testBridgeName('hgtbr-'), `${HOST_IP}/24`);
      const restoreAcl = addAclLines([`allow ${br.name}`]);
      try {
        const vm = await h.json<Info>(['create', '--name', 'bn', '--memory', '256', '--accel', 'tcg',
          '--nic', `bridge,br=${br.name},model=virtio-net`,
          '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE]);
        assert.deepEqual(vm.definition.nics[0]!.network, { type: 'bridge', bridge: br.name, vhost: false });
        assert.match(await h.ok(['show', 'bn']), new RegExp(`^NIC net0: +virtio-net \\S+ bridge ${br.name}$`, 'm'));
        assert.deepEqual(br.ports(), [], 'nothing on the bridge before start');

        await h.ok(['start', 'bn']);
        const pid = (await h.json<Info>(['show', 'bn'])).pid!;
        const qemuArgv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        const netdev = JSON.stringify({ type: 'bridge', id: 'net0-net', br: br.name, helper: findBridgeHelper() });
        assert.ok(qemuArgv.includes(netdev), `QEMU runs with ${netdev}: ${qemuArgv.join(' ')}`);
        const ports = br.ports();
        assert.equal(ports.length, 1, `one tap on ${br.name}: ${ports.join(' ')}`);
        const tap = ports[0]!;
        assert.match(tap, /^tap\d+$/);

        // The guest on the bridge's LAN: a static address, then guest -> host (ping) and host -> guest -> host (TCP).
        await h.waitForSerial(vm.id, READY_MARKER, 1, 240_000);
        const ping = await h.consoleCommand('bn', `ip addr add ${GUEST_IP}/24 dev eth0; ip link set eth0 up; ping -c 3 -w 30 ${HOST_IP}`, 20);
        assert.match(ping, /(\d+) packets transmitted, [1-9]\d* packets received/, `the guest reaches ${HOST_IP} over the bridge:\n${ping}`);
        await h.consoleCommand('bn', '(echo PONG-FROM-GUEST | nc -l -p 8080 > /tmp/got) &', 2);
        const reply = await exchange(GUEST_IP, 8080, 'PING-FROM-HOST\n', 'PONG-FROM-GUEST');
        assert.match(reply, /PONG-FROM-GUEST/);
        await sleep(1000);
        const got = await h.consoleCommand('bn', 'cat /tmp/got', 3);
        assert.match(got, /^PING-FROM-HOST\r?$/m, got);
        const mac = vm.definition.nics[0]!.mac;
        const fdb = readFileSync(`/proc/net/arp`, 'utf8');
        assert.ok(fdb.split('\n').some((l) => l.startsWith(`${GUEST_IP} `) && l.includes(mac) && l.includes(br.name)), `the host learned ${GUEST_IP} at ${mac} on ${br.name}:\n${fdb}`);

        await h.ok(['destroy', 'bn']);
        assert.equal(await h.state('bn'), 'stopped');
        await waitNoPorts(br);
        assert.ok(!existsSync(`/sys/class/net/${tap}`), `${tap} is gone with QEMU`);
      } finally {
        restoreAcl();
        br.remove();
      }
    });

  test('start fails before QEMU runs: a bridge that does not exist, one the ACL does not allow, one it denies; each with the fix',
    { timeout: 120_000 }, async () => {
      const create = async (name: string, bridge: string): Promise<Info> => h.json<Info>(['create', '--name', name, '--accel', 'tcg',
        '--nic', `bridge,br=${bridge}`, '--kernel', guest.kernel, '--initrd', guest.initrd]);
      const failStart = async (vm: Info, name: string): Promise<string> => {
        const r = await h.run(['start', name]);
        assert.notEqual(r.code, 0, `start ${name} must fail`);
        assert.equal(await h.state(name), 'stopped');
        assert.ok(!existsSync(join(vm.dir, 'logs', 'qemu.log')), 'QEMU never ran');
        return r.stderr;
      };

      // No such bridge: the reason lists the bridges there are.
      const missing = testBridgeName('hgtbr-', 'n');
      const other = createBridge(testBridgeName('hgtbr-', 'o'));
      try {
        const vm = await create('nobr', missing);
        const err = await failStart(vm, 'nobr');
        assert.match(err, new RegExp(`cannot use host bridge ${missing}: there is no bridge ${missing} on this host \\(this host's bridges: [^)]*${other.name}`), err);
        assert.match(err, new RegExp(`fix: .*create it: sudo ip link add ${missing} type bridge`), err);
      } finally {
        other.remove();
      }

      const br = createBridge(testBridgeName('hgtbr-', 'd'));
      try {
        // The ACL exists but does not name the bridge.
        let restoreAcl = addAclLines([`allow ${br.name}x`]);
        try {
          assert.equal(bridgeAccess(br.name).usable, false, `this host's ${BRIDGE_CONF} already allows ${br.name} (allow all?): cannot test a refusal`);
          const vm = await create('noacl', br.name);
          const err = await failStart(vm, 'noacl');
          assert.match(err, new RegExp(`cannot use host bridge ${br.name}: the bridge helper's ACL ${BRIDGE_CONF} does not allow bridge ${br.name}`), err);
          assert.ok(err.includes(`fix: echo "allow ${br.name}" | sudo tee -a ${BRIDGE_CONF}`), err);
        } finally {
          restoreAcl();
        }
        // Allowed, but also denied: deny wins, and the fix names the line.
        restoreAcl = addAclLines([`allow ${br.name}`, `deny ${br.name}`]);
        try {
          const vm = await create('denied', br.name);
          const err = await failStart(vm, 'denied');
          assert.match(err, new RegExp(`the bridge helper's ACL denies bridge ${br.name}: line \\d+ of ${BRIDGE_CONF} is "deny ${br.name}"`), err);
          assert.match(err, new RegExp(`fix: delete line \\d+ \\("deny ${br.name}"\\) of ${BRIDGE_CONF}`), err);
        } finally {
          restoreAcl();
        }
      } finally {
        br.remove();
      }
    });

  test('--nic bridge refuses port forwards with the reason', async () => {
    const r = await h.run(['create', '--name', 'x', '--nic', 'bridge,br=br0,hostfwd=tcp::2222-:22']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--nic bridge: hostfwd= is only for user-mode NICs/);
  });
});
