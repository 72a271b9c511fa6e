// Raw HTTP: malformed and ill-typed requests get Keystone-shaped 4xx answers with a clear
// message, and nothing is half-written. Also: bootstrap is idempotent and follows the base URL.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { api, startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { V3, issue } from './helpers.js';

let tc: TestCloud;
let token: string;
before(async () => {
  tc = await startTestCloud();
  token = (await issue(tc, 'admin', tc.adminPassword)).token;
});
after(async () => { await tc?.stop(); });

const call = (method: string, path: string, body?: unknown, extra: { raw?: string; headers?: Record<string, string> } = {}) =>
  api(tc.url, method, `${V3}${path}`, { token, body, rawBody: extra.raw, headers: extra.headers });

function isKeystoneError(r: { body: any }, status: number, message?: RegExp) {
  assert.equal(r.body?.error?.code, status, JSON.stringify(r.body));
  assert.equal(typeof r.body.error.title, 'string');
  if (message) assert.match(r.body.error.message, message);
}

const count = async (path: string, key: string) => (await call('GET', path)).body[key].length;

test('malformed JSON, wrong types, missing wrappers, unknown options', async () => {
  const users0 = await count('/users', 'users');
  const cases: [string, string, unknown, RegExp?][] = [
    ['POST', '/projects', { project: { name: { nested: 1 } } }, /name/],
    ['POST', '/projects', { project: { name: 'p', enabled: 'maybe' } }, /enabled/],
    ['POST', '/projects', { name: 'no-wrapper' }, /project/],
    ['POST', '/domains', { domain: { name: '' } }, /name/],
    ['POST', '/users', { user: { name: 'u1', options: { not_an_option: true } } }, /option/],
    ['POST', '/users', { user: { name: 'u3', default_project_id: 'no-such-project' } }, /project/],
    ['POST', '/users', { user: { name: 'u4', password: { a: 1 } } }, /password/],
    ['POST', '/roles', { role: { name: 'r', domain_id: 'nope' } }, /domain/],
    ['POST', '/endpoints', { endpoint: { service_id: 'nope', interface: 'public', url: 'http://x/' } }, /service/],
    ['POST', '/registered_limits', { registered_limits: [] }, /registered_limits/],
    ['POST', '/limits', { limits: [{ service_id: 'x', resource_name: 'r', resource_limit: 'many' }] }, /resource_limit/],
  ];
  for (const [m, p, b, msg] of cases) {
    const r = await call(m, p, b);
    assert.equal(r.status, 400, `${m} ${p} ${JSON.stringify(b)} → ${r.status} ${r.text}`);
    isKeystoneError(r, 400, msg);
  }
  // A missing domain is a 404 for users, as Keystone answers (tempest checks it).
  const noDomain = await call('POST', '/users', { user: { name: 'u2', domain_id: 'no-such-domain' } });
  isKeystoneError(noDomain, 404, /domain/);
  // Project and domain names are at most 64 characters in Keystone (users' 255).
  isKeystoneError(await call('POST', '/projects', { project: { name: 'p'.repeat(65) } }), 400, /name/);
  isKeystoneError(await call('POST', '/domains', { domain: { name: 'd'.repeat(65) } }), 400, /name/);
  const longUser = await call('POST', '/users', { user: { name: 'u'.repeat(200) } });
  assert.equal(longUser.status, 201, longUser.text);
  await call('DELETE', `/users/${longUser.body.user.id}`);
  const bad = await call('POST', '/projects', undefined, { raw: '{"project": {"name": "x",}', headers: { 'Content-Type': 'application/json' } });
  assert.equal(bad.status, 400);
  isKeystoneError(bad, 400, /JSON/);
  const text = await call('POST', '/projects', undefined, { raw: 'name=x', headers: { 'Content-Type': 'text/plain' } });
  assert.ok([400, 415].includes(text.status), `text/plain → ${text.status}`);
  isKeystoneError(text, text.status);
  const nul = await call('POST', '/projects', { project: { name: 'a\u0000b' } });
  assert.equal(nul.status, 400);
  isKeystoneError(nul, 400, /NUL/);
  assert.equal((await call('GET', '/users/%00')).status, 400);
  assert.equal((await api(tc.url, 'POST', `${V3}/auth/tokens`, { body: { auth: { identity: { methods: ['password'],
    password: { user: { name: 'x\u0000', domain: { id: 'default' }, password: 'p' } } } } } })).status, 400);
  const q = await call('GET', '/projects?enabled=maybe');
  assert.equal(q.status, 400);
  assert.equal(await count('/users', 'users'), users0, 'no user was created by any failed request');
});

