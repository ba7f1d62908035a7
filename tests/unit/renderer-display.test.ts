// The Display tab's logic without a browser: the adapter that makes a display channel look like
// a WebSocket to noVNC (readyState, open after 'ready', binary both ways, an ack per message
// handed over; checked against noVNC's own Websock.attach), the connection and reconnect rules
// with a fake viewer, the thumbnail scheduler, "Add a display", screenshot names, the wizard's
// display choice and the Devices tab's video form.
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildCreateRequest, createCommand, defaultChoices, effectiveDisplay } from '../../core/common/new-vm.ts';
import { decodeConsoleControl, encodeConsoleControl } from '../../core/common/transport.ts';
import type { ConsoleControl, ConsoleLink } from '../../core/common/transport.ts';
import { ChannelSocket, WS_CLOSED, WS_CLOSING, WS_CONNECTING, WS_OPEN } from '../../renderer/src/display/channel-socket.ts';
import type { ChannelEnd, SocketCloseEvent } from '../../renderer/src/display/channel-socket.ts';
import { DisplayChannel } from '../../renderer/src/display/display-channel.ts';
import type { DisplayStatus, ViewerEvents } from '../../renderer/src/display/display-channel.ts';
import { addDisplaySteps, screenshotFileName, statusText, videoModelFor } from '../../renderer/src/display/display-helpers.ts';
import { ThumbnailScheduler } from '../../renderer/src/display/thumbnails.ts';
import { buildDeviceRequest, formFromDevice } from '../../renderer/src/devices/device-forms.ts';
import type { VideoForm } from '../../renderer/src/devices/device-forms.ts';
import { FakeCore, fakeDefinition, fakeVm, ManualTimers, memoryPair, settle } from '../../renderer/src/testing/fake-core.ts';
import type { MemoryEnd } from '../../renderer/src/testing/fake-core.ts';

type Msg = string | Uint8Array;

function controls(sent: Msg[]): ConsoleControl[] {
  return sent.filter((m): m is string => typeof m === 'string').map((m) => decodeConsoleControl(m)!);
}
const acks = (sent: Msg[]): number[] => controls(sent).filter((c) => c.type === 'ack').map((c) => (c as { bytes: number }).bytes);
const binary = (sent: Msg[]): number[][] => sent.filter((m): m is Uint8Array => m instanceof Uint8Array).map((b) => [...b]);
const ready = encodeConsoleControl({ type: 'ready', vm: 'alpha' });

/** A channel pair: the UI's end wrapped in a ChannelSocket, the core's end for the test. */
function socketPair(): { socket: ChannelSocket; core: MemoryEnd<Msg> } {
  const [ui, core] = memoryPair<Msg>();
  return { socket: new ChannelSocket(ui as ConsoleLink), core };
}

