// The compute agent's client against a stand-in controller that takes requests and never answers
// (a controller gone without closing the connection): small calls and the long poll give up after
// their bound instead of Node's 5 minutes; streams are not cut by that bound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { ControllerClient } from '../../src/agent/client.js';

test('unanswered calls and long polls time out; a slow stream does not', async () => {
  const held: ServerResponse[] = [];
  const server = createServer((req, res) => {
    if (req.url?.includes('/images/')) {
      // A stream slower than the call bound: headers now, bytes over ~600 ms.
      res.setHeader('content-type', 'application/octet-stream');
      res.setHeader('x-image-sha256', 'x');
      let n = 0;
      const t = setInterval(() => { res.write('x'); if (++n === 6) { clearInterval(t); res.end(); } }, 100);
      return;
    }
    held.push(res);   // never answered
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const client = new ControllerClient(`http://127.0.0.1:${port}`, 't', 'h', 300);
  try {
    let t0 = Date.now();
    await assert.rejects(client.heartbeat({} as never), { name: 'TimeoutError' });
    assert.ok(Date.now() - t0 < 3000, 'a small call gives up after its bound');
    t0 = Date.now();
    await assert.rejects(client.watch(-1, 1), { name: 'TimeoutError' });
    const waited = Date.now() - t0;
    assert.ok(waited >= 1200 && waited < 5000, `the long poll is given its wait plus the bound (${waited} ms)`);
    const img = await client.image('i');
    let bytes = '';
    for await (const chunk of img.body!) bytes += String(chunk);
    assert.equal(bytes, 'xxxxxx', 'a stream longer than the bound is read whole');
  } finally {
    for (const r of held) r.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});
