// The console channel: replay on open, acks after the terminal processed output (batched),
// input as bytes, and the reconnect rules. A fake terminal stands in for xterm.js.
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { decodeConsoleControl, encodeConsoleControl } from '../../core/common/transport.ts';
import type { ConsoleControl } from '../../core/common/transport.ts';
import { AckBatcher, ConsoleChannel, NOTICE_VM_STOPPED } from '../../renderer/src/console/console-channel.ts';
import type { ConsoleStatus } from '../../renderer/src/console/console-channel.ts';
import { FakeCore, ManualTimers, settle } from '../../renderer/src/testing/fake-core.ts';

class FakeTerminal {
  text = '';
  resets = 0;
  notices: string[] = [];
  /** Write callbacks not yet run (the terminal is "busy"). */
  pending: (() => void)[] = [];
  autoProcess = true;
  write(data: Uint8Array, done: () => void): void {
    this.text += new TextDecoder().decode(data);
    if (this.autoProcess) done(); else this.pending.push(done);
  }
  reset(): void {
    this.resets++;
    this.text = '';
  }
  notice(t: string): void {
    this.notices.push(t);
    this.text += `\n${t}\n`;
  }
  processAll(): void {
    for (const d of this.pending.splice(0)) d();
  }
}

let core: FakeCore;
let timers: ManualTimers;
let term: FakeTerminal;
let statuses: ConsoleStatus[];
let channel: ConsoleChannel;

function controls(sent: (string | Uint8Array)[]): ConsoleControl[] {
  return sent.filter((m): m is string => typeof m === 'string').map((m) => decodeConsoleControl(m)!);
}

function acked(sent: (string | Uint8Array)[]): number[] {
  return controls(sent).filter((c) => c.type === 'ack').map((c) => (c as { bytes: number }).bytes);
}

/** The core's side of the newest console channel. */
function coreEnd(): FakeCore['consoles'][number]['core'] {
  return core.consoles.at(-1)!.core;
}

async function openLive(): Promise<void> {
  channel.setVmLive(true);
  await settle();
  coreEnd().send(encodeConsoleControl({ type: 'ready', vm: 'alpha' }));
  await settle();
  assert.equal(channel.status, 'live');
}

beforeEach(() => {
  core = new FakeCore();
  timers = new ManualTimers();
  term = new FakeTerminal();
  statuses = [];
  channel = new ConsoleChannel({ vm: 'alpha', transport: core, sink: term, timers, onStatus: (s) => statuses.push(s) });
});