describe('ChannelSocket (a display channel as noVNC\'s WebSocket)', () => {
  it('has every property noVNC\'s Websock.attach() checks for', () => {
    const { socket } = socketPair();
    const names = [...Object.keys(socket), ...Object.getOwnPropertyNames(Object.getPrototypeOf(socket))];
    for (const p of ['send', 'close', 'binaryType', 'onerror', 'onmessage', 'onopen', 'protocol', 'readyState']) assert.ok(names.includes(p), p);
  });

  it('is CONNECTING until the core says ready, then OPEN with an open event; refuses to send before', async () => {
    const { socket, core } = socketPair();
    const opened: unknown[] = [];
    socket.onopen = (e) => opened.push(e);
    assert.equal(socket.readyState, WS_CONNECTING);
    assert.throws(() => socket.send(new Uint8Array([1])), /not open yet/);
    core.send(ready);
    await settle();
    assert.equal(socket.readyState, WS_OPEN);
    assert.equal(opened.length, 1);
  });

  it('hands binary messages to onmessage as ArrayBuffers and acknowledges each once handled', async () => {
    const { socket, core } = socketPair();
    const got: number[][] = [];
    const acksAtDelivery: number[] = [];
    socket.onmessage = (e) => {
      assert.ok(e.data instanceof ArrayBuffer);
      got.push([...new Uint8Array(e.data)]);
      acksAtDelivery.push(acks(core.peer.sent).length);
    };
    core.send(ready);
    core.send(new Uint8Array([1, 2, 3]));
    core.send(new Uint8Array([9, 8, 7, 6, 5]).subarray(1, 3));
    await settle();
    assert.deepEqual(got, [[1, 2, 3], [8, 7]]);
    assert.deepEqual(acksAtDelivery, [0, 1], 'each ack goes out after its message was handled');
    assert.deepEqual(acks(core.peer.sent), [3, 2]);
    assert.equal(socket.bytesAcked, 5);
  });

  it('keeps data that arrives before noVNC set onmessage, and hands it over in order (a viewer attached after ready)', async () => {
    const { socket, core } = socketPair();
    core.send(ready);
    core.send(new Uint8Array([1]));
    core.send(new Uint8Array([2]));
    await settle();
    assert.equal(socket.readyState, WS_OPEN);
    assert.deepEqual(acks(core.peer.sent), [], 'nothing is acknowledged before it is handled');
    const got: number[] = [];
    socket.onmessage = (e) => got.push(new Uint8Array(e.data)[0]!);
    assert.deepEqual(got, [], 'not inside the assignment (noVNC has not seen the open channel yet)');
    core.send(new Uint8Array([3]));
    await settle();
    assert.deepEqual(got, [1, 2, 3]);
    assert.deepEqual(acks(core.peer.sent), [1, 1, 1]);
  });

  it('copies what it sends (noVNC reuses its send buffer)', async () => {
    const { socket, core } = socketPair();
    core.send(ready);
    await settle();
    const buf = new Uint8Array([5, 6, 7, 8]);
    socket.send(buf.subarray(1, 3));
    socket.send(buf.buffer);
    buf.fill(0);
    socket.send(new Uint8Array(0));
    await settle();
    assert.deepEqual(binary(core.peer.sent), [[6, 7], [5, 6, 7, 8]]);
  });

  it('close(): CLOSING, then CLOSED with a close event after the call returned, and no more sends', async () => {
    const { socket, core } = socketPair();
    core.send(ready);
    await settle();
    const events: SocketCloseEvent[] = [];
    let insideClose = true;
    socket.onclose = (e) => { assert.equal(insideClose, false); events.push(e); };
    socket.close();
    insideClose = false;
    assert.equal(socket.readyState, WS_CLOSING);
    socket.send(new Uint8Array([1]));
    await settle();
    assert.equal(socket.readyState, WS_CLOSED);
    assert.equal(events.length, 1);
    assert.equal(binary(core.peer.sent).length, 0);
    assert.equal(core.closed, true);
  });

  it('tells its owner how the channel ended: the core\'s end reason, or its error', async () => {
    const a = socketPair();
    const endsA: ChannelEnd[] = [];
    const closes: SocketCloseEvent[] = [];
    a.socket.onEnded = (e) => endsA.push(e);
    a.socket.onclose = (e) => closes.push(e);
    a.core.send(ready);
    a.core.send(encodeConsoleControl({ type: 'end', reason: 'vm-stopped' }));
    a.core.close('the core closed the channel');
    await settle();
    assert.deepEqual(endsA, [{ ended: 'vm-stopped', error: null, reason: 'the core closed the channel', wasOpen: true }]);
    assert.deepEqual(closes, [{ code: 1000, reason: 'vm-stopped', wasClean: true }]);

    const b = socketPair();
    const endsB: ChannelEnd[] = [];
    b.socket.onEnded = (e) => endsB.push(e);
    b.core.send(encodeConsoleControl({ type: 'error', error: { code: 'invalid-state', message: 'VM "alpha" is not running' } }));
    b.core.close();
    await settle();
    assert.equal(endsB[0]!.error?.message, 'VM "alpha" is not running');
    assert.equal(endsB[0]!.wasOpen, false);
  });

  it('drives noVNC\'s own Websock (attach, readyState, receive queue, flush)', async () => {
    // noVNC's Websock reads WebSocket's constants and window.console at load: give Node both.
    const g = globalThis as Record<string, unknown>;
    g.WebSocket ??= { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 };
    g.window ??= globalThis;
    const url = pathToFileURL(join(import.meta.dirname, '../../node_modules/@novnc/novnc/core/websock.js')).href;
    const { default: Websock } = await import(url) as { default: new () => {
      attach(ch: unknown): void; readyState: string; on(ev: string, h: () => void): void;
      rQlen(): number; rQshiftBytes(n: number): Uint8Array; sQpushBytes(bytes: Uint8Array): void; flush(): void;
    } };
    const { socket, core } = socketPair();
    const ws = new Websock();
    let opened = 0;
    let messages = 0;
    ws.on('open', () => { opened++; });
    ws.on('message', () => { messages++; });
    ws.attach(socket);
    assert.equal(ws.readyState, 'connecting');
    core.send(ready);
    core.send(new TextEncoder().encode('RFB 003.008\n'));
    await settle();
    assert.equal(ws.readyState, 'open');
    assert.equal(opened, 1);
    assert.equal(messages, 1);
    assert.equal(new TextDecoder().decode(ws.rQshiftBytes(ws.rQlen())), 'RFB 003.008\n');
    assert.deepEqual(acks(core.peer.sent), [12]);
    // Websock sends views of one reused buffer: the second message must not change the first.
    ws.sQpushBytes(new Uint8Array([82, 70, 66]));
    ws.flush();
    ws.sQpushBytes(new Uint8Array([1]));
    ws.flush();
    await settle();
    assert.deepEqual(binary(core.peer.sent), [[82, 70, 66], [1]]);
  });
});

