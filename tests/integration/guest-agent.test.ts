// The guest agent end to end (real CLI, daemon, QEMU under TCG, the test guest booted by kernel +
// initrd with qemu-ga): a new VM gets the agent channel; the agent reports the guest's OS,
// hostname and the user-mode NIC's address (in `hangar agent info` and `hangar show`); exec
// returns output and exit codes; live disk-only snapshots freeze the guest's filesystems; a guest
// whose agent stopped gives a quick timeout, not a hang; Reboot and Shut Down go through the agent,
// and Shut Down works with the guest's ACPI handler (acpid) stopped. The core's background poll
// (fast here: HANGAR_AGENT_POLL_MS) puts the agent, address, OS and hostname in list() and
// `hangar list`, and its next poll after qemu-ga dies says agent: false with a vmChanged event.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentInfo, GuestSummary } from '../../core/common/guest-agent.ts';
import type { CoreConnection } from '../../core/node/rpc/client.ts';
import { ensureTestGuest, GUEST_CMDLINE, READY_MARKER } from '../guest/guest.ts';
import { HangarHarness, sleep } from '../helpers/hangar.ts';

let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;

interface Info { id: string; dir: string; state: string; reason?: string; definition: { channels: Array<{ id: string; name: string }> } }

const QEMU_GA = 'qemu-ga -d -m virtio-serial -p /dev/virtio-ports/org.qemu.guest_agent.0 -f /run/qemu-ga.pid -t /var/lib/qemu-ga';

/** Asks the agent until the guest's DHCP lease shows (udhcpc runs in the background at boot). */
async function infoWithAddress(name: string, address: string, timeoutMs = 120_000): Promise<AgentInfo> {
  const deadline = Date.now() + timeoutMs;
  let last: AgentInfo | undefined;
  while (Date.now() < deadline) {
    const r = await h.run(['agent', name, 'info', '--json']);
    if (r.stdout.trim()) {
      last = JSON.parse(r.stdout) as AgentInfo;
      if (last.interfaces.some((i) => i.addresses.some((a) => a.startsWith(`${address}/`)))) return last;
    }
    await sleep(1000);
  }
  throw new Error(`the agent never reported ${address}: ${JSON.stringify(last)}`);
}

/** The agent poll every 500 ms until it answers, then every 3 s (6x), so the list follows quickly. */
const POLL_MS = 500;

/** list() until the VM's guest summary satisfies ok (the core polls in the background). */
async function listedGuest(name: string, ok: (g: GuestSummary | undefined) => boolean, timeoutMs: number): Promise<GuestSummary | undefined> {
  const deadline = Date.now() + timeoutMs;
  let last: GuestSummary | undefined;
  for (;;) {
    last = (await h.json<Array<{ name: string; guest?: GuestSummary }>>(['list'])).find((v) => v.name === name)?.guest;
    if (ok(last)) return last;
    if (Date.now() > deadline) throw new Error(`list() never showed the expected guest summary for ${name}: ${JSON.stringify(last)}`);
    await sleep(300);
  }
}

before(async () => {
  guest = await ensureTestGuest();
  h = new HangarHarness({ env: { HANGAR_AGENT_POLL_MS: String(POLL_MS) } });
});

after(async () => {
  await h?.cleanup();
});

