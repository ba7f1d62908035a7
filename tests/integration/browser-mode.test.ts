// Browser mode end to end without a browser: the real `hangar serve`, the real core and a real
// guest under TCG, driven over the same WebSocket protocol the renderer uses.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ensureTestGuest, READY_MARKER } from '../guest/guest.ts';
import { HangarHarness, sleep } from '../helpers/hangar.ts';
import type { ServeProcess } from '../helpers/hangar.ts';
import { WsConsole, wsCoreClient } from '../helpers/ws-client.ts';
import { CONSOLE_BATCH_BYTES, CONSOLE_HIGH_WATER } from '../../core/common/transport.ts';
import { HangarError } from '../../core/common/errors.ts';

const APPEND = 'console=ttyS0 quiet panic=-1';

let h: HangarHarness;
let guest: Awaited<ReturnType<typeof ensureTestGuest>>;
let serve: ServeProcess;

before(async () => {
  guest = await ensureTestGuest();
  h = new HangarHarness();
  serve = await h.serve();
});

after(async () => {
  await serve?.stop();
  await h?.cleanup();
});

async function createVm(name: string): Promise<{ id: string }> {
  return h.json<{ id: string }>(['create', '--name', name, '--memory', '256', '--accel', 'tcg',
    '--kernel', guest.kernel, '--initrd', guest.initrd, '--append', APPEND]);
}

describe('browser mode with the core in the serve process', () => {
  test('serve became the core: the CLI talks to it', async () => {
    assert.match(serve.output(), /core in this process/);
    const status = await h.json<{ pid: number }>(['daemon', 'status']);
    assert.ok(status.pid > 0);
  });

  test('RPC over WebSocket: list, events for CLI changes, schema errors', async () => {
    let listChanged = 0;
    const changed: string[] = [];
    const c = await wsCoreClient(serve, { vmListChanged: () => { listChanged++; }, vmChanged: (e) => { changed.push(`${e.name}:${e.state}`); } });
    try {
      assert.deepEqual(await c.api.list(), []);
      await createVm('ws-a');
      for (let i = 0; i < 40 && listChanged === 0; i++) await sleep(50);
      assert.ok(listChanged > 0, 'vmListChanged pushed for a VM created by the CLI');
      const list = await c.api.list();
      assert.deepEqual(list.map((v) => [v.name, v.state]), [['ws-a', 'stopped']]);
      await assert.rejects(c.api.get(42 as unknown as string), (e: unknown) =>
        e instanceof HangarError && e.code === 'invalid-input' && /argument 0/.test(e.message));
      await assert.rejects(c.api.start('no-such-vm'), (e: unknown) => e instanceof HangarError && e.code === 'not-found');
    } finally {
      c.close();
    }
  });

  test('console over WebSocket: scrollback, typing, end when the VM stops', async () => {
    const { id } = await createVm('ws-con');
    const c = await wsCoreClient(serve);
    try {
      // A stopped VM's console is refused with the reason and the fix.
      const refused = await WsConsole.open(serve, 'ws-con');
      await refused.until(() => refused.closed, 'refusal');
      const err = refused.controls[0];
      assert.equal(err?.type, 'error');
      assert.match(JSON.stringify(err), /not running/);

      await c.api.start('ws-con');
      await h.waitForSerial(id, READY_MARKER);
      const con = await WsConsole.open(serve, 'ws-con');
      await con.until(() => con.controls.some((x) => x.type === 'ready'), 'ready');
      await con.until(() => con.text.includes(READY_MARKER), 'scrollback with the ready marker');
      await sleep(700); // busybox's prompt queries the terminal first
      con.type('echo $((6*7))\n');
      await con.until(() => /\r?\n42\r?\n/.test(con.text), 'the answer 42');

      await c.api.shutdown('ws-con', { wait: true });
      await con.until(() => con.closed, 'channel end');
      assert.deepEqual(con.controls.at(-1), { type: 'end', reason: 'vm-stopped' });
    } finally {
      c.close();
    }
  });

  test('flow control: an unacknowledging viewer holds the guest output, acks release it', async () => {
    const { id } = await createVm('ws-flow');
    await h.ok(['start', 'ws-flow']);
    await h.waitForSerial(id, READY_MARKER);
    const con = await WsConsole.open(serve, 'ws-flow', { replay: false, autoAck: false });
    await con.until(() => con.controls.some((x) => x.type === 'ready'), 'ready');
    await sleep(700);
    // About 1.1 MB of output, then a marker.
    con.type('i=0; while [ $i -lt 20000 ]; do echo 0123456789012345678901234567890123456789012345678901234; i=$((i+1)); done; echo FLOOD-$((6*7))-DONE\n');
    await con.until(() => con.received.length > CONSOLE_HIGH_WATER, 'output up to the high-water mark', 120_000);
    await sleep(3000);
    const held = con.received.length;
    assert.ok(held <= CONSOLE_HIGH_WATER + 2 * CONSOLE_BATCH_BYTES + 4096,
      `the core kept sending without acks: ${held} bytes (high water ${CONSOLE_HIGH_WATER})`);
    await sleep(1500);
    assert.equal(con.received.length, held, 'nothing more arrives while unacknowledged');
    // The core stopped reading from the guest: its log holds no more than the viewer got.
    assert.ok(Buffer.byteLength(h.serialLog(id), 'latin1') <= held + 64 * 1024, 'the core paused reading from the guest');
    // Acknowledge as we go: everything arrives, nothing is lost.
    const acker = setInterval(() => con.ack(), 20);
    try {
      await con.until(() => con.text.includes('FLOOD-42-DONE\r\n'), 'the end of the flood', 300_000);
    } finally {
      clearInterval(acker);
    }
    const lines = con.text.split('\r\n').filter((l) => l === '0123456789012345678901234567890123456789012345678901234');
    assert.equal(lines.length, 20000, 'every line arrived once');
    con.close();
    await h.ok(['destroy', 'ws-flow']);
  });
});

describe('browser mode relaying to a daemon that already runs', () => {
  test('a second serve relays RPC and console to the running core', async () => {
    const relay = await h.serve();
    try {
      assert.match(relay.output(), /relayed to the running daemon/);
      const c = await wsCoreClient(relay);
      try {
        const names = (await c.api.list()).map((v) => v.name);
        assert.ok(names.includes('ws-con'));
        const { id } = await createVm('relay-con');
        await c.api.start('relay-con');
        await h.waitForSerial(id, READY_MARKER);
        const con = await WsConsole.open(relay, 'relay-con');
        await con.until(() => con.text.includes(READY_MARKER), 'scrollback through the relay');
        await sleep(700);
        con.type('echo $((6*7))\n');
        await con.until(() => /\r?\n42\r?\n/.test(con.text), 'the answer 42 through the relay');
        await c.api.destroy('relay-con');
        await con.until(() => con.closed, 'channel end');
        assert.deepEqual(con.controls.at(-1), { type: 'end', reason: 'vm-stopped' });
      } finally {
        c.close();
      }
    } finally {
      await relay.stop();
    }
  });
});