/** A viewer as the channel sees it: connected() when told, disposed by the channel. */
class FakeViewer {
  disposed = false;
  constructor(readonly socket: ChannelSocket, readonly events: ViewerEvents) {}
  dispose(): void { this.disposed = true; }
}

describe('DisplayChannel (connection and reconnect rules)', () => {
  let core: FakeCore;
  let timers: ManualTimers;
  let viewers: FakeViewer[];
  let statuses: Array<[DisplayStatus, string | undefined]>;
  let channel: DisplayChannel;
  const last = (): FakeViewer => viewers.at(-1)!;
  const coreEnd = (): MemoryEnd<Msg> => core.displays.at(-1)!.core;

  async function live(): Promise<void> {
    await settle();
    coreEnd().send(ready);
    await settle();
    last().events.connected();
    assert.equal(channel.status, 'live');
  }

  beforeEach(() => {
    core = new FakeCore();
    timers = new ManualTimers();
    viewers = [];
    statuses = [];
    channel = new DisplayChannel({
      vm: 'alpha', transport: core, timers,
      createViewer: (socket, events) => { const v = new FakeViewer(socket, events); viewers.push(v); return v; },
      onStatus: (s, d) => statuses.push([s, d]),
    });
  });

  it('opens nothing until the VM runs; then a channel with a viewer, live once the viewer connected', async () => {
    await settle();
    assert.equal(core.displays.length, 0);
    channel.setVmLive(true);
    await live();
    assert.equal(core.displays[0]!.vm, 'alpha');
    assert.equal(viewers.length, 1);
    assert.deepEqual(statuses.map((s) => s[0]), ['connecting', 'live']);
  });

  it('VM stopped: waits (no retry while the VM is down), then reconnects with a new viewer when it runs again', async () => {
    channel.setVmLive(true);
    await live();
    coreEnd().send(encodeConsoleControl({ type: 'end', reason: 'vm-stopped' }));
    coreEnd().close();
    channel.setVmLive(false);
    await settle();
    assert.equal(channel.status, 'waiting-for-vm');
    assert.equal(last().disposed, true);
    assert.equal(timers.count, 0, 'no probing while the store says the VM is down');
    channel.setVmLive(true);
    await live();
    assert.equal(core.displays.length, 2);
    assert.equal(viewers.length, 2);
  });

  it('VM stopped and started before the store noticed: probes again by itself', async () => {
    channel.setVmLive(true);
    await live();
    coreEnd().send(encodeConsoleControl({ type: 'end', reason: 'vm-stopped' }));
    coreEnd().close();
    await settle();
    assert.equal(channel.status, 'waiting-for-vm');
    assert.equal(timers.count, 1);
    await timers.advance(300);
    assert.equal(core.displays.length, 2);
  });

  for (const reason of ['too-slow', 'core-closing'] as const) {
    it(`end '${reason}': reconnects after a short delay`, async () => {
      channel.setVmLive(true);
      await live();
      coreEnd().send(encodeConsoleControl({ type: 'end', reason }));
      coreEnd().close();
      await settle();
      assert.equal(channel.status, 'reconnecting');
      assert.match(channel.detail ?? '', reason === 'too-slow' ? /fell behind/ : /restarting/);
      await timers.advance(300);
      assert.equal(core.displays.length, 2);
      await live();
    });
  }

  it('the core\'s error instead of ready is shown and probed again while the VM runs', async () => {
    channel.setVmLive(true);
    await settle();
    coreEnd().send(encodeConsoleControl({ type: 'error', error: { code: 'invalid-state', message: 'VM "alpha" runs without a VNC server', hint: 'restart it' } }));
    coreEnd().close();
    await settle();
    assert.equal(channel.status, 'waiting-for-vm');
    assert.equal(channel.detail, 'VM "alpha" runs without a VNC server (restart it)');
    assert.match(statusText(channel.status, channel.detail), /^Display unavailable: VM "alpha" runs without a VNC server/);
    await timers.advance(300);
    assert.equal(core.displays.length, 2);
  });

  it('a viewer that fails (security failure) closes its channel and a new one follows', async () => {
    channel.setVmLive(true);
    await live();
    last().events.failed('the VNC server refused the viewer');
    await settle();
    assert.equal(coreEnd().closed, true);
    assert.equal(channel.status, 'reconnecting');
    assert.equal(channel.detail, 'the VNC server refused the viewer');
    await timers.advance(300);
    assert.equal(core.displays.length, 2);
  });

  it('a core that cannot be reached: retries with a growing delay, capped, reset once live', async () => {
    core.displayFails = new Error('could not reach the Hangar core');
    channel.setVmLive(true);
    await settle();
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      delays.push(timers.delays()[0]!);
      await timers.advance(timers.delays()[0]!);
    }
    assert.deepEqual(delays, [300, 600, 1200, 2400, 4800, 5000]);
    core.displayFails = null;
    await timers.advance(5000);
    await live();
    coreEnd().send(encodeConsoleControl({ type: 'end', reason: 'too-slow' }));
    coreEnd().close();
    await settle();
    assert.deepEqual(timers.delays(), [300]);
  });

  it('the VM stops while a retry waits: no reconnect until it runs again', async () => {
    channel.setVmLive(true);
    await live();
    coreEnd().send(encodeConsoleControl({ type: 'end', reason: 'core-closing' }));
    coreEnd().close();
    await settle();
    assert.equal(channel.status, 'reconnecting');
    channel.setVmLive(false);
    assert.equal(channel.status, 'waiting-for-vm');
    await timers.advance(10_000);
    assert.equal(core.displays.length, 1);
  });

  it('dispose closes the channel and disposes the viewer; later events change nothing', async () => {
    channel.setVmLive(true);
    await live();
    const end = coreEnd();
    channel.dispose();
    await settle();
    assert.equal(end.closed, true);
    assert.equal(last().disposed, true);
    assert.equal(channel.status, 'disposed');
    channel.setVmLive(true);
    await timers.advance(10_000);
    assert.equal(core.displays.length, 1);
  });

  it('a reconnect made while a channel opens drops the older one', async () => {
    channel.setVmLive(true);
    channel.connect();
    await settle();
    assert.equal(core.displays.length, 2);
    assert.equal(core.displays[0]!.core.closed, true);
    assert.equal(viewers.length, 1);
  });
});

