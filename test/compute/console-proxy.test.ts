// The console proxy on its own (no cloud, no guest): a stand-in VNC server on a unix socket and a
// stand-in token check. What matters here is what happens around the bridge: a valid token whose
// WebSocket handshake then fails must not leave the guest's VNC connection open.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as httpServer, type Server } from 'node:http';
import { connect, createServer as netServer, type Server as NetServer, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { ConsoleProxy } from '../../src/compute/consoles/proxy.js';
import type { ConsoleService, ConsoleTarget } from '../../src/compute/consoles/service.js';
import { createLogger } from '../../src/core/log.js';
import { ApiError } from '../../src/core/errors.js';
import { until } from '../helpers/agent.js';

const dir = mkdtempSync(join(tmpdir(), 'stratus-console-proxy-'));
const vncPath = join(dir, 'vnc.sock');
const vncConns = new Set<Socket>();
let vnc: NetServer;
let http: Server;
let proxy: ConsoleProxy;
let port = 0;
let agentGone = false;

const target: ConsoleTarget = {
  instanceId: 'i-1', projectId: 'p', consoleType: 'novnc', host: 'h', port: null, internalAccessPath: vncPath, expiresAt: '',
};
const consoles = {
  cfg: { tokenTtlSec: 600, novncDir: dir, allowedOrigins: [] },
  proxyBase: () => `http://127.0.0.1:${port}/compute/console`,
  validate: async (t: string) => (t === 'good' ? target : undefined),
  vncAddress: async () => {
    if (agentGone) throw new ApiError(504, 'The compute host h did not answer within 15 s.');
    return { unixSocket: vncPath };
  },
} as unknown as ConsoleService;

before(async () => {
  vnc = netServer((s) => {
    vncConns.add(s);
    s.on('close', () => vncConns.delete(s));
    s.on('error', () => s.destroy());
    s.write('RFB 003.008\n');
  });
  await new Promise<void>((r) => vnc.listen(vncPath, r));
  http = httpServer((_q, res) => { res.statusCode = 404; res.end(); });
  proxy = new ConsoleProxy(consoles, createLogger('silent'));
  proxy.attach(http);
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  port = (http.address() as { port: number }).port;
});

after(async () => {
  proxy.close();
  for (const s of vncConns) s.destroy();
  await new Promise((r) => http.close(r));
  await new Promise((r) => vnc.close(r));
  rmSync(dir, { recursive: true, force: true });
});

/** Sends a raw upgrade request and returns the status line of the answer. */
function rawUpgrade(headers: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (d) => { got += String(d); });
    s.on('close', () => resolve(got.split('\r\n')[0] ?? ''));
    s.on('error', reject);
    s.write([`GET /compute/console/websockify?token=good HTTP/1.1`, `Host: 127.0.0.1:${port}`, ...headers, '', ''].join('\r\n'));
  });
}

test('a valid token with a broken WebSocket handshake: 400, and the guest\'s VNC connection is closed', async () => {
  // No Sec-WebSocket-Key: the token check passes, then the WebSocket library refuses the handshake.
  const status = await rawUpgrade(['Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Version: 13']);
  assert.match(status, /^HTTP\/1\.1 400 /);
  await until('the VNC connection to close', () => vncConns.size === 0, 5_000)
    .catch(() => assert.fail(`${vncConns.size} VNC connection(s) left open by a refused handshake`));
  assert.equal(proxy.connections, 0);
});

test('a good console bridges both ways and closing it closes the VNC connection', async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/compute/console/websockify?token=good`);
  const first = await new Promise<Buffer>((resolve, reject) => {
    ws.once('message', (d: Buffer) => resolve(d));
    ws.once('error', reject);
  });
  assert.equal(first.toString('latin1'), 'RFB 003.008\n');
  assert.equal(vncConns.size, 1);
  const echoed = new Promise<string>((r) => [...vncConns][0]!.once('data', (d) => r(String(d))));
  ws.send(Buffer.from('RFB 003.008\n'));
  assert.equal(await echoed, 'RFB 003.008\n');
  ws.close();
  await until('the VNC connection to close', () => vncConns.size === 0 && proxy.connections === 0, 5_000);
});

test('a bad token is refused before any VNC connection', async () => {
  const status = await new Promise<number>((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/compute/console/websockify?token=bad`);
    ws.once('unexpected-response', (_q, r) => resolve(r.statusCode ?? 0));
    ws.once('error', () => resolve(-1));
  });
  assert.equal(status, 401);
  assert.equal(vncConns.size, 0);
});

test('the guest\'s host agent not answering: 504 saying so, no VNC connection', async () => {
  agentGone = true;
  try {
    const r = await new Promise<{ status: number; body: string }>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/compute/console/websockify?token=good`);
      ws.once('unexpected-response', (_q, res) => {
        let body = '';
        res.on('data', (d) => { body += String(d); });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      ws.once('error', () => resolve({ status: -1, body: '' }));
    });
    assert.equal(r.status, 504);
    assert.match(JSON.parse(r.body).error.message, /did not answer/);
    assert.equal(vncConns.size, 0);
  } finally {
    agentGone = false;
  }
});