describe('console channel', () => {
  it('does nothing until the VM runs, then opens with replay', async () => {
    await settle();
    assert.equal(core.consoles.length, 0);
    assert.equal(channel.status, 'idle');
    await openLive();
    assert.equal(core.consoles.length, 1);
    assert.deepEqual({ vm: core.consoles[0]!.vm, replay: core.consoles[0]!.replay }, { vm: 'alpha', replay: true });
    assert.deepEqual(statuses, ['connecting', 'live']);
  });

  it('writes output and acknowledges only what the terminal processed, batched', async () => {
    await openLive();
    term.autoProcess = false;
    const kib = new Uint8Array(1024).fill(0x61);
    for (let i = 0; i < 40; i++) coreEnd().send(kib);
    await settle();
    assert.equal(term.text.length, 40 * 1024);
    assert.deepEqual(acked(coreEnd().peer.sent), [], 'nothing acked before the terminal processed it');
    term.processAll();
    await settle();
    // 16 KiB batches as soon as they are processed; the rest after 50 ms.
    assert.deepEqual(acked(coreEnd().peer.sent), [16384, 16384]);
    await timers.advance(49);
    assert.deepEqual(acked(coreEnd().peer.sent), [16384, 16384]);
    await timers.advance(1);
    assert.deepEqual(acked(coreEnd().peer.sent), [16384, 16384, 8192]);
    const total = acked(coreEnd().peer.sent).reduce((a, b) => a + b, 0);
    assert.equal(total, 40 * 1024, 'every byte is acknowledged exactly once');
  });

  it('sends keyboard input as UTF-8 bytes', async () => {
    await openLive();
    channel.input('ls -l\r');
    channel.input('é');
    await settle();
    const bin = coreEnd().peer.sent.filter((m): m is Uint8Array => typeof m !== 'string');
    assert.deepEqual(bin.map((b) => [...b]), [[...new TextEncoder().encode('ls -l\r')], [0xc3, 0xa9]]);
  });

  it('drops the terminal\'s answers to queries in replayed history, then takes input again', async () => {
    channel.setVmLive(true);
    await settle();
    coreEnd().send(encodeConsoleControl({ type: 'ready', vm: 'alpha', replayBytes: 12 }));
    await settle();
    term.autoProcess = false;
    coreEnd().send(new TextEncoder().encode('guest# \x1b[6n'));
    coreEnd().send(new TextEncoder().encode('ab'));
    await settle();
    channel.input('\x1b[24;8R'); // xterm answering the old query while it replays
    term.processAll();
    await settle();
    channel.input('ls\r');
    await settle();
    const bin = coreEnd().peer.sent.filter((m): m is Uint8Array => typeof m !== 'string');
    assert.deepEqual(bin.map((b) => new TextDecoder().decode(b)), ['ls\r']);
  });

  it('on vm-stopped shows the notice and reconnects (reset + replay) when the VM runs again', async () => {
    await openLive();
    coreEnd().send(new TextEncoder().encode('login: '));
    await settle();
    channel.setVmLive(false);
    coreEnd().send(encodeConsoleControl({ type: 'end', reason: 'vm-stopped' }));
    coreEnd().close();
    await settle();
    assert.equal(channel.status, 'waiting-for-vm');
    assert.deepEqual(term.notices, [NOTICE_VM_STOPPED]);
    assert.match(term.text, /login: \n\[console disconnected: VM stopped\]/);
    await timers.advance(10_000);
    assert.equal(core.consoles.length, 1, 'no reconnect while the VM is stopped');

    channel.setVmLive(true);
    await settle();
    assert.equal(core.consoles.length, 2);
    assert.equal(core.consoles[1]!.replay, true);
    assert.equal(term.resets, 1, 'the terminal is reset before the replay, so nothing shows twice');
    assert.equal(term.text, '');
  });

  it('reconnects after too-slow / core-closing / an unexpected close, after a short delay', async () => {
    channel.setVmLive(true);
    for (const how of ['too-slow', 'core-closing', 'drop'] as const) {
      await settle();
      coreEnd().send(encodeConsoleControl({ type: 'ready', vm: 'alpha' }));
      coreEnd().send(new TextEncoder().encode('output'));
      await settle();
      const n = core.consoles.length;
      if (how !== 'drop') coreEnd().send(encodeConsoleControl({ type: 'end', reason: how }));
      coreEnd().close();
      await settle();
      assert.equal(channel.status, 'reconnecting', how);
      assert.equal(core.consoles.length, n);
      await timers.advance(300);
      assert.equal(core.consoles.length, n + 1, `${how}: reconnected`);
      assert.equal(core.consoles.at(-1)!.replay, true);
      assert.equal(term.text, '', `${how}: reset before the replay`);
    }
  });

  it('backs off while the core keeps refusing, and waits when the VM is not running', async () => {
    channel.setVmLive(true);
    await settle();
    core.consoleFails = new Error('could not reach the Hangar core');
    coreEnd().close();
    await settle();
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      delays.push(timers.delays()[0]!);
      await timers.advance(timers.delays()[0]!);
    }
    assert.deepEqual(delays, [300, 600, 1200, 2400, 4800, 5000]);
    channel.setVmLive(false);
    assert.equal(channel.status, 'waiting-for-vm');
    assert.equal(timers.count, 0);
  });

  it('an error control (VM not running yet) waits for the VM', async () => {
    channel.setVmLive(true);
    await settle();
    coreEnd().send(encodeConsoleControl({ type: 'error', error: { code: 'invalid-state', message: 'VM "alpha" is not running (stopped)' } }));
    coreEnd().close();
    await settle();
    assert.equal(channel.status, 'waiting-for-vm');
    assert.match(term.notices.at(-1)!, /not running/);
  });

  it('dispose closes the channel and ignores late messages', async () => {
    await openLive();
    const end = coreEnd();
    channel.dispose();
    await settle();
    assert.equal(end.closed, true);
    assert.equal(channel.status, 'disposed');
    channel.setVmLive(true);
    await settle();
    assert.equal(core.consoles.length, 1);
  });
});

describe('AckBatcher', () => {
  it('acks per 16 KiB or per 50 ms, whichever comes first', async () => {
    const t = new ManualTimers();
    const sent: number[] = [];
    const b = new AckBatcher((n) => sent.push(n), 16384, 50, t);
    b.processed(100);
    b.processed(200);
    assert.deepEqual(sent, []);
    await t.advance(50);
    assert.deepEqual(sent, [300]);
    b.processed(20000);
    assert.deepEqual(sent, [300, 20000]);
    assert.equal(t.count, 0, 'no timer left once flushed');
    b.processed(5);
    b.dispose();
    await t.advance(100);
    assert.deepEqual(sent, [300, 20000]);
  });
});