describe('thumbnails', () => {
  let timers: ManualTimers;
  let now: number;
  let shots: string[];
  let images: Map<string, string>;
  let failFor: Map<string, unknown>;
  let sched: ThumbnailScheduler;

  beforeEach(() => {
    timers = new ManualTimers();
    now = 0;
    shots = [];
    images = new Map();
    failFor = new Map();
    sched = new ThumbnailScheduler({
      timers,
      now: () => timers.now + now,
      screenshot: async (vm) => {
        shots.push(vm);
        const err = failFor.get(vm);
        if (err) throw err;
        return { pngBase64: vm, width: 1, height: 1, takenAt: '' };
      },
      onImage: (vm, url) => { if (url) images.set(vm, url); else images.delete(vm); },
    });
  });

  it('fetches only visible running VMs, every 5 s, and stops when nothing is on screen', async () => {
    const a = sched.watch('a', true);
    const b = sched.watch('b', true);
    sched.watch('c', false).setVisible(true);
    await settle();
    assert.deepEqual(shots, [], 'not visible yet');
    a.setVisible(true);
    await settle();
    assert.deepEqual(shots, ['a']);
    assert.equal(images.get('a'), 'data:image/png;base64,a');
    await timers.advance(5000);
    assert.deepEqual(shots, ['a', 'a']);
    b.setVisible(true);
    await settle();
    assert.deepEqual(shots, ['a', 'a', 'b']);
    a.setVisible(false);
    b.release();
    await timers.advance(20_000);
    assert.deepEqual(shots, ['a', 'a', 'b'], 'nothing visible: no more screenshots');
    assert.equal(timers.count, 0, 'and no timer left');
    assert.equal(images.has('b'), false, 'a released thumbnail drops its image');
  });

  it('pauses while the page is hidden', async () => {
    sched.watch('a', true).setVisible(true);
    await settle();
    sched.setPageVisible(false);
    await timers.advance(20_000);
    assert.deepEqual(shots, ['a']);
    sched.setPageVisible(true);
    await settle();
    assert.deepEqual(shots, ['a', 'a']);
  });

  it('a VM with no screen is asked once per run; a stop drops its picture; the next run asks again', async () => {
    failFor.set('h', { code: 'invalid-state', message: 'VM "h" has no display' });
    const h = sched.watch('h', true);
    h.setVisible(true);
    const v = sched.watch('v', true);
    v.setVisible(true);
    await settle();
    await timers.advance(15_000);
    assert.equal(shots.filter((s) => s === 'h').length, 1);
    assert.equal(shots.filter((s) => s === 'v').length, 4);
    v.setRunning(false);
    assert.equal(images.has('v'), false);
    h.setRunning(false);
    failFor.delete('h');
    h.setRunning(true);
    await settle();
    assert.equal(shots.filter((s) => s === 'h').length, 2);
    assert.ok(images.has('h'));
  });

  it('other errors are retried at the next round', async () => {
    failFor.set('a', new Error('connection lost'));
    sched.watch('a', true).setVisible(true);
    await settle();
    await timers.advance(5000);
    assert.equal(shots.length, 2);
  });

  it('two views of one VM share its fetches', async () => {
    const one = sched.watch('a', true);
    const two = sched.watch('a', true);
    one.setVisible(true);
    two.setVisible(true);
    await settle();
    await timers.advance(5000);
    assert.deepEqual(shots, ['a', 'a']);
    one.release();
    assert.ok(images.has('a'), 'still shown by the other view');
    two.release();
    assert.equal(images.has('a'), false);
    assert.equal(sched.size, 0);
  });
});

