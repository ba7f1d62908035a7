// Browser mode's gatekeeping: token, Host and Origin checks, static files, WebSocket routing.
// The endpoint is a recorder here; the real core behind it is covered by the integration suite.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CoreEndpoint } from '../../core/node/rpc/endpoint.ts';
import { startWebServer } from '../../core/node/web/web-server.ts';
import type { WebServer } from '../../core/node/web/web-server.ts';
import { HangarError } from '../../core/common/errors.ts';
import { openWs, wsUrl } from '../helpers/ws-client.ts';

let dir: string;
let web: WebServer;
const calls: string[] = [];
const endpoint: CoreEndpoint = {
  serveRpc: (link) => { calls.push('rpc'); link.onMessage((m) => link.send(`echo:${m}`)); },
  serveConsole: (link, vm, opts) => { calls.push(`console:${vm}:${opts.replay}`); link.send('{"type":"ready","vm":"x"}'); },
  serveDisplay: (link, vm) => { calls.push(`display:${vm}`); link.send('{"type":"ready","vm":"x"}'); },
};

interface Res { status: number; body: string; headers: Record<string, string | string[] | undefined> }
function get(path: string, headers: Record<string, string> = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: web.port, path, headers: { Host: `127.0.0.1:${web.port}`, ...headers } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hangar-web-'));
  mkdirSync(join(dir, 'ui', 'assets'), { recursive: true });
  writeFileSync(join(dir, 'ui', 'index.html'), '<!doctype html><title>Hangar</title>');
  writeFileSync(join(dir, 'ui', 'assets', 'app-123.js'), 'console.log(1)');
  writeFileSync(join(dir, 'secret.txt'), 'do not serve');
  web = await startWebServer({ endpoint, staticDir: join(dir, 'ui'), port: 0, token: 'T0KEN-abcdefghijklmnop' });
});

after(async () => {
  await web?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('HTTP', () => {
  test('the URL names loopback, the port and the token', () => {
    assert.equal(web.url, `http://127.0.0.1:${web.port}/?token=T0KEN-abcdefghijklmnop`);
  });

  test('the page with the token is served with CSP and sets the token cookie', async () => {
    const r = await get('/?token=T0KEN-abcdefghijklmnop');
    assert.equal(r.status, 200);
    assert.match(r.body, /<title>Hangar/);
    assert.match(String(r.headers['content-security-policy']), /default-src 'self'.*frame-ancestors 'none'/);
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.match(String(r.headers['set-cookie']), new RegExp(`hangar_token_${web.port}=T0KEN-abcdefghijklmnop; HttpOnly; SameSite=Strict`));
  });

  test('assets load with the cookie, with the right type', async () => {
    const r = await get('/assets/app-123.js', { Cookie: `hangar_token_${web.port}=T0KEN-abcdefghijklmnop` });
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /text\/javascript/);
  });

  test('no token, a wrong token, or a cookie for another port is refused', async () => {
    for (const [path, headers] of [['/', {}], ['/?token=wrong', {}], ['/?token=T0KEN-abcdefghijklmnoX', {}],
      ['/assets/app-123.js', { Cookie: `hangar_token_1=T0KEN-abcdefghijklmnop` }]] as const) {
      const r = await get(path, headers);
      assert.equal(r.status, 401, path);
      assert.match(r.body, /token/);
      assert.doesNotMatch(r.body, /Hangar<\/title>/);
    }
  });

  test('a foreign Host header is refused (DNS rebinding)', async () => {
    const r = await get('/?token=T0KEN-abcdefghijklmnop', { Host: `evil.example:${web.port}` });
    assert.equal(r.status, 421);
    assert.match(r.body, /Host header "evil.example/);
    const other = await get('/?token=T0KEN-abcdefghijklmnop', { Host: '127.0.0.1:1' });
    assert.equal(other.status, 421);
    assert.equal((await get('/?token=T0KEN-abcdefghijklmnop', { Host: `localhost:${web.port}` })).status, 200);
  });

  test('a foreign Origin is refused', async () => {
    const r = await get('/?token=T0KEN-abcdefghijklmnop', { Origin: 'http://evil.example' });
    assert.equal(r.status, 403);
    assert.match(r.body, /Origin/);
  });

  test('paths outside the UI folder are not served', async () => {
    for (const p of ['/../secret.txt', '/%2e%2e/secret.txt', '/assets/..%2f..%2fsecret.txt']) {
      const r = await get(`${p}?token=T0KEN-abcdefghijklmnop`);
      assert.equal(r.status, 404, p);
      assert.doesNotMatch(r.body, /do not serve/);
    }
  });
});

describe('WebSocket', () => {
  const target = () => ({ origin: `http://127.0.0.1:${web.port}`, token: 'T0KEN-abcdefghijklmnop' });

  test('the RPC channel reaches the endpoint', async () => {
    const ws = await openWs(wsUrl(target(), '/api/rpc'));
    const reply = new Promise<string>((r) => ws.once('message', (d) => r(d.toString())));
    ws.send('hello');
    assert.equal(await reply, 'echo:hello');
    ws.close();
  });

  test('the console channel passes vm and replay', async () => {
    const ws = await openWs(wsUrl(target(), '/api/console', { vm: 'my vm', replay: '0' }));
    for (let i = 0; i < 100 && !calls.includes('console:my vm:false'); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(calls.includes('console:my vm:false'), JSON.stringify(calls));
    ws.close();
  });

  test('the display channel passes the vm; it needs the token like every channel', async () => {
    const ws = await openWs(wsUrl(target(), '/api/display', { vm: 'win 11' }));
    for (let i = 0; i < 100 && !calls.includes('display:win 11'); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(calls.includes('display:win 11'), JSON.stringify(calls));
    ws.close();
    const before = calls.length;
    await assert.rejects(openWs(wsUrl({ ...target(), token: 'nope' }, '/api/display', { vm: 'win 11' })), { status: 401 });
    await assert.rejects(openWs(wsUrl(target(), '/api/display', { vm: 'win 11' }), { origin: 'http://evil.example' }), { status: 403 });
    assert.equal(calls.length, before);
  });

  test('upgrades without token, with a foreign or missing Origin, or a foreign Host are refused', async () => {
    const before = calls.length;
    await assert.rejects(openWs(wsUrl({ ...target(), token: 'nope' }, '/api/rpc')), { status: 401 });
    await assert.rejects(openWs(wsUrl(target(), '/api/rpc'), { origin: 'http://evil.example' }), { status: 403 });
    await assert.rejects(openWs(wsUrl(target(), '/api/rpc'), { origin: null }), { status: 403 });
    await assert.rejects(openWs(wsUrl(target(), '/api/rpc'), { origin: `http://127.0.0.1:${web.port + 1}` }), { status: 403 });
    await assert.rejects(openWs(wsUrl(target(), '/api/rpc'), { host: `evil.example:${web.port}` }), { status: 421 });
    await assert.rejects(openWs(wsUrl(target(), '/api/other')), { status: 404 });
    assert.equal(calls.length, before, 'nothing reached the core');
  });
});

test('binding beyond loopback needs allowRemote', async () => {
  await assert.rejects(startWebServer({ endpoint, staticDir: dir, port: 0, host: '0.0.0.0' }),
    (e: unknown) => e instanceof HangarError && e.code === 'invalid-input' && /--allow-remote/.test(e.hint ?? ''));
  const w = await startWebServer({ endpoint, staticDir: dir, port: 0, host: '0.0.0.0', allowRemote: true });
  assert.match(w.url, /^http:\/\/0\.0\.0\.0:\d+\/\?token=/);
  await w.close();
});
