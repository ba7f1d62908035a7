import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConsolePump } from '../../core/node/console/console-pump.ts';
import { sleep } from '../helpers/hangar.ts';

function harness(opts: Partial<ConstructorParameters<typeof ConsolePump>[0]> = {}) {
  const sent: Buffer[] = [];
  const log: string[] = [];
  const pump = new ConsolePump({
    send: (c) => sent.push(c),
    pause: () => log.push('pause'),
    resume: () => log.push('resume'),
    onStall: () => log.push('stall'),
    batchMs: 5, batchBytes: 100, highWater: 300, lowWater: 100, stallMs: 80,
    ...opts,
  });
  return { pump, sent, log };
}

test('a chunk after a quiet spell leaves at once; a burst behind it is batched', async () => {
  // A fixed clock: on a loaded machine more than batchMs could pass between two pushes, and
  // that alone would make 'cd' a leading edge too.
  let now = 1_000;
  const { pump, sent } = harness({ now: () => now });
  pump.push(Buffer.from('ab'));
  assert.deepEqual(sent.map(String), ['ab'], 'no added latency for an echo');
  pump.push(Buffer.from('cd'));
  pump.push(Buffer.from('ef'));
  assert.equal(sent.length, 1);
  await sleep(20);
  assert.deepEqual(sent.map(String), ['ab', 'cdef']);
  assert.equal(pump.inFlight, 6);
  now += 5;
  pump.push(Buffer.from('gh'));
  assert.deepEqual(sent.map(String), ['ab', 'cdef', 'gh'], 'quiet for batchMs again: at once');
  pump.close();
});

test('a full batch leaves at once, without waiting for the timer', () => {
  const { pump, sent } = harness({ batchMs: 10_000 });
  pump.push(Buffer.alloc(1));
  pump.push(Buffer.alloc(60));
  pump.push(Buffer.alloc(60));
  assert.deepEqual(sent.map((b) => b.length), [1, 120]);
  pump.close();
});

test('pauses the source above high water, resumes at low water after acks', () => {
  const { pump, log } = harness();
  for (let i = 0; i < 4; i++) pump.push(Buffer.alloc(100));
  assert.deepEqual(log, ['pause']);
  assert.ok(pump.isPaused);
  pump.ack(200);
  assert.deepEqual(log, ['pause'], 'still above low water');
  pump.ack(150);
  assert.deepEqual(log, ['pause', 'resume']);
  assert.equal(pump.inFlight, 50);
  pump.close();
});

test('a viewer stuck above high water is reported as stalled', async () => {
  const { pump, log } = harness();
  pump.push(Buffer.alloc(400));
  await sleep(150);
  assert.deepEqual(log, ['pause', 'stall']);
  pump.close();
});

test('acks in time cancel the stall; close resumes a paused source once', async () => {
  const { pump, log } = harness();
  pump.push(Buffer.alloc(400));
  pump.ack(400);
  await sleep(150);
  assert.deepEqual(log, ['pause', 'resume']);
  pump.push(Buffer.alloc(400));
  pump.close();
  pump.close();
  assert.deepEqual(log, ['pause', 'resume', 'pause', 'resume']);
  pump.push(Buffer.alloc(10));
  assert.equal(pump.inFlight, 400, 'a closed pump ignores input');
});
