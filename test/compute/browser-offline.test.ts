// The test browser (test/helpers/browser.ts, used by the noVNC check) tries to send nothing off
// loopback: Chromium started with the helper's command line inside a fresh network namespace
// (only loopback, so nothing can leave even if it tried) under strace for a few seconds, asked
// for a page on a named host; every send or connect it attempted off loopback is listed. (Before,
// it queried the machine's DNS resolver dozens of times a minute.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';
import { CHROMIUM, chromiumArgs, openPage } from '../helpers/browser.js';
import { until } from '../helpers/agent.js';

const tools = ['/usr/bin/strace', '/usr/bin/unshare'].every((p) => existsSync(p));
// Both must work here (a sandbox may refuse namespaces or ptrace): otherwise skipped, not failed.
const probe = () => spawnSync('unshare', ['-n', 'strace', '-f', '-qq', '-o', '/dev/null', 'true'], { stdio: 'ignore', timeout: 30_000 }).status === 0;
const skip = !CHROMIUM ? 'chromium is not installed' : !tools ? 'strace or unshare missing'
  : !probe() ? 'no network namespace or strace here' : false;

test('the test browser attempts no traffic off loopback', { skip, timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'stratus-browser-offline-'));
  try {
    const trace = join(dir, 'trace');
    // A page on a named host: it must not lead to a DNS query or a connection off loopback either.
    const script = ['ip link set lo up', `exec timeout 15 strace -f -qq -e trace=connect,sendto,sendmsg -o ${trace} ${CHROMIUM} `
      + chromiumArgs(join(dir, 'profile'), 'http://example.com/').map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')].join('\n');
    const run = spawnSync('unshare', ['-n', 'sh', '-c', script], { encoding: 'utf8', timeout: 60_000 });
    assert.match(run.stderr, /DevTools listening on ws:\/\/127\.0\.0\.1/, 'Chromium started');
    const off = readFileSync(trace, 'utf8').split('\n').filter((l) => /AF_INET/.test(l) && !/"127\.\d+\.\d+\.\d+"|"::1"/.test(l))
      // Chromium's IPv6 reachability probe is a connect() on a UDP socket: it sends nothing.
      .filter((l) => !/connect\(.*htons\(443\).*"2001:4860:4860::8888"/.test(l));
    assert.deepEqual(off, [], 'attempted sends off loopback');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the test browser still reaches pages and WebSockets on loopback (what the noVNC check needs)', { skip: !CHROMIUM && 'chromium is not installed', timeout: 120_000 }, async () => {
  const server = createServer((_q, r) => {
    r.setHeader('content-type', 'text/html');
    r.end('<script>const w = new WebSocket("ws://" + location.host + "/ws"); w.onmessage = (e) => { document.title = "got " + e.data; };</script>');
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.send('hello'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const page = await openPage(`http://127.0.0.1:${(server.address() as { port: number }).port}/`);
  try {
    assert.equal(await until('the page\'s WebSocket message', async () => {
      const t = await page.evaluate<string>('document.title');
      return t.startsWith('got') ? t : null;
    }, 30_000), 'got hello');
  } finally {
    await page.close();
    wss.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});
