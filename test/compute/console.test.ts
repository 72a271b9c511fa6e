// Remote consoles end to end, on one real guest: the openstack CLI asks for a noVNC console URL,
// a WebSocket client on that URL's path gets QEMU's RFB greeting through the controller's proxy
// and completes the handshake (security type None, ServerInit naming the guest); bad, expired
// and other projects' requests are refused; a deleted server's tokens stop working and its open
// console closes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import WebSocket from 'ws';
import { api, startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { TEST_IMAGE, testAgent, until, type TestAgent } from '../helpers/agent.js';
import { QemuDriver } from '../../src/agent/hypervisor/qemu/driver.js';
import { fakeHost } from './fake-agent.js';
import { CHROMIUM, openPage } from '../helpers/browser.js';
import { redactTokens } from '../../src/core/http.js';
import { consoleConfig } from '../../src/compute/consoles/service.js';

let tc: TestCloud;
let agent: TestAgent | undefined;
let adminToken = '';
let demoToken = '';
const haveImage = existsSync(TEST_IMAGE);
const skip = !haveImage && `${TEST_IMAGE} missing`;

before(async () => {
  if (!haveImage) return;
  tc = await startTestCloud({ image: { bootstrapImage: TEST_IMAGE } } as never);
  agent = testAgent(tc);
  await agent.start();
  adminToken = (await tc.openstackJson(['token', 'issue'])).id;
  demoToken = (await tc.openstackJson(['token', 'issue'], { as: 'demo' })).id;
});
after(async () => {
  await agent?.cleanup();
  await tc?.stop();
});

const mv = (v: string) => ({ 'OpenStack-API-Version': `compute ${v}` });

/** The WebSocket URL noVNC's vnc_lite.html builds from a console URL (its `path` parameter). */
function wsUrlOf(consoleUrl: string): string {
  const u = new URL(consoleUrl);
  const path = u.searchParams.get('path');
  assert.ok(path, `no path in ${consoleUrl}`);
  return `ws://${u.host}/${path}`;
}

/** A WebSocket with a byte reader over its binary messages. */
async function openConsole(url: string): Promise<{ ws: WebSocket; read(n: number): Promise<Buffer>; closed: Promise<number> }> {
  const ws = new WebSocket(url);
  let buf = Buffer.alloc(0);
  let wake: (() => void) | undefined;
  ws.on('message', (d: Buffer) => { buf = Buffer.concat([buf, d]); wake?.(); });
  const closed = new Promise<number>((r) => ws.on('close', (code) => { wake?.(); r(code); }));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
    ws.once('error', reject);
  });
  const read = async (n: number) => {
    const deadline = Date.now() + 30_000;
    while (buf.length < n) {
      if (ws.readyState !== WebSocket.OPEN || Date.now() > deadline) throw new Error(`console closed or silent with ${buf.length}/${n} bytes`);
      await new Promise<void>((r) => { wake = r; setTimeout(r, 500); });
    }
    const out = buf.subarray(0, n);
    buf = buf.subarray(n);
    return out;
  };
  return { ws, read, closed };
}

/** RFB 3.8 up to ServerInit with security type None; returns the desktop name and size. */
async function rfbHandshake(c: Awaited<ReturnType<typeof openConsole>>): Promise<{ width: number; height: number; name: string }> {
  assert.equal((await c.read(12)).toString('latin1'), 'RFB 003.008\n');
  c.ws.send(Buffer.from('RFB 003.008\n', 'latin1'));
  const n = (await c.read(1))[0]!;
  assert.ok(n > 0, 'the server offers security types');
  const types = [...(await c.read(n))];
  assert.ok(types.includes(1), `security type None offered: ${types}`);
  c.ws.send(Buffer.from([1]));
  assert.equal((await c.read(4)).readUInt32BE(0), 0, 'SecurityResult OK');
  c.ws.send(Buffer.from([1])); // ClientInit, shared
  const init = await c.read(24);
  const name = (await c.read(init.readUInt32BE(20))).toString('utf8');
  return { width: init.readUInt16BE(0), height: init.readUInt16BE(2), name };
}

async function refusedStatus(url: string): Promise<number | undefined> {
  try {
    const c = await openConsole(url);
    c.ws.close();
    return undefined;
  } catch (e) {
    return (e as { status?: number }).status;
  }
}