describe('guest agent', () => {
  let vm: Info;

  before(async () => {
    vm = await h.json<Info>(['create', '--name', 'ga', '--memory', '256', '--accel', 'tcg', '--nic', 'user,model=virtio-net', '--new-disk', '64M',
      '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', GUEST_CMDLINE]);
    await h.ok(['start', 'ga']);
    await h.waitForSerial(vm.id, READY_MARKER, 1, 240_000);
  });

  test('a new VM has the org.qemu.guest_agent.0 channel', () => {
    assert.deepEqual(vm.definition.channels, [{ id: 'agent0', name: 'org.qemu.guest_agent.0' }]);
  });

  test('the agent reports the OS, hostname and the NIC address; hangar show lists the address', { timeout: 180_000 }, async () => {
    const info = await infoWithAddress('ga', '10.0.2.15');
    assert.equal(info.available, true);
    assert.match(info.version ?? '', /^\d+\.\d+/);
    assert.equal(info.os?.name, 'Hangar Test Guest');
    assert.equal(info.os?.prettyName, 'Hangar Test Guest 1');
    assert.equal(info.hostname, 'hangar-guest');
    const eth0 = info.interfaces.find((i) => i.name === 'eth0');
    assert.ok(eth0, JSON.stringify(info.interfaces));
    assert.match(eth0.mac ?? '', /^52:54:00(:[0-9a-f]{2}){3}$/);
    assert.ok(!info.interfaces.some((i) => i.name === 'lo'), 'loopback left out');

    const show = await h.ok(['show', 'ga']);
    assert.match(show, /^Guest OS: +Hangar Test Guest 1/m);
    assert.match(show, /^Guest NIC eth0: 52:54:00\S+ .*10\.0\.2\.15\/24/m);
    // show --json never waits for the guest (scripts poll it); agent info --json has the addresses.
    assert.equal((await h.json<{ agent?: AgentInfo }>(['show', 'ga'])).agent, undefined);
  });

  test('list() carries what the background poll learned: agent, address, OS, hostname; hangar list shows the address', { timeout: 120_000 }, async () => {
    // The address test above saw the lease already; the poll runs every 3 s once the agent answered.
    const g = await listedGuest('ga', (x) => !!x?.agent && x.addresses.includes('10.0.2.15'), 30_000);
    assert.equal(g?.os, 'Hangar Test Guest 1');
    assert.equal(g?.hostname, 'hangar-guest');
    assert.ok(!g?.addresses.some((a) => /^fe80:|\//i.test(a)), `no link-local addresses, no prefix lengths: ${JSON.stringify(g?.addresses)}`);
    assert.ok(Math.abs(Date.now() - (g?.at ?? 0)) < 60_000, 'at is the poll time');
    const text = await h.ok(['list']);
    assert.match(text, /^NAME\s+STATE\s+VCPUS\s+MEMORY\s+ADDRESS\s+NOTE$/m, text);
    assert.match(text, /^ga\s+running\s+1\s+256 MiB\s+10\.0\.2\.15\b/m, text);
  });

  test('exec returns the output and the exit code of the guest command', { timeout: 60_000 }, async () => {
    const hi = await h.run(['agent', 'ga', 'exec', '--', 'echo', 'hi']);
    assert.equal(hi.code, 0, hi.stderr);
    assert.equal(hi.stdout, 'hi\n');
    const fail = await h.run(['agent', 'ga', 'exec', '--', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.equal(fail.code, 3);
    assert.equal(fail.stdout, 'out\n');
    assert.match(fail.stderr, /^err$/m);
    const input = await h.run(['agent', 'ga', 'exec', '--input', 'from the host\n', '--', 'cat']);
    assert.equal(input.stdout, 'from the host\n');
  });

  test('a live disk-only snapshot freezes the guest filesystems through the agent and says so', { timeout: 120_000 }, async () => {
    const out = await h.ok(['snapshot', 'create', 'ga', 'frozen', '--disk-only'], { timeoutMs: 120_000 });
    assert.match(out, /guest filesystems frozen by the guest agent \(\d+\)/);
    // Thawed afterwards: the agent reports the freeze state as thawed.
    const st = await h.run(['agent', 'ga', 'exec', '--', 'echo', 'still-writable']);
    assert.equal(st.stdout, 'still-writable\n');
    assert.match(readFileSync(join(vm.dir, 'logs', 'hangar.log'), 'utf8'), /snapshot "frozen" taken \(internal; guest filesystems frozen/);
  });

  test('with the agent stopped in the guest: the next poll says so (vmChanged); a timeout error within seconds, not a hang', { timeout: 180_000 }, async () => {
    process.env.HANGAR_HOME = h.home;
    const { connectCore } = await import('../../core/node/rpc/client.ts');
    const changed: string[] = [];
    const conn: CoreConnection = await connectCore({ autostart: false, events: { vmChanged: (e) => { changed.push(e.name); } } });
    try {
      await listedGuest('ga', (x) => x?.agent === true, 30_000);
      changed.length = 0;
      await h.consoleCommand('ga', 'killall qemu-ga; sleep 1; pidof qemu-ga || echo AGENT-GONE', 4);
      // No explicit agent call yet: only the background poll (every 3 s, 3 s sync timeout) can notice.
      const gone = await listedGuest('ga', (x) => x?.agent === false, 30_000);
      assert.deepEqual(gone?.addresses, []);
      assert.ok(changed.includes('ga'), 'a vmChanged event told clients to re-fetch');
      assert.equal((await h.json<{ state: string }>(['show', 'ga'])).state, 'running', 'the VM itself did not change state');
      assert.match(await h.ok(['list']), /^ga\s+running\s+1\s+256 MiB\s+-$/m);
    } finally {
      conn.close();
    }
    const t0 = Date.now();
    const ping = await h.run(['agent', 'ga', 'ping'], { timeoutMs: 30_000 });
    const took = Date.now() - t0;
    assert.notEqual(ping.code, 0);
    assert.match(ping.stderr, /guest agent did not answer within 3 s/);
    assert.ok(took < 10_000, `ping gave up after ${took} ms`);
    const info = await h.run(['agent', 'ga', 'info', '--json'], { timeoutMs: 30_000 });
    assert.equal(info.code, 1);
    const parsed = JSON.parse(info.stdout) as AgentInfo;
    assert.equal(parsed.available, false);
    assert.match(parsed.fix ?? '', /qemu-guest-agent/);
    const t1 = Date.now();
    assert.match(await h.ok(['show', 'ga']), /^Guest agent: not answering/m);
    assert.ok(Date.now() - t1 < 10_000, 'show waits only briefly for a silent agent');
    const snap = await h.ok(['snapshot', 'create', 'ga', 'unfrozen', '--disk-only'], { timeoutMs: 120_000 });
    assert.match(snap, /guest filesystems not frozen \(the guest agent did not answer within 2 s.*\): crash-consistent/);

    // Started again, it answers again (a session after a timed-out one is synchronised afresh).
    await h.consoleCommand('ga', QEMU_GA, 3);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const r = await h.run(['agent', 'ga', 'ping']);
      if (r.code === 0) break;
      if (Date.now() > deadline) throw new Error(`the restarted agent does not answer: ${r.stderr}`);
      await sleep(500);
    }
    await listedGuest('ga', (x) => x?.agent === true && x.addresses.includes('10.0.2.15'), 30_000);
  });

  test('Reboot goes through the agent: the guest restarts itself and QEMU keeps running', { timeout: 240_000 }, async () => {
    const pid = (await h.json<{ pid: number }>(['show', 'ga'])).pid;
    await h.ok(['reboot', 'ga']);
    await h.waitForSerial(vm.id, READY_MARKER, 2, 200_000);
    assert.match(h.serialLog(vm.id), /hangar: shutdown requested \(reboot\)/);
    assert.equal(await h.state('ga'), 'running');
    assert.equal((await h.json<{ pid: number }>(['show', 'ga'])).pid, pid, 'the same QEMU');
    assert.match(readFileSync(join(vm.dir, 'logs', 'hangar.log'), 'utf8'), /reboot requested through the guest agent/);
    // The agent of the new boot answers.
    const deadline = Date.now() + 60_000;
    while ((await h.run(['agent', 'ga', 'ping'])).code !== 0) {
      if (Date.now() > deadline) throw new Error('the agent did not come back after the reboot');
      await sleep(1000);
    }
  });

  test('Shut Down goes through the agent and works with acpid stopped', { timeout: 180_000 }, async () => {
    const killed = await h.run(['agent', 'ga', 'exec', '--', 'sh', '-c', 'killall acpid; sleep 1; pidof acpid || echo ACPID-GONE']);
    assert.match(killed.stdout, /ACPID-GONE/);
    // The mode changes while the VM runs (it changes no hardware): the agent only.
    assert.match(await h.ok(['edit', 'ga', '--shutdown-mode', 'agent']), /go through the guest agent/);
    assert.equal((await h.json<{ definition: { shutdownMode?: string } }>(['show', 'ga'])).definition.shutdownMode, 'agent');
    await h.ok(['shutdown', 'ga', '--timeout', '60'], { timeoutMs: 120_000 });
    await h.waitForState('ga', 'stopped');
    const info = await h.json<Info>(['show', 'ga']);
    assert.doesNotMatch(info.reason ?? '', /forced off/);
    assert.match(h.serialLog(vm.id), /hangar: shutdown requested \(poweroff\)/);
    assert.match(readFileSync(join(vm.dir, 'logs', 'hangar.log'), 'utf8'), /shutdown requested through the guest agent/);
  });
});