describe('display helpers', () => {
  it('screenshot names: NAME-YYYYMMDD-HHMMSS.png, local time, safe characters', () => {
    const at = new Date(2026, 0, 5, 7, 8, 9);
    assert.equal(screenshotFileName('web-1', at), 'web-1-20260105-070809.png');
    assert.equal(screenshotFileName('my vm/2', at), 'my_vm_2-20260105-070809.png');
    assert.equal(screenshotFileName('..', at), '_-20260105-070809.png');
  });

  it('"Add a display": a video device over VNC (virtio-gpu for Linux) and a USB tablet when there is none', () => {
    const headless = fakeDefinition('k', { osId: 'debian12' });
    assert.deepEqual(addDisplaySteps(headless), [
      { action: 'add', kind: 'video', device: { model: 'virtio-gpu', display: 'vnc' } },
      { action: 'add', kind: 'input', device: { type: 'tablet', bus: 'usb' } },
    ]);
    const win = fakeDefinition('w', { osId: 'win11', inputs: [{ id: 'input0', type: 'tablet', bus: 'usb' }] });
    assert.deepEqual(addDisplaySteps(win), [{ action: 'add', kind: 'video', device: { model: 'vga', display: 'vnc' } }]);
    const off = fakeDefinition('o', { video: { model: 'vga', display: 'none' } });
    assert.deepEqual(addDisplaySteps(off)[0], { action: 'edit', kind: 'video', id: 'video0', device: { display: 'vnc' } });
    assert.equal(videoModelFor('generic-linux'), 'virtio-gpu');
    assert.equal(videoModelFor('other'), 'vga');
  });
});