test('noVNC console through the CLI and the proxy; policy, bad input, expiry, delete', { skip, timeout: 600_000 }, async (t) => {
  const s = await tc.openstackJson(['server', 'create', '--image', 'stratus-test', '--flavor', 'm1.nano', '--wait', 'con-1']);
  assert.equal(s.status, 'ACTIVE');
  const id: string = s.id;

  // The real CLI (openstacksdk: POST /servers/{id}/remote-consoles at 2.8).
  const shown = await tc.openstackJson(['console', 'url', 'show', '--novnc', 'con-1']);
  assert.equal(shown.type, 'novnc');
  assert.match(shown.url, new RegExp(`^${tc.url}/compute/console/vnc_lite\\.html\\?path=`));

  // The noVNC client is served from the same place (ES modules need a JavaScript MIME type).
  const page = await fetch(shown.url);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /noVNC/);
  const rfbJs = await fetch(new URL('core/rfb.js', shown.url));
  assert.equal(rfbJs.status, 200);
  assert.match(rfbJs.headers.get('content-type') ?? '', /javascript/);
  assert.equal((await fetch(`${tc.url}/compute/console/..%2f..%2fetc/passwd`)).status, 404);

  // Through the proxy to QEMU's VNC server: greeting, security None, ServerInit naming the guest.
  const wsUrl = wsUrlOf(shown.url);
  const c1 = await openConsole(wsUrl);
  const init = await rfbHandshake(c1);
  assert.ok(init.width > 0 && init.height > 0, JSON.stringify(init));
  assert.match(init.name, new RegExp(id));
  assert.equal(tc.cloud.compute.consoleProxy.connections, 1);
  c1.ws.close();
  await c1.closed;
  await until('the proxy to drop the VNC socket', () => tc.cloud.compute.consoleProxy.connections === 0, 10_000);

  // A real browser, when Debian's chromium is installed: the noVNC page connects through the proxy.
  if (CHROMIUM) {
    const page = await openPage(shown.url);
    try {
      const status = await until('noVNC to connect', async () => {
        const text = await page.evaluate<string>("document.getElementById('status')?.textContent ?? ''");
        return /^Connected to /.test(text) ? text : null;
      }, 60_000);
      assert.match(status, new RegExp(id), 'noVNC shows the guest\'s desktop name');
      if (process.env.STRATUS_TEST_SCREENSHOTS) writeFileSync(join(process.env.STRATUS_TEST_SCREENSHOTS, 'novnc.png'), await page.screenshot());
    } finally {
      await page.close();
    }
    await until('the proxy to drop the browser\'s console', () => tc.cloud.compute.consoleProxy.connections === 0, 15_000);
  } else {
    t.diagnostic('chromium is not installed: the browser check is skipped');
  }

  // Tokens: a bogus one, a wrong Origin, and an expired one are refused before the handshake.
  assert.equal(await refusedStatus(wsUrl.replace(/token=[^&]+/, 'token=bogus')), 401);
  assert.equal(await refusedStatus(`ws://${new URL(tc.url).host}/compute/v2.1/servers`), 404, 'other upgrades are not left hanging');
  // The request log never shows the token (the noVNC page URL carries it, URL-encoded).
  const pageUrl = new URL(shown.url);
  const shownToken = new URL(wsUrl).searchParams.get('token')!;
  assert.ok(pageUrl.search.includes(shownToken) && !redactTokens(pageUrl.pathname + pageUrl.search).includes(shownToken));
  await assert.rejects(new Promise<void>((resolve, reject) => {
    const ws = new WebSocket(wsUrl, { origin: 'http://evil.example' });
    ws.once('open', () => { ws.close(); resolve(); });
    ws.once('unexpected-response', (_q, r) => reject(new Error(`HTTP ${r.statusCode}`)));
    ws.once('error', reject);
  }), /HTTP 403/);
  const raw = await api(tc.url, 'POST', `/compute/v2.1/servers/${id}/remote-consoles`, {
    token: adminToken, headers: mv('2.6'), body: { remote_console: { protocol: 'vnc', type: 'novnc' } },
  });
  assert.equal(raw.status, 200, raw.text);
  assert.deepEqual(Object.keys(raw.body.remote_console).sort(), ['protocol', 'type', 'url']);
  const expiring = wsUrlOf(raw.body.remote_console.url);
  const token = new URL(expiring).searchParams.get('token')!;
  // Stored hashed: the token itself is nowhere in the table.
  const rows = await tc.cloud.db.kysely.selectFrom('compute_console_tokens').selectAll().execute();
  assert.ok(rows.length >= 2 && rows.every((r) => !Object.values(r).includes(token)));
  assert.ok(rows.every((r) => Date.parse(r.expires_at) - Date.parse(r.created_at) === 600_000), 'default TTL: 10 minutes');

  // os-console-auth-tokens (admins; details of VNC consoles from 2.31).
  const info = await api(tc.url, 'GET', `/compute/v2.1/os-console-auth-tokens/${token}`, { token: adminToken, headers: mv('2.31') });
  assert.equal(info.status, 200, info.text);
  assert.equal(info.body.console.instance_uuid, id);
  assert.equal(info.body.console.host, agent!.host);
  assert.match(info.body.console.internal_access_path, /vnc\.sock$/);
  assert.equal((await api(tc.url, 'GET', `/compute/v2.1/os-console-auth-tokens/${token}`, { token: adminToken })).status, 401);
  assert.equal((await api(tc.url, 'GET', `/compute/v2.1/os-console-auth-tokens/nope`, { token: adminToken, headers: mv('2.31') })).status, 404);
  assert.equal((await api(tc.url, 'GET', `/compute/v2.1/os-console-auth-tokens/${token}`, { token: demoToken, headers: mv('2.31') })).status, 403);

  await tc.cloud.db.kysely.updateTable('compute_console_tokens').set({ expires_at: new Date(Date.now() - 1000).toISOString() })
    .where('token_hash', '=', createHash('sha256').update(token).digest('hex')).execute();
  assert.equal(await refusedStatus(expiring), 401, 'an expired token is refused');
  assert.equal(await tc.cloud.compute.nova.consoles.purge() >= 1, true);

  // Another project's server: as Nova, the demo user cannot even see it.
  const demo = await tc.openstack(['console', 'url', 'show', '--novnc', id], { as: 'demo' });
  assert.notEqual(demo.code, 0);
  const demoRaw = await api(tc.url, 'POST', `/compute/v2.1/servers/${id}/remote-consoles`, {
    token: demoToken, headers: mv('2.8'), body: { remote_console: { protocol: 'vnc', type: 'novnc' } },
  });
  assert.equal(demoRaw.status, 404, demoRaw.text);
  const demoLegacy = await api(tc.url, 'POST', `/compute/v2.1/servers/${id}/action`, { token: demoToken, body: { 'os-getVNCConsole': { type: 'novnc' } } });
  assert.equal(demoLegacy.status, 404, demoLegacy.text);

  // Bad input, as Nova answers it.
  const post = (body: unknown, v = '2.8') => api(tc.url, 'POST', `/compute/v2.1/servers/${id}/remote-consoles`, { token: adminToken, headers: mv(v), body });
  for (const [body, status, msg] of [
    [{ remote_console: { protocol: 'spice', type: 'spice-html5' } }, 400, /Unavailable console type spice-html5/],
    [{ remote_console: { protocol: 'vnc', type: 'spice-html5' } }, 400, /Invalid console type/],
    [{ remote_console: { protocol: 'telnet', type: 'novnc' } }, 400, /protocol/],
    [{ remote_console: { protocol: 'vnc' } }, 400, /type/],
    [{ remote_console: { protocol: 'vnc', type: 'novnc', extra: 1 } }, 400, /./],
  ] as const) {
    const r = await post(body);
    assert.equal(r.status, status, `${JSON.stringify(body)}: ${r.text}`);
    assert.match(r.body.badRequest.message, msg);
  }
  assert.equal((await post({ remote_console: { protocol: 'mks', type: 'webmks' } }, '2.6')).status, 400, 'mks needs 2.8');
  assert.equal((await post({ remote_console: { protocol: 'vnc', type: 'novnc' } }, '2.5')).status, 404, 'remote-consoles needs 2.6');

  // The legacy action (2.1-2.5).
  const legacy = await api(tc.url, 'POST', `/compute/v2.1/servers/${id}/action`, { token: adminToken, body: { 'os-getVNCConsole': { type: 'novnc' } } });
  assert.equal(legacy.status, 200, legacy.text);
  assert.equal(legacy.body.console.type, 'novnc');
  assert.match(legacy.body.console.url, /vnc_lite\.html\?path=/);
  assert.equal((await api(tc.url, 'POST', `/compute/v2.1/servers/${id}/action`, { token: adminToken, headers: mv('2.6'), body: { 'os-getVNCConsole': { type: 'novnc' } } })).status, 404);
  assert.equal((await api(tc.url, 'POST', `/compute/v2.1/servers/${id}/action`, { token: adminToken, body: { 'os-getVNCConsole': { type: 'bogus' } } })).status, 400);
  assert.equal((await api(tc.url, 'POST', `/compute/v2.1/servers/${id}/action`, { token: adminToken, body: { 'os-getSPICEConsole': { type: 'spice-html5' } } })).status, 400);

  // Not ACTIVE → 409.
  assert.equal((await tc.openstack(['server', 'pause', 'con-1'])).code, 0);
  await until('PAUSED', async () => (await tc.openstackJson(['server', 'show', 'con-1'])).status === 'PAUSED', 60_000);
  const paused = await post({ remote_console: { protocol: 'vnc', type: 'novnc' } });
  assert.equal(paused.status, 409, paused.text);
  assert.equal((await tc.openstack(['server', 'unpause', 'con-1'])).code, 0);
  await until('ACTIVE', async () => (await tc.openstackJson(['server', 'show', 'con-1'])).status === 'ACTIVE', 60_000);

  // Delete: the open console closes, and the server's tokens stop working.
  const live = await openConsole(wsUrl);
  assert.equal((await live.read(12)).toString('latin1'), 'RFB 003.008\n');
  const del = await tc.openstack(['server', 'delete', '--wait', 'con-1']);
  assert.equal(del.code, 0, del.stderr);
  await Promise.race([live.closed, new Promise((_, rej) => setTimeout(() => rej(new Error('console not closed after delete')), 30_000))]);
  await until('the proxy to drop the deleted guest', () => tc.cloud.compute.consoleProxy.connections === 0, 10_000);
  assert.equal(await refusedStatus(wsUrl), 401, 'a deleted server\'s token is refused');
});

