// The network agent's state poll against a stand-in controller that takes the poll and never
// answers (a controller gone without closing the connection): the agent gives the poll up and
// asks again instead of waiting for minutes. No state is ever served, so nothing is converged.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetAgent, networkLayout } from '../../src/agent/netagent.js';
import { createLogger } from '../../src/core/log.js';
import { until } from '../helpers/agent.js';

const dir = mkdtempSync(join(tmpdir(), 'stratus-netagent-watch-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('an unanswered state poll is abandoned and asked again', async () => {
  let polls = 0;
  const held: ServerResponse[] = [];
  const server = createServer((req, res) => {
    if (req.url?.endsWith('/metadata-secret')) { res.setHeader('content-type', 'application/json'); res.end('{"secret":"s"}'); return; }
    if (req.method === 'PUT') { res.setHeader('content-type', 'application/json'); res.end('{}'); return; }
    if (req.url?.includes('/state?')) { polls++; held.push(res); return; }   // never answered
    res.statusCode = 404; res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const agent = new NetAgent({
    controllerUrl: `http://127.0.0.1:${port}`, token: 't', host: 'watch-host', dataDir: dir, log: createLogger('silent'),
    layout: networkLayout({ prefix: 'stratus-twatch-' }), underlayIp: null, watchTimeoutMs: 500,
  });
  try {
    await agent.start();
    await until('a second state poll after the first went unanswered', () => polls >= 2, 10_000);
    assert.equal(agent.converged, 0, 'no state was served: nothing converged');
  } finally {
    await agent.stop();
    for (const r of held) r.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});
