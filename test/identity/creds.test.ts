// Application credentials (and authenticating with them), EC2 credentials, unified limits
// (registered limits, limits, and the getLimit/setProjectLimit interface other services use).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import YAML from 'yaml';
import { api, startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { V3, issue } from './helpers.js';

let tc: TestCloud;
before(async () => { tc = await startTestCloud(); });
after(async () => { await tc?.stop(); });

test('application credential create, then authenticate with it (CLI and raw)', async () => {
  const ac = await tc.openstackJson(['application', 'credential', 'create', '--role', 'reader',
    '--expiration', '2099-01-01T00:00:00', '--description', 'ci', 'ci-cred'], { as: 'demo' });
  assert.equal(ac.name, 'ci-cred');
  assert.ok(ac.secret.length >= 32);
  const list = await tc.openstackJson<any[]>(['application', 'credential', 'list'], { as: 'demo' });
  assert.deepEqual(list.map((x) => x.Name), ['ci-cred']);

  // A clouds.yaml entry that authenticates with the application credential.
  const doc = YAML.parse((await import('node:fs')).readFileSync(tc.cloudsYaml, 'utf8'));
  doc.clouds['stratus-ac'] = {
    auth_type: 'v3applicationcredential',
    auth: { auth_url: `${tc.url}/identity/v3`, application_credential_id: ac.id, application_credential_secret: ac.secret },
    region_name: 'RegionOne', interface: 'public', identity_api_version: 3,
  };
  writeFileSync(tc.cloudsYaml, YAML.stringify(doc), { mode: 0o600 });
  const r = await tc.openstack(['token', 'issue', '-f', 'json'], { env: { OS_CLOUD: 'stratus-ac' } });
  assert.equal(r.code, 0, r.stderr);
  const tok = JSON.parse(r.stdout);
  const v = await api(tc.url, 'GET', `${V3}/auth/tokens`, { token: tok.id, headers: { 'X-Subject-Token': tok.id } });
  assert.equal(v.status, 200);
  assert.deepEqual(v.body.token.methods, ['application_credential']);
  assert.deepEqual(v.body.token.roles.map((x: any) => x.name), ['reader'], 'only the roles the credential carries');
  assert.equal(v.body.token.application_credential.id, ac.id);
  assert.equal(v.body.token.project.name, 'demo');

  // A restricted application credential cannot make another one, nor be rescoped.
  const mk = await api(tc.url, 'POST', `${V3}/users/${v.body.token.user.id}/application_credentials`, {
    token: tok.id, body: { application_credential: { name: 'child' } },
  });
  assert.equal(mk.status, 403);
  const wrong = await api(tc.url, 'POST', `${V3}/auth/tokens`, {
    body: { auth: { identity: { methods: ['application_credential'], application_credential: { id: ac.id, secret: 'nope' } } } },
  });
  assert.equal(wrong.status, 401);
  // by name + user
  const byName = await api(tc.url, 'POST', `${V3}/auth/tokens`, {
    body: { auth: { identity: { methods: ['application_credential'], application_credential: {
      name: 'ci-cred', user: { name: 'demo', domain: { id: 'default' } }, secret: ac.secret } } } },
  });
  assert.equal(byName.status, 201, byName.text);
  // a role the user lacks cannot be delegated
  const demoTok = await issue(tc, 'demo', tc.demoPassword);
  const tooMuch = await api(tc.url, 'POST', `${V3}/users/${demoTok.body.token.user.id}/application_credentials`, {
    token: demoTok.token, body: { application_credential: { name: 'greedy', roles: [{ name: 'admin' }] } },
  });
  assert.equal(tooMuch.status, 400);
  const listed = await api(tc.url, 'GET', `${V3}/users/${demoTok.body.token.user.id}/application_credentials`, { token: demoTok.token });
  assert.deepEqual(listed.body.application_credentials.map((x: any) => x.name), ['ci-cred'], 'nothing half-created');
  assert.equal(listed.body.application_credentials[0].secret, undefined, 'the secret is shown once');

  const del = await tc.openstack(['application', 'credential', 'delete', 'ci-cred'], { as: 'demo' });
  assert.equal(del.code, 0, del.stderr);
  assert.equal((await api(tc.url, 'GET', `${V3}/auth/projects`, { token: tok.id })).status, 401, 'deleting it revokes its tokens');
});

test('ec2 credentials create|list|delete, and the lookup the S3 API uses', async () => {
  const c = await tc.openstackJson(['ec2', 'credentials', 'create'], { as: 'demo' });
  assert.match(c.access, /^[0-9a-f]{32}$/);
  const list = await tc.openstackJson<any[]>(['ec2', 'credentials', 'list'], { as: 'demo' });
  assert.deepEqual(list.map((x) => x.Access), [c.access]);
  const found = await tc.cloud.identity.getEc2Credential(c.access);
  assert.equal(found?.secret, c.secret);
  const ctx = await tc.cloud.identity.authContextFor(found!.userId, found!.projectId);
  assert.equal(ctx.projectName, 'demo');
  assert.deepEqual([...ctx.roles].sort(), ['member', 'reader']);
  // demo cannot read admin's credentials
  const adminC = await tc.openstackJson(['ec2', 'credentials', 'create']);
  const demoTok = await issue(tc, 'demo', tc.demoPassword);
  const peek = await api(tc.url, 'GET', `${V3}/users/${adminC.user_id}/credentials/OS-EC2`, { token: demoTok.token });
  assert.equal(peek.status, 403);
  const gen = await api(tc.url, 'GET', `${V3}/credentials`, { token: demoTok.token });
  assert.deepEqual(gen.body.credentials.map((x: any) => JSON.parse(x.blob).access), [c.access]);
  const del = await tc.openstack(['ec2', 'credentials', 'delete', c.access], { as: 'demo' });
  assert.equal(del.code, 0, del.stderr);
  assert.equal(await tc.cloud.identity.getEc2Credential(c.access), undefined);
});

test('registered limit create, limit create|list, and the in-process limit interface', async () => {
  const reg = await tc.openstackJson(['registered', 'limit', 'create', '--service', 'keystone', '--default-limit', '10',
    '--region', 'RegionOne', 'widgets']);
  assert.equal(reg.default_limit, 10);
  const demo = await tc.openstackJson(['project', 'show', 'demo']);
  const lim = await tc.openstackJson(['limit', 'create', '--project', 'demo', '--service', 'keystone',
    '--resource-limit', '4', '--region', 'RegionOne', 'widgets']);
  assert.equal(lim.resource_limit, 4);
  const list = await tc.openstackJson<any[]>(['limit', 'list']);
  assert.deepEqual(list.map((x) => `${x['Resource Name']}=${x['Resource Limit']}@${x['Project ID']}`), [`widgets=4@${demo.id}`]);
  const demoList = await tc.openstackJson<any[]>(['limit', 'list'], { as: 'demo' });
  assert.equal(demoList.length, 1, 'demo sees its own project limit');
  const noReg = await tc.openstack(['limit', 'create', '--project', 'demo', '--service', 'keystone', '--resource-limit', '1', 'gadgets']);
  assert.notEqual(noReg.code, 0, 'a limit needs a registered limit');
  const asDemo = await tc.openstack(['registered', 'limit', 'create', '--service', 'keystone', '--default-limit', '1', 'x'], { as: 'demo' });
  assert.notEqual(asDemo.code, 0);

  const id = tc.cloud.identity;
  const admin = await tc.openstackJson(['project', 'show', 'admin']);
  assert.equal(await id.getLimit({ projectId: demo.id, serviceType: 'identity', resourceName: 'widgets', regionId: 'RegionOne' }), 4);
  assert.equal(await id.getLimit({ projectId: admin.id, serviceType: 'identity', resourceName: 'widgets', regionId: 'RegionOne' }), 10);
  assert.equal(await id.getLimit({ projectId: admin.id, serviceType: 'identity', resourceName: 'nothing' }), undefined);
  await id.ensureRegisteredLimit({ serviceType: 'identity', resourceName: 'sprockets', defaultLimit: 7 });
  await id.ensureRegisteredLimit({ serviceType: 'identity', resourceName: 'sprockets', defaultLimit: 99 });
  assert.equal(await id.getLimit({ projectId: demo.id, serviceType: 'identity', resourceName: 'sprockets' }), 7, 'first registration wins');
  await id.setProjectLimit({ projectId: demo.id, serviceType: 'identity', resourceName: 'sprockets', value: 3 });
  await id.setProjectLimit({ projectId: demo.id, serviceType: 'identity', resourceName: 'sprockets', value: 2 });
  assert.equal(await id.getLimit({ projectId: demo.id, serviceType: 'identity', resourceName: 'sprockets' }), 2);
  assert.equal(await id.getLimit({ projectId: admin.id, serviceType: 'identity', resourceName: 'sprockets' }), 7);
  await assert.rejects(id.setProjectLimit({ projectId: demo.id, serviceType: 'identity', resourceName: 'sprockets', value: -5 }), /Invalid limit/);
  const p = await id.getProject(demo.id);
  assert.deepEqual(p, { id: demo.id, name: 'demo', domainId: 'default', enabled: true, parentId: null });
});
