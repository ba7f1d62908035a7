import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createAppProtocolHandler, mimeType, resolveAppPath } from '../../electron/app-protocol.ts';
import {
  CSP, hardenWebContents, installSessionSecurity, isAppUrl, isSafeExternalUrl, isTrustedSender,
} from '../../electron/security.ts';
import { FakeFrame, FakeSession, FakeWebContents, ipcEvent } from '../../electron/testing/fake-electron.ts';

describe('electron security: sender validation', () => {
  it('accepts the main frame of one of our windows on the app origin', () => {
    const wc = new FakeWebContents();
    assert.equal(isTrustedSender(ipcEvent(wc), [wc]), true);
  });

  it('refuses a foreign origin, a sub-frame, a destroyed or missing frame, and foreign web contents', () => {
    const wc = new FakeWebContents();
    const foreign = new FakeWebContents('https://evil.example/index.html');
    assert.equal(isTrustedSender(ipcEvent(foreign), [wc, foreign]), false, 'foreign origin');

    const sub = new FakeFrame('app://hangar/index.html', wc.mainFrame, 1, 999);
    assert.equal(isTrustedSender(ipcEvent(wc, sub), [wc]), false, 'sub-frame');

    const gone = new FakeWebContents();
    gone.mainFrame.destroyed = true;
    assert.equal(isTrustedSender(ipcEvent(gone), [gone]), false, 'destroyed frame');
    assert.equal(isTrustedSender(ipcEvent(wc, null), [wc]), false, 'no frame');

    const stranger = new FakeWebContents(); // app origin, but not one of our windows
    assert.equal(isTrustedSender(ipcEvent(stranger), [wc]), false, 'not our window');

    const other = new FakeWebContents();
    assert.equal(isTrustedSender({ sender: wc, senderFrame: other.mainFrame }, [wc, other]), false, 'frame of another window');

    const lookalike = new FakeWebContents('app://hangar.evil/index.html');
    assert.equal(isTrustedSender(ipcEvent(lookalike), [lookalike]), false, 'look-alike host');
    const file = new FakeWebContents('file:///tmp/index.html');
    assert.equal(isTrustedSender(ipcEvent(file), [file]), false, 'file page');
  });

  it('treats a frame that throws while inspected as untrusted', () => {
    const wc = new FakeWebContents();
    const broken = Object.create(wc.mainFrame, { url: { get() { throw new Error('Render frame was disposed'); } } }) as FakeFrame;
    assert.equal(isTrustedSender(ipcEvent(wc, broken), [wc]), false);
  });
});

describe('electron security: URLs', () => {
  it('knows the app origin', () => {
    assert.equal(isAppUrl('app://hangar/index.html'), true);
    assert.equal(isAppUrl('app://hangar/#/vm/x'), true);
    assert.equal(isAppUrl('app://other/index.html'), false);
    assert.equal(isAppUrl('https://hangar/index.html'), false);
    assert.equal(isAppUrl('app://user:pw@hangar/'), false);
    assert.equal(isAppUrl('not a url'), false);
  });

  it('opens only http(s) links externally', () => {
    assert.equal(isSafeExternalUrl('https://www.qemu.org/docs/'), true);
    assert.equal(isSafeExternalUrl('http://example.com'), true);
    for (const bad of ['javascript:alert(1)', 'file:///etc/passwd', 'app://hangar/index.html', 'smb://host/share',
      'https//missing-colon', '', 'http://', 42, null, `https://x.example/${'a'.repeat(3000)}`]) {
      assert.equal(isSafeExternalUrl(bad), false, String(bad).slice(0, 40));
    }
  });
});

describe('electron security: web contents hardening', () => {
  it('denies navigation and redirects away from the app origin, allows in-app navigation', () => {
    const wc = new FakeWebContents();
    hardenWebContents(wc, () => {});
    assert.equal(wc.navigate('will-navigate', 'https://evil.example/'), true);
    assert.equal(wc.navigate('will-navigate', 'file:///etc/passwd'), true);
    assert.equal(wc.navigate('will-frame-navigate', 'https://evil.example/'), true);
    assert.equal(wc.navigate('will-redirect', 'http://127.0.0.1:8080/'), true);
    assert.equal(wc.navigate('will-navigate', 'app://hangar/index.html#/host'), false);
  });

  it('denies every new window; http(s) targets go to the system browser', () => {
    const wc = new FakeWebContents();
    const opened: string[] = [];
    hardenWebContents(wc, (u) => opened.push(u));
    assert.deepEqual(wc.windowOpenHandler!({ url: 'https://www.qemu.org/' }), { action: 'deny' });
    assert.deepEqual(wc.windowOpenHandler!({ url: 'javascript:alert(1)' }), { action: 'deny' });
    assert.deepEqual(wc.windowOpenHandler!({ url: 'app://hangar/index.html' }), { action: 'deny' });
    assert.deepEqual(opened, ['https://www.qemu.org/']);
  });

  it('refuses to attach webviews', () => {
    const wc = new FakeWebContents();
    hardenWebContents(wc, () => {});
    let prevented = false;
    wc.emit('will-attach-webview', { preventDefault: () => { prevented = true; } });
    assert.equal(prevented, true);
  });
});

