// Keystone behaviours Tempest checks (docs/identity.md, "Tempest"): legacy endpoint regions,
// password change with the original password, implied and domain-specific roles, and EC2
// credential blobs sealed at rest (with the migration that seals rows stored in clear).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { api, startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { CredentialBlobs } from '../../src/identity/credentials.js';
import { V3, issue } from './helpers.js';

let tc: TestCloud;
let admin: string;
before(async () => {
  tc = await startTestCloud();
  admin = (await issue(tc, 'admin', tc.adminPassword)).token;
});
after(async () => { await tc?.stop(); });
const call = (method: string, path: string, body?: unknown, token = admin) => api(tc.url, method, `${V3}${path}`, { token, body });

test('an endpoint with the legacy `region` creates that region; `region_id` must exist', async () => {
  const svc = await tc.openstackJson(['service', 'create', '--name', 'legacy-svc', 'legacy-type']);
  const ep = await call('POST', '/endpoints', { endpoint: { service_id: svc.id, interface: 'public', url: 'http://127.0.0.1:1/', region: 'LegacyRegion' } });
  assert.equal(ep.status, 201, ep.text);
  assert.equal(ep.body.endpoint.region_id, 'LegacyRegion');
  const region = await tc.openstackJson(['region', 'show', 'LegacyRegion']);
  assert.equal(region.region, 'LegacyRegion');
  const strict = await call('POST', '/endpoints', { endpoint: { service_id: svc.id, interface: 'public', url: 'http://127.0.0.1:1/', region_id: 'NoSuchRegion' } });
  assert.equal(strict.status, 400);
  assert.equal((await call('GET', '/regions/NoSuchRegion')).status, 404);
  // A region that now has an endpoint cannot go; once the endpoint is gone it can.
  await tc.openstack(['endpoint', 'delete', ep.body.endpoint.id]);
  await tc.openstack(['region', 'delete', 'LegacyRegion']);
});

test('password change: the original password is the proof, whoever asks (as Keystone)', async () => {
  const u = await tc.openstackJson(['user', 'create', '--password', 'first-pw-1', 'pw-user']);
  const bad = await call('POST', `/users/${u.id}/password`, { user: { original_password: 'wrong', password: 'x-second-2' } });
  assert.equal(bad.status, 401);
  const ok = await call('POST', `/users/${u.id}/password`, { user: { original_password: 'first-pw-1', password: 'second-pw-2' } });
  assert.equal(ok.status, 204, ok.text);
  const login = await api(tc.url, 'POST', `${V3}/auth/tokens`, { body: { auth: { identity: { methods: ['password'],
    password: { user: { id: u.id, password: 'second-pw-2' } } } } } });
  assert.equal(login.status, 201);
});

test('implied roles: HEAD checks a rule (204); a global role cannot imply a domain role (403); domain roles are never effective', async () => {
  const dom = await tc.openstackJson(['domain', 'create', 'roles-dom']);
  const dRole = await tc.openstackJson(['role', 'create', '--domain', dom.id, 'dom-role']);
  const gRole = await tc.openstackJson(['role', 'create', 'glob-role']);
  const imp = await call('PUT', `/roles/${dRole.id}/implies/${gRole.id}`);
  assert.equal(imp.status, 201, imp.text);
  const head = await api(tc.url, 'HEAD', `${V3}/roles/${dRole.id}/implies/${gRole.id}`, { token: admin });
  assert.equal(head.status, 204);
  assert.equal((await api(tc.url, 'HEAD', `${V3}/roles/${gRole.id}/implies/${dRole.id}`, { token: admin })).status, 404);
  const back = await call('PUT', `/roles/${gRole.id}/implies/${dRole.id}`);
  assert.equal(back.status, 403, back.text);
  // The user holding the domain role on a project gets what it implies, never the domain role itself.
  const u = await tc.openstackJson(['user', 'create', '--password', 'dr-pw-123', 'dr-user']);
  await tc.openstack(['role', 'add', '--user', u.id, '--project', 'demo', dRole.id]);
  const eff = await tc.openstackJson<any[]>(['role', 'assignment', 'list', '--effective', '--user', u.id]);
  assert.deepEqual(eff.map((a) => a.Role), [gRole.id]);
  const tok = await api(tc.url, 'POST', `${V3}/auth/tokens`, { body: { auth: {
    identity: { methods: ['password'], password: { user: { id: u.id, password: 'dr-pw-123' } } },
    scope: { project: { name: 'demo', domain: { id: 'default' } } } } } });
  assert.equal(tok.status, 201, tok.text);
  assert.deepEqual(tok.body.token.roles.map((r: any) => r.id), [gRole.id]);
});

test('EC2 credential blobs are sealed at rest; keys are 0600 in DATA_DIR/credential-keys; the migration seals clear rows', async () => {
  const c = await tc.openstackJson(['ec2', 'credentials', 'create']);
  const db = tc.cloud.db.kysely;
  const rows = await db.selectFrom('identity_credentials').select(['id', 'blob']).execute() as { id: string; blob: string }[];
  assert.ok(rows.length >= 1);
  for (const r of rows) {
    assert.ok(!r.blob.includes(c.secret) && !r.blob.includes(c.access), 'no secret or access key in clear');
    assert.match(r.blob, /^sealed1:/);
  }
  const dir = join(tc.dataDir, 'credential-keys');
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  for (const f of readdirSync(dir)) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
  // What the S3 API uses still gets the secret.
  assert.equal((await tc.cloud.identity.getEc2Credential(c.access))?.secret, c.secret);

  // A row stored in clear (before sealing existed) is sealed by the migration, then reads back.
  const user = (await call('GET', '/users?name=admin')).body.users[0].id;
  await db.insertInto('identity_credentials').values({ id: 'legacy-cred-1', user_id: user, project_id: null, type: 'cert',
    blob: '{"legacy": "clear"}', extra: '{}', created_at: new Date().toISOString() }).execute();
  const blobs = new CredentialBlobs(tc.dataDir);
  await blobs.migration().up(db);
  const sealed = await db.selectFrom('identity_credentials').select('blob').where('id', '=', 'legacy-cred-1').executeTakeFirstOrThrow();
  assert.match(sealed.blob, /^sealed1:/);
  assert.equal((await call('GET', '/credentials/legacy-cred-1')).body.credential.blob, '{"legacy": "clear"}');
  await blobs.migration().up(db); // idempotent: sealed rows stay as they are
  assert.equal((await db.selectFrom('identity_credentials').select('blob').where('id', '=', 'legacy-cred-1').executeTakeFirstOrThrow()).blob, sealed.blob);
});

test('an ec2 credential blob may get a new access key (the id stays), as in Keystone', async () => {
  const user = (await call('GET', '/users?name=admin')).body.users[0].id;
  const made = await call('POST', '/credentials', { credential: { user_id: user, type: 'ec2', blob: '{"access": "old-ak", "secret": "s1"}' } });
  assert.equal(made.status, 201, made.text);
  const upd = await call('PATCH', `/credentials/${made.body.credential.id}`, { credential: { blob: '{"access": "new-ak", "secret": "s2"}' } });
  assert.equal(upd.status, 200, upd.text);
  assert.equal(upd.body.credential.id, made.body.credential.id);
  assert.equal(JSON.parse((await call('GET', `/credentials/${made.body.credential.id}`)).body.credential.blob).access, 'new-ak');
  const noAccess = await call('PATCH', `/credentials/${made.body.credential.id}`, { credential: { blob: '{"secret": "s3"}' } });
  assert.equal(noAccess.status, 400);
});
