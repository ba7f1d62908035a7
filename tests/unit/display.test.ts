// The display's pure rules (capabilities, defaults for new VMs, key combos, --listen), VNC
// authentication against a known answer, and the RFB proxy's two handshakes over real sockets.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { displayCapabilities, parseKeyCombo, SEND_KEY_COMBOS, withDisplayDefaults } from '../../core/common/display.ts';
import { parseDefinition } from '../../core/common/definition.ts';
import { videoFor } from '../../core/common/os-presets.ts';
import { parseListen } from '../../core/node/cli/display.ts';
import { checkVncAuthResponse, oneTimeVncPassword, vncAuthResponse } from '../../core/node/display/vnc-auth.ts';
import { HandshakeReader, proxyViewer } from '../../core/node/display/rfb-proxy.ts';
import { rfbConnect } from '../helpers/rfb-client.ts';

const base = { version: 1, id: '00000000-0000-4000-8000-000000000001', name: 'd' };

describe('display capabilities', () => {
  test('no video: no screen, with the reason and the fix', () => {
    const c = displayCapabilities(parseDefinition(base));
    assert.equal(c.vnc, false);
    assert.match(c.reason!, /no video device/);
    assert.match(c.fix!, /add a display/);
  });
  test('video with display none says how to turn VNC on', () => {
    const c = displayCapabilities(parseDefinition({ ...base, video: { model: 'vga', display: 'none' } }));
    assert.equal(c.vnc, false);
    assert.match(c.fix!, /display=vnc/);
  });
  test('the clipboard needs clipboard on; only virtio-gpu resizes', () => {
    const vga = displayCapabilities(parseDefinition({ ...base, video: { model: 'vga' } }));
    assert.deepEqual([vga.vnc, vga.clipboard, vga.resize], [true, false, false]);
    assert.match(vga.clipboardReason!, /clipboard sharing is off[\s\S]*spice-vdagent/);
    const gpu = displayCapabilities(parseDefinition({ ...base, video: { model: 'virtio-gpu', clipboard: true } }));
    assert.deepEqual([gpu.vnc, gpu.clipboard, gpu.resize, gpu.clipboardReason], [true, true, true, undefined]);
  });
});

describe('display defaults for new VMs', () => {
  test('firmware-booting VMs get the OS\'s video, VNC, clipboard and a USB tablet', () => {
    const d = withDisplayDefaults({ name: 'x', cdroms: [{ id: 'cd0', file: '/x.iso' }] }, 'virtio-gpu');
    assert.deepEqual(d.video, { model: 'virtio-gpu', display: 'vnc', clipboard: true });
    assert.deepEqual(d.inputs, [{ id: 'input0', type: 'tablet', bus: 'usb' }]);
  });
  test('an existing tablet is kept, input ids do not clash', () => {
    const keep = withDisplayDefaults({ inputs: [{ id: 'input0', type: 'tablet', bus: 'virtio' }] }, 'vga');
    assert.equal((keep.inputs as unknown[]).length, 1);
    const kb = withDisplayDefaults({ inputs: [{ id: 'input0', type: 'keyboard' }] }, 'vga');
    assert.deepEqual((kb.inputs as Array<{ id: string }>).map((i) => i.id), ['input0', 'input1']);
  });
  test('kernel boot, microvm and an explicit video are left alone', () => {
    const k = { boot: { kernel: { kernel: '/vmlinuz' } } };
    assert.equal(withDisplayDefaults(k, 'vga'), k);
    const m = { machine: 'microvm' };
    assert.equal(withDisplayDefaults(m, 'vga'), m);
    const v = { video: { model: 'none' } };
    assert.equal(withDisplayDefaults(v, 'vga'), v);
  });
  test('the OS decides the model: virtio-gpu where osinfo lists it, else VGA', () => {
    assert.equal(videoFor({ virtio: { gpu: true } as never }), 'virtio-gpu');
    assert.equal(videoFor({ virtio: { gpu: false } as never }), 'vga');
    assert.equal(videoFor(undefined), 'vga');
  });
});

