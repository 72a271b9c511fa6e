// Tokens: issue/validate/check/revoke through the CLI and raw HTTP, scopes, expiry, tampering,
// key rotation while the server runs, and malformed requests.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { api, startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { KeyRing, rotateKeys } from '../../src/identity/keys.js';
import { sealToken } from '../../src/identity/tokens.js';
import { V3, issue, passwordAuth, projectScope } from './helpers.js';

let tc: TestCloud;
before(async () => { tc = await startTestCloud(); });
after(async () => { await tc?.stop(); });

test('version discovery at /identity and /identity/v3', async () => {
  const root = await api(tc.url, 'GET', '/identity');
  assert.equal(root.status, 300);
  assert.equal(root.body.versions.values[0].id, 'v3.14');
  assert.equal(root.body.versions.values[0].links[0].href, `${tc.url}/identity/v3/`);
  const v3 = await api(tc.url, 'GET', V3);
  assert.equal(v3.status, 200);
  assert.equal(v3.body.version.status, 'stable');
});

test('openstack token issue and catalog list, as admin and demo', async () => {
  const t = await tc.openstackJson(['token', 'issue']);
  assert.match(t.id, /^[A-Za-z0-9_-]{100,400}$/);
  assert.match(t.project_id, /^[0-9a-f]{32}$/);
  const demo = await tc.openstackJson(['token', 'issue'], { as: 'demo' });
  assert.notEqual(demo.project_id, t.project_id);
  const cat = await tc.openstackJson<any[]>(['catalog', 'list']);
  const idEntry = cat.find((c) => c.Type === 'identity');
  assert.ok(idEntry, 'identity in catalog');
  for (const iface of ['public', 'internal', 'admin']) {
    assert.ok(idEntry.Endpoints.some((e: any) => e.interface === iface && e.url === `${tc.url}/identity/v3` && e.region === 'RegionOne'), `${iface} endpoint`);
  }
});

test('token body: project scope carries roles (implied included) and catalog', async () => {
  const { token, body } = await issue(tc, 'admin', tc.adminPassword);
  const names = body.token.roles.map((r: any) => r.name).sort();
  assert.deepEqual(names, ['admin', 'member', 'reader']);
  assert.equal(body.token.project.name, 'admin');
  assert.equal(body.token.project.domain.id, 'default');
  assert.equal(body.token.user.domain.name, 'Default');
  assert.ok(body.token.catalog.length >= 1);
  assert.match(body.token.expires_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);

  const v = await api(tc.url, 'GET', `${V3}/auth/tokens`, { token, headers: { 'X-Subject-Token': token } });
  assert.equal(v.status, 200);
  assert.equal(v.headers.get('x-subject-token'), token);
  assert.deepEqual(v.body.token.audit_ids, body.token.audit_ids);
  const head = await api(tc.url, 'HEAD', `${V3}/auth/tokens`, { token, headers: { 'X-Subject-Token': token } });
  assert.equal(head.status, 200);
  const noCat = await api(tc.url, 'GET', `${V3}/auth/tokens?nocatalog`, { token, headers: { 'X-Subject-Token': token } });
  assert.equal(noCat.body.token.catalog, undefined);
});

test('system, domain and unscoped tokens', async () => {
  const sys = await issue(tc, 'admin', tc.adminPassword, { system: { all: true } });
  assert.deepEqual(sys.body.token.system, { all: true });
  assert.ok(sys.body.token.roles.some((r: any) => r.name === 'admin'));
  // demo has no role on the default domain nor on the system
  const dom = await api(tc.url, 'POST', `${V3}/auth/tokens`, { body: passwordAuth('demo', tc.demoPassword, { domain: { id: 'default' } }) });
  assert.equal(dom.status, 401);
  const sysDemo = await api(tc.url, 'POST', `${V3}/auth/tokens`, { body: passwordAuth('demo', tc.demoPassword, { system: { all: true } }) });
  assert.equal(sysDemo.status, 401);
  // demo cannot scope to the admin project
  const other = await api(tc.url, 'POST', `${V3}/auth/tokens`, { body: passwordAuth('demo', tc.demoPassword, projectScope('admin')) });
  assert.equal(other.status, 401);
  // no scope: the default project (Keystone's behaviour)
  const def = await issue(tc, 'demo', tc.demoPassword, undefined);
  assert.equal(def.body.token.project.name, 'demo');
  // token method: rescoping an admin project token to system scope keeps the audit chain
  const proj = await issue(tc, 'admin', tc.adminPassword);
  const r = await api(tc.url, 'POST', `${V3}/auth/tokens`, {
    body: { auth: { identity: { methods: ['token'], token: { id: proj.token } }, scope: { system: { all: true } } } },
  });
  assert.equal(r.status, 201, r.text);
  assert.deepEqual(r.body.token.methods, ['password', 'token'], 'a rescoped token keeps the original method, as in Keystone');
  assert.equal(r.body.token.audit_ids[1], proj.body.token.audit_ids[0]);
  assert.equal(r.body.token.expires_at, proj.body.token.expires_at);
});

test('demo validates its own token but not the admin one', async () => {
  const admin = await issue(tc, 'admin', tc.adminPassword);
  const demo = await issue(tc, 'demo', tc.demoPassword);
  const own = await api(tc.url, 'GET', `${V3}/auth/tokens`, { token: demo.token, headers: { 'X-Subject-Token': demo.token } });
  assert.equal(own.status, 200);
  const other = await api(tc.url, 'GET', `${V3}/auth/tokens`, { token: demo.token, headers: { 'X-Subject-Token': admin.token } });
  assert.equal(other.status, 403);
  assert.equal(other.body.error.code, 403);
  const ok = await tc.cloud.identity.validateToken(demo.token);
  assert.equal(ok.projectName, 'demo');
  assert.deepEqual([...ok.roles].sort(), ['member', 'reader']);
});

