// An isolated VM-to-VM network with the real test guest, no root involved: two VMs on network
// "lab" ping each other and pass data over TCP; a third VM on another network reaches neither.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import { HangarHarness, sleep } from '../helpers/hangar.ts';

let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;

before(async () => {
  guest = await ensureTestGuest();
  h = new HangarHarness();
});

after(async () => {
  await h?.cleanup();
});

async function vmOn(name: string, network: string, ip: string): Promise<void> {
  const info = await h.json<{ id: string }>(['create', '--name', name, '--memory', '256', '--accel', 'tcg',
    '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE, '--nic', `isolated,network=${network},model=virtio-net`]);
  await h.ok(['start', name]);
  await h.waitForSerial(info.id, READY_MARKER, 1, 120_000);
  await h.consoleCommand(name, `ip addr add ${ip}/24 dev eth0; ip link set eth0 up`, 2);
}

describe('isolated network', () => {
  test('two VMs on one isolated network reach each other; a VM on another network does not', { timeout: 400_000 }, async () => {
    await Promise.all([vmOn('alpha', 'lab', '10.77.0.1'), vmOn('beta', 'lab', '10.77.0.2')]);
    await vmOn('gamma', 'other', '10.77.0.3');
    assert.match(await h.ok(['show', 'alpha']), /isolated network lab/);

    const ping = await h.consoleCommand('alpha', 'ping -c 3 -w 20 10.77.0.2', 22);
    assert.match(ping, /3 packets transmitted, [1-9] packets received/, ping);

    // TCP: beta listens, alpha sends a line, beta's console shows it.
    await h.consoleCommand('beta', '(nc -l -p 7777 > /tmp/got.txt &)', 2);
    await sleep(500);
    await h.consoleCommand('alpha', 'echo over-the-isolated-net | nc -w 3 10.77.0.2 7777', 6);
    const got = await h.consoleCommand('beta', 'cat /tmp/got.txt', 2);
    assert.match(got, /^over-the-isolated-net\s*$/m, got);

    const blocked = await h.consoleCommand('gamma', 'ping -c 2 -w 5 10.77.0.1; echo PING-EXIT=$?', 16);
    assert.match(blocked, /PING-EXIT=1/, `the other network is isolated:\n${blocked}`);
    assert.doesNotMatch(blocked, /[1-9] packets received/);
    for (const n of ['alpha', 'beta', 'gamma']) await h.ok(['destroy', n]);
  });

  test('bad --nic isolated options name the fix', async () => {
    const r = await h.run(['create', '--name', 'x', '--nic', 'isolated']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /needs the network name: network=NAME/);
    const r2 = await h.run(['create', '--name', 'x', '--nic', 'isolated,network=lab,hostfwd=tcp::2222-:22']);
    assert.match(r2.stderr, /hostfwd= is only for user-mode NICs/);
    const r3 = await h.run(['create', '--name', 'x', '--nic', 'isolated,network=bad name']);
    assert.match(r3.stderr, /isolated network name/);
  });
});