test('huge bodies get 413 (authenticated or not)', async () => {
  const pad = 'x'.repeat(1024 * 1024 + 10);
  const r = await call('POST', '/projects', { project: { name: 'big', description: pad } });
  assert.equal(r.status, 413);
  isKeystoneError(r, 413);
  assert.equal((await call('GET', '/projects?name=big')).body.projects.length, 0);
});

test('unknown ids and paths: 404 in Keystone style', async () => {
  for (const p of ['/users/nope', '/projects/nope', '/domains/nope', '/groups/nope', '/roles/nope', '/regions/nope',
    '/services/nope', '/endpoints/nope', '/limits/nope', '/registered_limits/nope', '/credentials/nope', '/no/such/path']) {
    const r = await call('GET', p);
    assert.equal(r.status, 404, p);
    isKeystoneError(r, 404);
  }
  const del = await call('DELETE', '/users/nope');
  assert.equal(del.status, 404);
});

test('conflicts and forbidden changes leave things as they were', async () => {
  const p = await call('POST', '/projects', { project: { name: 'keep', description: 'd' } });
  assert.equal(p.status, 201);
  const dup = await call('POST', '/projects', { project: { name: 'keep' } });
  assert.equal(dup.status, 409);
  isKeystoneError(dup, 409, /Duplicate/);
  const move = await call('PATCH', `/projects/${p.body.project.id}`, { project: { domain_id: 'elsewhere', description: 'changed' } });
  assert.equal(move.status, 400);
  assert.equal((await call('GET', `/projects/${p.body.project.id}`)).body.project.description, 'd');
  const delDefault = await call('DELETE', '/domains/default');
  assert.equal(delDefault.status, 403);

  // A batch of limits with one bad entry creates none of them.
  const svc = (await call('GET', '/services?type=identity')).body.services[0].id;
  const regs0 = await count('/registered_limits', 'registered_limits');
  const lims0 = await count('/limits', 'limits');
  const regs = await call('POST', '/registered_limits', { registered_limits: [
    { service_id: svc, resource_name: 'a', default_limit: 1 }, { service_id: svc, resource_name: 'a', default_limit: 2 }] });
  assert.equal(regs.status, 409);
  assert.equal(await count('/registered_limits', 'registered_limits'), regs0);
  const ok = await call('POST', '/registered_limits', { registered_limits: [{ service_id: svc, resource_name: 'a', default_limit: 1 }] });
  assert.equal(ok.status, 201);
  const lims = await call('POST', '/limits', { limits: [
    { project_id: p.body.project.id, service_id: svc, resource_name: 'a', resource_limit: 5 },
    { project_id: p.body.project.id, service_id: svc, resource_name: 'unregistered', resource_limit: 5 }] });
  assert.equal(lims.status, 400);
  assert.equal(await count('/limits', 'limits'), lims0);
});

test('bootstrap is idempotent and moves endpoints to a new base URL', async () => {
  const id = tc.cloud.identity;
  const catalog = tc.cloud.modules.flatMap((m) => m.catalog);
  const again = await id.bootstrap({ catalog, baseUrl: tc.url, regionId: 'RegionOne' });
  assert.equal(again.adminPassword, undefined, 'no new passwords on later starts');
  const before = (await call('GET', '/endpoints')).body.endpoints;
  await id.bootstrap({ catalog, baseUrl: 'http://127.0.0.9:9999', regionId: 'RegionOne' });
  const moved = (await call('GET', '/endpoints')).body.endpoints;
  assert.equal(moved.length, before.length, 'no duplicate endpoints');
  assert.ok(moved.every((e: any) => e.url.startsWith('http://127.0.0.9:9999/')));
  await id.bootstrap({ catalog, baseUrl: tc.url, regionId: 'RegionOne' });
  const back = (await call('GET', '/endpoints')).body.endpoints;
  assert.deepEqual(back.map((e: any) => e.url).sort(), before.map((e: any) => e.url).sort());
  const roles = (await call('GET', '/roles')).body.roles.map((r: any) => r.name).sort();
  assert.deepEqual(roles, ['admin', 'member', 'reader']);
});
