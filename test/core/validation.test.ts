// The shared validator: JSON bodies are checked as sent (no type coercion), while querystrings
// and path params, which are text, are still coerced to the schema's types.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Type } from '@sinclair/typebox';
import { createHttpApp, type App } from '../../src/core/http.js';
import { createLogger } from '../../src/core/log.js';

let app: App;

before(async () => {
  app = createHttpApp({ logger: createLogger('silent') });
  app.post('/things/:n', {
    schema: {
      params: Type.Object({ n: Type.Integer() }),
      querystring: Type.Object({ limit: Type.Optional(Type.Integer()), tag: Type.Optional(Type.Array(Type.String())) }),
      body: Type.Object({ name: Type.String(), size: Type.Optional(Type.Integer()), on: Type.Optional(Type.Boolean()) }),
    },
  }, async (req) => ({ params: req.params, query: req.query, body: req.body }));
  await app.ready();
});
after(async () => { await app.close(); });

const post = (url: string, body: unknown) => app.inject({ method: 'POST', url, payload: body as object });

test('JSON bodies are not coerced', async () => {
  for (const body of [{ name: ['a'] }, { name: 1 }, { name: true }, { name: 'x', size: '5' }, { name: 'x', on: 'true' },
    { name: 'x', size: [5] }, { name: null }]) {
    const r = await post('/things/1', body);
    assert.equal(r.statusCode, 400, `${JSON.stringify(body)} must be refused, got ${r.statusCode} ${r.body}`);
    assert.match(r.json().error.message, /Invalid input for field\/attribute/);
  }
  const ok = await post('/things/1', { name: 'a', size: 5, on: false });
  assert.equal(ok.statusCode, 200, ok.body);
  assert.deepEqual(ok.json().body, { name: 'a', size: 5, on: false });
});

test('querystring and params are still coerced from text', async () => {
  const r = await post('/things/7?limit=3&tag=x', { name: 'a' });
  assert.equal(r.statusCode, 200, r.body);
  assert.deepEqual(r.json().params, { n: 7 });
  assert.deepEqual(r.json().query, { limit: 3, tag: ['x'] });
  assert.equal((await post('/things/seven', { name: 'a' })).statusCode, 400);
  assert.equal((await post('/things/1?limit=many', { name: 'a' })).statusCode, 400);
});