describe('keys and --listen', () => {
  test('key combos parse into qcodes; nonsense is refused', () => {
    assert.deepEqual(parseKeyCombo('ctrl-alt-delete'), ['ctrl', 'alt', 'delete']);
    assert.deepEqual(parseKeyCombo('Ctrl+Alt+F2'), ['ctrl', 'alt', 'f2']);
    assert.equal(parseKeyCombo(''), null);
    assert.equal(parseKeyCombo('ctrl-$(reboot)'), null);
    const labels = SEND_KEY_COMBOS.map((c) => c.label);
    for (const l of ['Ctrl+Alt+Del', 'Ctrl+Alt+Backspace', 'Ctrl+Alt+F1', 'Ctrl+Alt+F12', 'PrintScreen', 'SysRq']) assert.ok(labels.includes(l), l);
  });
  test('--listen takes ADDR:PORT, [v6]:PORT or a port', () => {
    assert.deepEqual(parseListen('127.0.0.1:5901'), { host: '127.0.0.1', port: 5901 });
    assert.deepEqual(parseListen('[::1]:0'), { host: '::1', port: 0 });
    assert.deepEqual(parseListen('5902'), { host: '127.0.0.1', port: 5902 });
    assert.throws(() => parseListen('localhost'), /not ADDR:PORT/);
    assert.throws(() => parseListen('1.2.3.4:70000'), /not ADDR:PORT/);
  });
});

describe('VNC authentication', () => {
  test('the answer matches the RFB reference (noVNC\'s DES: "password", zero challenge)', () => {
    assert.equal(vncAuthResponse('password', new Uint8Array(16)).toString('hex'), 'ff97502e9422f089ff97502e9422f089');
  });
  test('a wrong password or answer is refused; passwords are 8 random characters', () => {
    const ch = new Uint8Array(16).fill(7);
    assert.ok(checkVncAuthResponse('abc', ch, vncAuthResponse('abc', ch)));
    assert.ok(!checkVncAuthResponse('abd', ch, vncAuthResponse('abc', ch)));
    assert.ok(!checkVncAuthResponse('abc', ch, new Uint8Array(3)));
    const a = oneTimeVncPassword();
    assert.match(a, /^[A-Za-z2-9]{8}$/);
    assert.notEqual(a, oneTimeVncPassword());
  });
});

/** A stand-in RFB server (QEMU's side of the private socket): version, None, ServerInit 800x600. */
function fakeVncServer(): Promise<{ server: Server; path: string; opened: () => number }> {
  let opened = 0;
  const path = `/tmp/hangar-fake-vnc-${process.pid}-${Date.now()}.sock`;
  const server = createServer((s: Socket) => {
    opened++;
    const r = new HandshakeReader(s);
    void (async () => {
      s.write('RFB 003.008\n');
      await r.read(12);
      s.write(Buffer.from([1, 1]));
      await r.read(1);
      const ok = Buffer.alloc(4);
      s.write(ok);
      await r.read(1); // ClientInit
      const init = Buffer.alloc(24 + 4);
      init.writeUInt16BE(800, 0);
      init.writeUInt16BE(600, 2);
      init.writeUInt32BE(4, 20);
      init.write('fake', 24);
      s.write(init);
      await r.read(10); // FramebufferUpdateRequest
      s.write(Buffer.from([0, 0, 0, 1]));
    })().catch(() => s.destroy());
  });
  return new Promise((res) => server.listen(path, () => res({ server, path, opened: () => opened })));
}

describe('RFB proxy', () => {
  test('authenticates the viewer, then hands it to the server with a None handshake', async () => {
    const fake = await fakeVncServer();
    const password = 'Secret12';
    const tcp = createServer((viewer) => {
      void proxyViewer(viewer, password, async () => {
        const s = connect(fake.path);
        await new Promise((r) => s.once('connect', r));
        return { socket: s, rest: Buffer.alloc(0) };
      });
    });
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', () => r()));
    const port = (tcp.address() as AddressInfo).port;
    try {
      const ok = await rfbConnect({ host: '127.0.0.1', port }, password);
      assert.ok(ok.ok, ok.ok ? '' : ok.reason);
      assert.deepEqual([ok.session.width, ok.session.height, ok.session.name], [800, 600, 'fake']);
      assert.equal((await ok.session.requestUpdate()).rects, 1);
      ok.session.close();
      const before = fake.opened();
      const bad = await rfbConnect({ host: '127.0.0.1', port }, 'nope');
      assert.equal(bad.ok, false);
      assert.equal(fake.opened(), before, 'a refused viewer never reaches the VM');
    } finally {
      tcp.close();
      fake.server.close();
    }
  });
});