test('openstack token revoke: the token stops working at once', async () => {
  const { token } = await issue(tc, 'demo', tc.demoPassword);
  const r = await tc.openstack(['token', 'revoke', token]);
  assert.equal(r.code, 0, r.stderr);
  const v = await api(tc.url, 'GET', `${V3}/auth/tokens`, { token: (await issue(tc, 'admin', tc.adminPassword)).token, headers: { 'X-Subject-Token': token } });
  assert.equal(v.status, 404);
  const use = await api(tc.url, 'GET', `${V3}/auth/projects`, { token });
  assert.equal(use.status, 401);
  await assert.rejects(tc.cloud.identity.validateToken(token), /authentication/);
});

test('expired and tampered tokens get 401', async () => {
  const ring = new KeyRing(tc.dataDir);
  const { body } = await issue(tc, 'demo', tc.demoPassword);
  const now = Date.now();
  const expired = sealToken(ring, {
    userId: body.token.user.id, methods: ['password'], scope: { kind: 'project', id: body.token.project.id },
    issuedAt: now - 7200_000, expiresAt: now - 3600_000, auditIds: ['x'],
  });
  const r1 = await api(tc.url, 'GET', `${V3}/auth/projects`, { token: expired });
  assert.equal(r1.status, 401);
  assert.equal(r1.body.error.title, 'Unauthorized');
  const { token } = await issue(tc, 'demo', tc.demoPassword);
  const i = 40;
  const tampered = token.slice(0, i) + (token[i] === 'A' ? 'B' : 'A') + token.slice(i + 1);
  assert.equal((await api(tc.url, 'GET', `${V3}/auth/projects`, { token: tampered })).status, 401);
  assert.equal((await api(tc.url, 'GET', `${V3}/auth/projects`, { token: 'garbage' })).status, 401);
  assert.equal((await api(tc.url, 'GET', `${V3}/auth/projects`)).status, 401);
});

test('bad auth requests: malformed JSON, wrong types, unknown method, bad password, huge body', async () => {
  const raw = await api(tc.url, 'POST', `${V3}/auth/tokens`, { rawBody: '{"auth": {', headers: { 'Content-Type': 'application/json' } });
  assert.equal(raw.status, 400);
  assert.match(raw.body.error.message, /JSON/);
  const types = await api(tc.url, 'POST', `${V3}/auth/tokens`, { body: { auth: { identity: { methods: { password: 1 } } } } });
  assert.equal(types.status, 400);
  assert.match(types.body.error.message, /methods/);
  const noAuth = await api(tc.url, 'POST', `${V3}/auth/tokens`, { body: { foo: 1 } });
  assert.equal(noAuth.status, 400);
  const unknown = await api(tc.url, 'POST', `${V3}/auth/tokens`, { body: { auth: { identity: { methods: ['totp'], totp: {} } } } });
  assert.equal(unknown.status, 401);
  assert.match(unknown.body.error.message, /unsupported method/);
  const badPw = await api(tc.url, 'POST', `${V3}/auth/tokens`, { body: passwordAuth('demo', 'wrong') });
  const noUser = await api(tc.url, 'POST', `${V3}/auth/tokens`, { body: passwordAuth('nobody-here', 'wrong') });
  assert.equal(badPw.status, 401);
  assert.equal(noUser.status, 401);
  assert.deepEqual(badPw.body, noUser.body, 'same answer whether or not the user exists');
  const pwType = await api(tc.url, 'POST', `${V3}/auth/tokens`, {
    body: { auth: { identity: { methods: ['password'], password: { user: { name: 'demo', domain: { id: 'default' }, password: 12 } } } } },
  });
  assert.equal(pwType.status, 400);
  const huge = await api(tc.url, 'POST', `${V3}/auth/tokens`, { rawBody: JSON.stringify({ auth: { pad: 'x'.repeat(2 * 1024 * 1024) } }), headers: { 'Content-Type': 'application/json' } });
  assert.equal(huge.status, 413);
  const badSubject = await api(tc.url, 'GET', `${V3}/auth/tokens`, { token: (await issue(tc, 'admin', tc.adminPassword)).token });
  assert.equal(badSubject.status, 400);
});

test('key rotation while running: old tokens survive one rotation, not their key leaving', async () => {
  const before = await issue(tc, 'demo', tc.demoPassword);
  const r1 = await rotateKeys(tc.dataDir);
  await new Promise((r) => setTimeout(r, 600)); // the server re-checks the key directory every 500 ms
  await tc.cloud.identity.validateToken(before.token);
  const afterOne = await issue(tc, 'demo', tc.demoPassword);
  const keyIdOf = (t: string) => Buffer.from(t, 'base64url').readUInt32BE(1);
  assert.equal(keyIdOf(afterOne.token), r1.primary, 'new tokens use the new primary key');
  await rotateKeys(tc.dataDir);
  await new Promise((r) => setTimeout(r, 600));
  await assert.rejects(tc.cloud.identity.validateToken(before.token), /authentication/, 'its key was rotated out');
  await tc.cloud.identity.validateToken(afterOne.token);
  const { statSync, readdirSync } = await import('node:fs');
  for (const f of readdirSync(`${tc.dataDir}/token-keys`)) {
    assert.equal(statSync(`${tc.dataDir}/token-keys/${f}`).mode & 0o777, 0o600);
  }
});