test('remote agent case: the guest\'s VNC server on TCP (--console-listen), reached by the proxy', { skip, timeout: 300_000 }, async () => {
  // A second host whose guest runs under a driver configured like `stratus agent --console-listen
  // 127.0.0.1`; the host answers the controller's vnc call with what that driver reports.
  const drv = new QemuDriver({ instancesDir: join(tc.dataDir, 'tcp-host'), accel: 'TCG', log: pino({ level: 'silent' }), cgroups: false, vncListen: '127.0.0.1' });
  const host = await fakeHost(tc, 'tcp-host', {}, {
    answer: async (call) => (call.type === 'vnc' ? { ...(await drv.vncAddress(call.instanceId)) } : {}),
  });
  let id: string | undefined;
  try {
    const s = await tc.openstackJson(['server', 'create', '--image', 'stratus-test', '--flavor', 'm1.nano', '--availability-zone', 'nova:tcp-host', '--wait', 'con-tcp']);
    id = s.id as string;
    await drv.spawn({ id, name: 'con-tcp', vcpus: 1, ramMb: 128, diskGb: 0, nics: [] }, { path: TEST_IMAGE, format: 'qcow2' }, undefined);
    const addr = await until('the TCP VNC address', () => drv.vncAddress(id!), 30_000);
    assert.ok('port' in addr && addr.host === '127.0.0.1' && addr.port >= 5900, JSON.stringify(addr));
    const { url } = await tc.openstackJson(['console', 'url', 'show', 'con-tcp']);
    const c = await openConsole(wsUrlOf(url));
    const init = await rfbHandshake(c);
    assert.match(init.name, new RegExp(id));
    c.ws.close();
    await c.closed;
    const token = new URL(wsUrlOf(url)).searchParams.get('token')!;
    const info = await api(tc.url, 'GET', `/compute/v2.1/os-console-auth-tokens/${token}`, { token: adminToken, headers: mv('2.31') });
    assert.deepEqual(info.body.console, { instance_uuid: id, host: '127.0.0.1', port: addr.port, internal_access_path: null });
  } finally {
    if (id) await drv.destroy(id);
    await host.stop();
  }
});

test('console settings: compute.console in stratus.yaml over the defaults', () => {
  assert.deepEqual(consoleConfig(undefined), { tokenTtlSec: 600, proxyBaseUrl: undefined, novncDir: '/usr/share/novnc', allowedOrigins: [] });
  const c = consoleConfig({ console: { tokenTtlSec: 30, proxyBaseUrl: 'https://cloud.example/compute/console/', allowedOrigins: ['dash.example:8443'] } });
  assert.equal(c.tokenTtlSec, 30);
  assert.equal(c.proxyBaseUrl, 'https://cloud.example/compute/console');
  assert.deepEqual(c.allowedOrigins, ['dash.example:8443']);
  assert.equal(consoleConfig({ console: { tokenTtlSec: -1 } }).tokenTtlSec, 600, 'a bad TTL falls back to the default');
});
