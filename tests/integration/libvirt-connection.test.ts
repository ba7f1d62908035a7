// A libvirt connection through the CLI and browser mode: the real libvirtd, a domain of the test
// guest defined by plain XML, and its serial console through `virsh console` in a pty.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureTestGuest, READY_MARKER } from '../guest/guest.ts';
import { HangarHarness, sleep } from '../helpers/hangar.ts';
import { ensureLibvirtd, libvirtGuestFiles, removeDomains, testDomainXml, testPrefix, virsh } from '../helpers/libvirtd.ts';
import { openWs, WsConsole, wsCoreClient, wsUrl } from '../helpers/ws-client.ts';
import { decodeConsoleControl, WS_DISPLAY_PATH } from '../../core/common/transport.ts';

const prefix = testPrefix('conn');
const name = `${prefix}a`;
let h: HangarHarness;
let files: Awaited<ReturnType<typeof libvirtGuestFiles>>;
let logDir = '';
let serialLog = '';

async function waitForLog(text: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let seen = '';
  while (Date.now() < deadline) {
    seen = await readFile(serialLog, 'utf8').catch(() => '');
    if (seen.includes(text)) return;
    await sleep(200);
  }
  throw new Error(`"${text}" not in ${serialLog} within ${timeoutMs} ms; tail: ${seen.slice(-1500)}`);
}

before(async () => {
  await ensureLibvirtd();
  files = await libvirtGuestFiles(await ensureTestGuest());
  logDir = await mkdtemp('/var/tmp/hangar-libvirt-log-');
  serialLog = join(logDir, 'serial.log');
  const xml = join(logDir, 'dom.xml');
  writeFileSync(xml, testDomainXml({ name, kernel: files.kernel, initrd: files.initrd, serialLog }));
  await virsh(['define', xml]);
  h = new HangarHarness();
  await h.ok(['connect', 'add', 'sys', 'qemu:///system']);
});

after(async () => {
  await removeDomains(prefix).catch(() => {});
  await h?.cleanup();
  await files?.cleanup();
  if (logDir) await rm(logDir, { recursive: true, force: true });
});

describe('libvirt connection', () => {
  test('list, start and the serial console through virsh console', async () => {
    const listed = await h.json<Array<{ name: string; state: string }>>(['--connect', 'sys', 'list']);
    assert.deepEqual(listed.filter((v) => v.name.startsWith(prefix)).map((v) => [v.name, v.state]), [[name, 'stopped']]);
    await h.ok(['--connect', 'sys', 'start', name]);
    await waitForLog(READY_MARKER);
    await sleep(500);
    const r = await h.run(['--connect', 'sys', 'console', name, '--grace', '3'], { input: 'echo libvirt-$((6*7))\n', inputDelayMs: 1000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^libvirt-42\r?$/m);
    // virsh's own banner ("Connected to domain ...") is not guest output.
    assert.doesNotMatch(r.stdout, /Escape character/);
  });

  test('the console of a stopped domain or a missing one is an error that says so', async () => {
    const missing = await h.run(['--connect', 'sys', 'console', `${prefix}nope`]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no libvirt domain|not found/i);
    assert.doesNotMatch(missing.stderr, /at .*\.ts:\d+/, 'no stack trace');
  });

  test('browser mode: the API and the console socket on ?connection=sys', async () => {
    const serve = await h.serve();
    try {
      const c = await wsCoreClient(serve, {}, 'sys');
      try {
        const caps = await c.api.capabilities();
        assert.equal(caps.driver, 'libvirt');
        assert.equal(caps.connection, 'sys');
        assert.ok((caps.unsupported.createSnapshot ?? '').length > 10, 'snapshots are listed as unsupported, with the reason');
        assert.equal(caps.unsupported.start, undefined);
        const info = await c.api.get(name);
        assert.equal(info.state, 'running');
        await assert.rejects(c.api.createSnapshot(name, { name: 's1' }), (e: Error & { code?: string }) => e.code === 'unsupported' && /not available on a libvirt connection/.test(e.message));
      } finally {
        c.close();
      }
      const con = await WsConsole.open(serve, name, { connection: 'sys' });
      try {
        await con.until(() => con.controls.some((x) => x.type === 'ready'), 'ready', 20_000);
        con.type('echo ws-$((7*6))\n');
        await con.until(() => /ws-42/.test(con.text), 'the answer ws-42', 20_000);
      } finally {
        con.close();
      }
    } finally {
      await serve.stop();
    }
    await h.ok(['--connect', 'sys', 'destroy', name]);
    assert.equal((await h.json<{ state: string }>(['--connect', 'sys', 'show', name])).state, 'stopped');
  });

  test('a domain\'s VNC screen through the display channel; a domain without one says so', async () => {
    const vncName = `${prefix}vnc`;
    const xml = testDomainXml({ name: vncName, kernel: files.kernel, initrd: files.initrd, serialLog: join(logDir, 'vnc.log') })
      .replace('</devices>', "  <graphics type='vnc' autoport='yes' listen='127.0.0.1'/>\n    <video><model type='vga'/></video>\n  </devices>");
    writeFileSync(join(logDir, 'vnc.xml'), xml);
    await virsh(['define', join(logDir, 'vnc.xml')]);
    await virsh(['start', vncName]);
    const serve = await h.serve();
    try {
      const rfb = await displayGreeting(serve, vncName, 'sys');
      assert.match(rfb, /^RFB 003\.00\d\n/, 'the VNC server greets through the channel');
      // The first domain has no graphics: an error control that says so.
      await h.ok(['--connect', 'sys', 'start', name]);
      const none = await displayGreeting(serve, name, 'sys');
      assert.match(none, /has no VNC display/);
    } finally {
      await serve.stop();
      await virsh(['destroy', vncName]).catch(() => {});
      await virsh(['destroy', name]).catch(() => {});
    }
  });
});

/** The first bytes (or the error control's message) a display channel gives. */
async function displayGreeting(t: { origin: string; token: string }, vm: string, connection: string): Promise<string> {
  let got = '';
  const ws = await openWs(wsUrl(t, WS_DISPLAY_PATH, { vm, connection }), {}, (d, bin) => {
    if (bin) got += d.toString('latin1');
    else {
      const c = decodeConsoleControl(d.toString());
      if (c?.type === 'error') got += `error: ${c.error.message}`;
    }
  });
  try {
    for (let i = 0; i < 100 && got.length < 12; i++) await sleep(100);
    return got;
  } finally {
    ws.close();
  }
}
