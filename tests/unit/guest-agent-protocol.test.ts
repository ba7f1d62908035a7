// The qemu-ga protocol parts that need no QEMU: the sync handshake's byte stream, exec output,
// interfaces and OS info; and a fake agent on a unix socket for the client's timeouts, the
// background poll giving way to other callers, and the list's agent watch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentReader, decodeExecStatus, encodeSync, isSyncAnswer, parseInterfaces, parseOsInfo } from '../../core/node/agent/protocol.ts';
import { AgentSession, withAgent } from '../../core/node/agent/client.ts';
import { agentInstallHint, guestAddresses, withAgentChannel } from '../../core/common/guest-agent.ts';
import type { GuestSummary } from '../../core/common/guest-agent.ts';
import { queryAgentInfo } from '../../core/node/agent/agent-ops.ts';
import { AgentWatch, guestDiffers, guestSummaryOf } from '../../core/node/agent/agent-watch.ts';
import type { WatchedVm } from '../../core/node/agent/agent-watch.ts';

test('the sync request starts with 0xFF and carries the id', () => {
  const b = encodeSync(42);
  assert.equal(b[0], 0xff);
  assert.deepEqual(JSON.parse(b.subarray(1).toString()), { execute: 'guest-sync-delimited', arguments: { id: 42 } });
});

test('the reader drops what comes before the delimiter, then splits JSON lines across chunks', () => {
  const r = new AgentReader();
  r.expectDelimiter();
  // A late answer and half a line left by an earlier client, then the agent's delimiter.
  assert.deepEqual(r.feed(Buffer.from('{"return": {}}\n{"retu')), []);
  assert.deepEqual(r.feed(Buffer.concat([Buffer.from('rn": 7}\n'), Buffer.from([0xff]), Buffer.from('{"return": 4')])), []);
  const msgs = r.feed(Buffer.from('2}\n{"return": {"pid": 9}}\nnot json\n{"error": {"class": "GenericError", "desc": "no"}}\n'));
  assert.deepEqual(msgs, [{ return: 42 }, { return: { pid: 9 } }, { error: { class: 'GenericError', desc: 'no' } }]);
  assert.ok(isSyncAnswer(msgs[0]!, 42));
  assert.ok(!isSyncAnswer({ return: 7 }, 42));
});

test('exec status output is base64-decoded, with exit code, signal and truncation', () => {
  assert.deepEqual(decodeExecStatus({ exited: true, exitcode: 0, 'out-data': Buffer.from('hi\n').toString('base64') }), { exitCode: 0, stdout: 'hi\n', stderr: '' });
  assert.deepEqual(decodeExecStatus({ exited: true, signal: 9, 'err-data': Buffer.from('ünï').toString('base64'), 'err-truncated': true }),
    { exitCode: null, stdout: '', stderr: 'ünï', signal: 9, truncated: true });
});

test('interfaces leave out loopback and carry addresses with prefixes', () => {
  const ifs = parseInterfaces([
    { name: 'lo', 'hardware-address': '00:00:00:00:00:00', 'ip-addresses': [{ 'ip-address': '127.0.0.1', prefix: 8 }] },
    { name: 'eth0', 'hardware-address': '52:54:00:12:34:56', 'ip-addresses': [{ 'ip-address': '10.0.2.15', prefix: 24 }, { 'ip-address': 'fe80::1', prefix: 64 }] },
    { name: 'eth1' },
  ]);
  assert.deepEqual(ifs, [
    { name: 'eth0', mac: '52:54:00:12:34:56', addresses: ['10.0.2.15/24', 'fe80::1/64'] },
    { name: 'eth1', addresses: [] },
  ]);
  assert.deepEqual(guestAddresses({ interfaces: ifs }), ['10.0.2.15']);
  assert.deepEqual(parseInterfaces('nonsense'), []);
});