describe('electron security: session', () => {
  it('adds the CSP header to every response, replacing a weaker one', () => {
    const s = new FakeSession();
    installSessionSecurity(s);
    let headers: Record<string, string[] | string> | undefined;
    s.headersListener!({ url: 'app://hangar/index.html', responseHeaders: { 'content-security-policy': ["default-src *"], 'Content-Type': ['text/html'] } },
      (r) => { headers = r.responseHeaders; });
    assert.deepEqual(headers!['Content-Security-Policy'], [CSP]);
    assert.equal(headers!['content-security-policy'], undefined);
    assert.deepEqual(headers!['Content-Type'], ['text/html']);
    assert.match(CSP, /default-src 'self'/);
    assert.match(CSP, /object-src 'none'/);
    assert.match(CSP, /frame-ancestors 'none'/);
    assert.doesNotMatch(CSP, /script-src[^;]*unsafe/);
  });

  it('denies permission requests, except clipboard writes from our pages', () => {
    const s = new FakeSession();
    installSessionSecurity(s);
    const ask = (permission: string, url: string): boolean => {
      let granted: boolean | undefined;
      s.requestHandler!(new FakeWebContents(url), permission, (g) => { granted = g; }, { requestingUrl: url });
      assert.notEqual(granted, undefined, 'callback called');
      return granted!;
    };
    for (const p of ['media', 'geolocation', 'notifications', 'openExternal', 'clipboard-read', 'fullscreen']) {
      assert.equal(ask(p, 'app://hangar/index.html'), false, p);
    }
    assert.equal(ask('clipboard-sanitized-write', 'app://hangar/index.html'), true);
    assert.equal(ask('clipboard-sanitized-write', 'https://evil.example/'), false);
    assert.equal(s.checkHandler!(null, 'media', 'app://hangar'), false);
    assert.equal(s.checkHandler!(null, 'clipboard-sanitized-write', 'app://hangar'), true);
    assert.equal(s.deviceHandler!({}), false);
  });
});

describe('electron app:// protocol', () => {
  const root = '/opt/hangar/dist/renderer';
  const files: Record<string, string> = {
    [join(root, 'index.html')]: '<!doctype html>',
    [join(root, 'assets/app.js')]: 'console.log(1)',
    [join(root, 'assets/app.css')]: 'body{}',
  };
  const reads: string[] = [];
  const handler = createAppProtocolHandler({
    root,
    readFile: async (p) => {
      reads.push(p);
      if (!(p in files)) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
      return new TextEncoder().encode(files[p]);
    },
  });
  const get = (url: string, method = 'GET'): Promise<Response> => handler({ url, method });

  it('serves files with their MIME type and the CSP header', async () => {
    for (const [url, type] of [['app://hangar/index.html', 'text/html'], ['app://hangar/', 'text/html'],
      ['app://hangar/assets/app.js', 'text/javascript'], ['app://hangar/assets/app.css', 'text/css']] as const) {
      const r = await get(url);
      assert.equal(r.status, 200, url);
      assert.match(r.headers.get('content-type')!, new RegExp(type));
      assert.equal(r.headers.get('content-security-policy'), CSP);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    }
    assert.equal(await (await get('app://hangar/index.html')).text(), '<!doctype html>');
  });

  it('refuses path traversal and other hosts, with the CSP on errors too', async () => {
    for (const url of ['app://hangar/../../../etc/passwd', 'app://hangar/%2e%2e/%2e%2e/etc/passwd',
      'app://hangar/assets/..%2f..%2f..%2fetc/passwd', 'app://hangar/a%00b', 'app://other/index.html', 'app://hangar/%E0%A4%A']) {
      const r = await get(url);
      assert.equal(r.status, 404, url);
      assert.equal(r.headers.get('content-security-policy'), CSP);
    }
    // Nothing outside root was even looked at.
    for (const p of reads) assert.ok(p.startsWith(root + '/'), p);
    assert.equal(resolveAppPath(root, 'app://hangar/a%2f..%2f..%2f..%2fsecret'), null);
    assert.equal(resolveAppPath('/r', 'app://hangar/..%2fsecret'), null);
    assert.equal(resolveAppPath(root, 'app://hangar/assets/app.js'), join(root, 'assets/app.js'));
    assert.equal((await get('app://hangar/index.html', 'POST')).status, 405);
  });

  it('explains a missing UI build', async () => {
    const empty = createAppProtocolHandler({ root, readFile: async () => { throw new Error('ENOENT'); } });
    const r = await empty({ url: 'app://hangar/index.html', method: 'GET' });
    assert.equal(r.status, 503);
    assert.match(await r.text(), /not built/);
  });

  it('maps MIME types', () => {
    assert.equal(mimeType('x.svg'), 'image/svg+xml');
    assert.equal(mimeType('x.woff2'), 'font/woff2');
    assert.equal(mimeType('x.unknown'), 'application/octet-stream');
  });
});