describe('the fake core\'s screen', () => {
  it('answers screenshots and keys for a running VM with a display, and refuses the rest as the core does', async () => {
    const core = new FakeCore();
    core.add(fakeVm('screen', 'running', { definition: fakeDefinition('screen', { video: { model: 'vga' } }) }));
    core.add(fakeVm('headless', 'running', { definition: fakeDefinition('headless') }));
    core.add(fakeVm('off', 'stopped', { definition: fakeDefinition('off', { video: { model: 'vga' } }) }));
    const shot = await core.api.screenshot('screen');
    assert.equal(shot.width, 1);
    await core.api.sendKeys('screen', ['ctrl', 'alt', 'delete']);
    assert.deepEqual(core.keysSent, ['screen ctrl-alt-delete']);
    await assert.rejects(core.api.screenshot('headless'), (e: { code: string; message: string }) => e.code === 'invalid-state' && /no display/.test(e.message));
    await assert.rejects(core.api.sendKeys('off', ['f1']), (e: { code: string }) => e.code === 'invalid-state');
    assert.equal(core.hasDisplay('screen'), true);
    assert.equal(core.hasDisplay('headless'), false);
  });
});

describe('the wizard\'s display choice', () => {
  it('auto follows the source (none for kernel boot) and sends nothing: the core decides', () => {
    const c = { ...defaultChoices(), name: 'a', isoPath: '/i.iso' };
    assert.equal(effectiveDisplay(c), 'vnc');
    assert.equal(effectiveDisplay({ ...c, source: 'kernel' }), 'none');
    const req = buildCreateRequest(c);
    assert.equal(req.definition.video, undefined);
    assert.doesNotMatch(createCommand(c), /--display|--video/);
  });

  it('an explicit choice is sent: VNC with the OS\'s video model and a USB tablet, or none', () => {
    const vnc = { ...defaultChoices(), name: 'k', source: 'kernel' as const, kernelPath: '/k', display: 'vnc' as const, video: 'vga' as const };
    const r = buildCreateRequest(vnc);
    assert.deepEqual(r.definition.video, { model: 'vga', display: 'vnc', clipboard: true });
    assert.deepEqual(r.definition.inputs, [{ id: 'input0', type: 'tablet', bus: 'usb' }]);
    assert.match(createCommand(vnc), /--display vnc --video vga/);
    const none = { ...defaultChoices(), name: 'n', display: 'none' as const };
    assert.deepEqual(buildCreateRequest(none).definition.video, { model: 'none', display: 'none' });
    assert.match(createCommand(none), /--display none/);
  });
});

describe('the Devices tab\'s video form', () => {
  it('shows and changes the display and the clipboard', () => {
    const form = formFromDevice('video', { model: 'virtio-gpu', display: 'vnc', clipboard: true });
    assert.deepEqual(form, { model: 'virtio-gpu', vramMiB: '', display: 'vnc', clipboard: true });
    const edited: VideoForm = { ...form, display: 'none' };
    const r = buildDeviceRequest('video', edited, 'edit', { model: 'virtio-gpu', display: 'vnc', clipboard: true });
    assert.deepEqual(r, { ok: true, device: { display: 'none', clipboard: false } });
    const add = buildDeviceRequest('video', { model: 'vga', vramMiB: '16', display: 'vnc', clipboard: true }, 'add');
    assert.deepEqual(add, { ok: true, device: { model: 'vga', display: 'vnc', clipboard: true, vramMiB: 16 } });
  });
});