test('OS info keeps the fields the UI shows', () => {
  assert.deepEqual(parseOsInfo({ name: 'Debian GNU/Linux', 'pretty-name': 'Debian GNU/Linux 12 (bookworm)', version: '12 (bookworm)', id: 'debian', 'kernel-release': '6.1.0' }),
    { name: 'Debian GNU/Linux', prettyName: 'Debian GNU/Linux 12 (bookworm)', version: '12 (bookworm)', id: 'debian', kernel: '6.1.0' });
  assert.equal(parseOsInfo(null), undefined);
});

test('new definitions get the agent channel unless they say otherwise', () => {
  assert.deepEqual(withAgentChannel({ name: 'a' }).channels, [{ id: 'agent0', name: 'org.qemu.guest_agent.0' }]);
  assert.deepEqual(withAgentChannel({ name: 'a', channels: [] }).channels, []);
  assert.match(agentInstallHint('debian12'), /apt install qemu-guest-agent/);
  assert.match(agentInstallHint('fedora40'), /dnf install qemu-guest-agent/);
  assert.match(agentInstallHint('win11'), /virtio-win guest tools/);
});

/** A unix socket that plays QEMU's chardev: `agent` decides how to answer each line (or not). */
async function fakeChannel(agent: ((line: string, sock: Socket) => void) | null): Promise<{ path: string; close: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'hga-'));
  const path = join(dir, 'chan.sock');
  const srv = createServer((sock) => {
    let buf = '';
    sock.on('data', (d: Buffer) => {
      buf += Buffer.from(d.filter((b) => b !== 0xff)).toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        agent?.(line, sock);
      }
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => srv.listen(path, r));
  return { path, close: () => { srv.close(); rmSync(dir, { recursive: true, force: true }); } };
}

test('a channel with no agent behind it is a timeout error, quickly', async () => {
  const ch = await fakeChannel(null);
  try {
    const t0 = Date.now();
    await assert.rejects(AgentSession.open(ch.path, 300), (e: Error & { code?: string }) => e.code === 'timeout' && /did not answer within 0\.3 s/.test(e.message));
    assert.ok(Date.now() - t0 < 2000);
  } finally {
    ch.close();
  }
});

test('a session syncs past a stale answer, runs commands, and reports agent errors', async () => {
  const ch = await fakeChannel((line, sock) => {
    const msg = JSON.parse(line) as { execute: string; arguments?: { id?: number } };
    if (msg.execute === 'guest-sync-delimited') {
      sock.write('{"return": 1}\n'); // stale, from an earlier client
      sock.write(Buffer.concat([Buffer.from([0xff]), Buffer.from(`{"return": ${msg.arguments!.id}}\n`)]));
    } else if (msg.execute === 'guest-ping') {
      sock.write('{"return": {}}\n');
    } else {
      sock.write('{"error": {"class": "CommandNotFound", "desc": "not here"}}\n');
    }
  });
  try {
    const r = await withAgent(ch.path, async (s) => {
      const pong = await s.command('guest-ping');
      await assert.rejects(s.command('guest-nope'), /guest agent: guest-nope failed: not here/);
      // guest-shutdown answers only on failure; silence within the wait is success.
      return pong;
    }, 1000);
    assert.deepEqual(r, {});
  } finally {
    ch.close();
  }
});

/** A fake qemu-ga that syncs, and answers the info commands unless `silent` says so. */
function infoAgent(o: { silent: (cmd: string) => boolean; seen?: string[] }): (line: string, sock: Socket) => void {
  return (line, sock) => {
    const msg = JSON.parse(line) as { execute: string; arguments?: { id?: number } };
    o.seen?.push(msg.execute);
    if (o.silent(msg.execute)) return;
    const answers: Record<string, unknown> = {
      'guest-info': { version: '7.2' },
      'guest-get-osinfo': { 'pretty-name': 'Debian GNU/Linux 12 (bookworm)' },
      'guest-get-host-name': { 'host-name': 'hangar-test' },
      'guest-network-get-interfaces': [{ name: 'eth0', 'ip-addresses': [{ 'ip-address': '10.0.2.15', prefix: 24 }, { 'ip-address': 'fe80::5054', prefix: 64 }] }],
      'guest-ping': {},
    };
    if (msg.execute === 'guest-sync-delimited') sock.write(Buffer.concat([Buffer.from([0xff]), Buffer.from(`{"return": ${msg.arguments!.id}}\n`)]));
    else sock.write(JSON.stringify({ return: answers[msg.execute] ?? {} }) + '\n');
  };
}

test('a background query gives way at once to another caller, and never waits behind one', async () => {
  const seen: string[] = [];
  // guest-info hangs (a busy guest): the background session holds the channel until it gives way.
  const ch = await fakeChannel(infoAgent({ silent: (c) => c === 'guest-info', seen }));
  try {
    const bg = queryAgentInfo(ch.path, 1000, { background: true });
    const bgDone = assert.rejects(bg, (e: Error & { code?: string }) => e.code === 'busy');
    while (!seen.includes('guest-info')) await new Promise((r) => setTimeout(r, 10));
    const t0 = Date.now();
    await withAgent(ch.path, (s) => s.command('guest-ping'), 1000);
    assert.ok(Date.now() - t0 < 1000, `the foreground call waited ${Date.now() - t0} ms`);
    await bgDone;
    // While a foreground call holds the channel, a background one is refused at once.
    const fg = withAgent(ch.path, (s) => s.command('guest-ping'), 1000);
    await assert.rejects(queryAgentInfo(ch.path, 1000, { background: true }), (e: Error & { code?: string }) => e.code === 'busy');
    await fg;
  } finally {
    ch.close();
  }
});

test('the list\'s view of an agent: addresses without link-local ones, OS pretty name; the poll time alone is no change', () => {
  const g = guestSummaryOf({ available: true, os: { prettyName: 'Debian GNU/Linux 12 (bookworm)' }, hostname: 'h', interfaces: [{ name: 'eth0', addresses: ['10.0.2.15/24', 'fe80::1/64'] }] }, 5);
  assert.deepEqual(g, { agent: true, addresses: ['10.0.2.15'], os: 'Debian GNU/Linux 12 (bookworm)', hostname: 'h', at: 5 });
  assert.deepEqual(guestSummaryOf({ available: false, interfaces: [], reason: 'x' }, 6), { agent: false, addresses: [], at: 6 });
  assert.equal(guestDiffers(g, { ...g, at: 99 }), false);
  assert.equal(guestDiffers(g, { ...g, addresses: ['10.0.2.16'] }), true);
  assert.equal(guestDiffers(undefined, g), true);
});

test('the agent watch polls a running VM, reports changes only, and flips to no agent when it stops answering', async () => {
  let silent = false;
  const ch = await fakeChannel(infoAgent({ silent: () => silent }));
  const changes: string[] = [];
  const watch = new AgentWatch({ fastMs: 100, query: (sock) => queryAgentInfo(sock, 300, { background: true }), changed: (id) => changes.push(id) });
  const vm: WatchedVm = { id: 'vm1', state: 'running', pid: 42, agentSocket: () => ch.path };
  const until = async (ok: () => boolean, what: string): Promise<void> => {
    const deadline = Date.now() + 5000;
    while (!ok()) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  try {
    watch.track(vm);
    assert.equal(watch.summary('vm1'), undefined, 'nothing before the first poll');
    await until(() => watch.summary('vm1') !== undefined, 'the first poll');
    const g = watch.summary('vm1') as GuestSummary;
    assert.deepEqual({ ...g, at: 0 }, { agent: true, addresses: ['10.0.2.15'], os: 'Debian GNU/Linux 12 (bookworm)', hostname: 'hangar-test', at: 0 });
    assert.deepEqual(changes, ['vm1']);
    silent = true;
    // Answered once: the next poll comes 6x later (600 ms), then times out (300 ms sync).
    await until(() => watch.summary('vm1')?.agent === false, 'the agent to be seen gone');
    assert.deepEqual(changes, ['vm1', 'vm1']);
    watch.track({ ...vm, state: 'stopped' });
    assert.equal(watch.summary('vm1'), undefined, 'a stopped VM has no guest summary');
  } finally {
    watch.close();
    ch.close();
  }
});
