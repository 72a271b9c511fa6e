// Domains, projects, users and groups through the real openstack CLI; password change,
// disabling and deleting users (their tokens stop working), lockout.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { api, startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { V3, issue, passwordAuth } from './helpers.js';

let tc: TestCloud;
before(async () => { tc = await startTestCloud(); });
after(async () => { await tc?.stop(); });

const ok = async (args: string[], as?: 'admin' | 'demo') => {
  const r = await tc.openstack(args, { as });
  assert.equal(r.code, 0, `openstack ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};

test('domain create|list|show|set|delete', async () => {
  const d = await tc.openstackJson(['domain', 'create', '--description', 'first', 'acme']);
  assert.equal(d.name, 'acme');
  assert.equal(d.enabled, true);
  const list = await tc.openstackJson<any[]>(['domain', 'list']);
  assert.deepEqual(list.map((x) => x.Name).sort(), ['Default', 'acme']);
  await ok(['domain', 'set', '--description', 'second', '--disable', 'acme']);
  const shown = await tc.openstackJson(['domain', 'show', 'acme']);
  assert.equal(shown.description, 'second');
  assert.equal(shown.enabled, false);
  const dup = await tc.openstack(['domain', 'create', 'acme']);
  assert.notEqual(dup.code, 0);
  assert.match(dup.stderr, /409|Conflict|Duplicate/);
  await ok(['domain', 'delete', 'acme']);
  const gone = await tc.openstack(['domain', 'show', d.id]);
  assert.notEqual(gone.code, 0);
});

test('project create|list|show|set|delete, with parent and tags', async () => {
  const p = await tc.openstackJson(['project', 'create', '--domain', 'default', '--description', 'top', '--tag', 'blue', 'alpha']);
  assert.equal(p.parent_id, 'default');
  const c = await tc.openstackJson(['project', 'create', '--parent', 'alpha', 'alpha-child']);
  assert.equal(c.parent_id, p.id);
  assert.equal(c.domain_id, 'default');
  const list = await tc.openstackJson<any[]>(['project', 'list']);
  assert.deepEqual(list.map((x) => x.Name).sort(), ['admin', 'alpha', 'alpha-child', 'demo']);
  const tagged = await tc.openstackJson<any[]>(['project', 'list', '--tags', 'blue']);
  assert.deepEqual(tagged.map((x) => x.Name), ['alpha']);
  await ok(['project', 'set', '--name', 'alpha2', '--description', 'renamed', '--disable', 'alpha']);
  const shown = await tc.openstackJson(['project', 'show', 'alpha2']);
  assert.equal(shown.description, 'renamed');
  assert.equal(shown.enabled, false);
  assert.deepEqual(shown.tags, ['blue']);
  const withChild = await tc.openstack(['project', 'delete', 'alpha2']);
  assert.notEqual(withChild.code, 0, 'a project with children cannot be deleted');
  await ok(['project', 'delete', 'alpha-child']);
  await ok(['project', 'delete', 'alpha2']);
  const after = await tc.openstackJson<any[]>(['project', 'list']);
  assert.deepEqual(after.map((x) => x.Name).sort(), ['admin', 'demo']);
});

test('user create|list|show|set|delete; disabled, re-passworded and deleted users lose their tokens', async () => {
  const u = await tc.openstackJson(['user', 'create', '--password', 'pw-one-1', '--email', 'u@example.org', '--project', 'demo', 'carol']);
  assert.equal(u.email, 'u@example.org');
  await ok(['role', 'add', '--user', 'carol', '--project', 'demo', 'member']);
  const t1 = await issue(tc, 'carol', 'pw-one-1', { project: { name: 'demo', domain: { id: 'default' } } });
  const users = await tc.openstackJson<any[]>(['user', 'list']);
  assert.deepEqual(users.map((x) => x.Name).sort(), ['admin', 'carol', 'demo']);
  const shown = await tc.openstackJson(['user', 'show', 'carol']);
  assert.equal(shown.default_project_id, (await tc.openstackJson(['project', 'show', 'demo'])).id);

  await ok(['user', 'set', '--password', 'pw-two-2', 'carol']);
  assert.equal((await api(tc.url, 'GET', `${V3}/auth/projects`, { token: t1.token })).status, 401, 'password change revokes');
  assert.equal((await api(tc.url, 'POST', `${V3}/auth/tokens`, { body: passwordAuth('carol', 'pw-one-1') })).status, 401);

  // change own password (as carol, with the original)
  const t2 = await issue(tc, 'carol', 'pw-two-2', { project: { name: 'demo', domain: { id: 'default' } } });
  const own = await api(tc.url, 'POST', `${V3}/users/${u.id}/password`, {
    token: t2.token, body: { user: { original_password: 'wrong', password: 'pw-three-3' } },
  });
  assert.equal(own.status, 401);
  const adminId = (await issue(tc, 'admin', tc.adminPassword)).body.token.user.id;
  // As in Keystone, the original password is the proof, whoever asks; a wrong one is a 401 that
  // counts towards the target's lockout like a failed login (keystone-compat.test.ts changes one).
  const others = await api(tc.url, 'POST', `${V3}/users/${adminId}/password`, {
    token: t2.token, body: { user: { original_password: 'a-guess', password: 'taken-over' } },
  });
  assert.equal(others.status, 401);
  const own2 = await api(tc.url, 'POST', `${V3}/users/${u.id}/password`, {
    token: t2.token, body: { user: { original_password: 'pw-two-2', password: 'pw-three-3' } },
  });
  assert.equal(own2.status, 204, own2.text);
  const t3 = await issue(tc, 'carol', 'pw-three-3', { project: { name: 'demo', domain: { id: 'default' } } });

  await ok(['user', 'set', '--disable', 'carol']);
  assert.equal((await api(tc.url, 'GET', `${V3}/auth/projects`, { token: t3.token })).status, 401, 'disabling revokes');
  assert.equal((await api(tc.url, 'POST', `${V3}/auth/tokens`, { body: passwordAuth('carol', 'pw-three-3') })).status, 401);
  await ok(['user', 'set', '--enable', 'carol']);
  const t4 = await issue(tc, 'carol', 'pw-three-3', { project: { name: 'demo', domain: { id: 'default' } } });
  await ok(['user', 'delete', 'carol']);
  assert.equal((await api(tc.url, 'GET', `${V3}/auth/projects`, { token: t4.token })).status, 401, 'deleting revokes');
  assert.notEqual((await tc.openstack(['user', 'show', u.id])).code, 0);
});

test('group create|list|show|set|delete and membership; group roles reach members', async () => {
  await tc.openstackJson(['user', 'create', '--password', 'pw-dave-1', 'dave']);
  const g = await tc.openstackJson(['group', 'create', '--description', 'ops team', 'ops']);
  assert.equal(g.description, 'ops team');
  await ok(['group', 'add', 'user', 'ops', 'dave']);
  assert.match(await ok(['group', 'contains', 'user', 'ops', 'dave']), /dave in group ops/);
  await ok(['group', 'set', '--name', 'operators', '--description', 'renamed', 'ops']);
  const shown = await tc.openstackJson(['group', 'show', 'operators']);
  assert.equal(shown.description, 'renamed');
  const list = await tc.openstackJson<any[]>(['group', 'list']);
  assert.deepEqual(list.map((x) => x.Name), ['operators']);
  const members = await tc.openstackJson<any[]>(['user', 'list', '--group', 'operators']);
  assert.deepEqual(members.map((x) => x.Name), ['dave']);

  // A role given to the group lets its member scope to the project.
  await ok(['role', 'add', '--group', 'operators', '--project', 'demo', 'reader']);
  const t = await issue(tc, 'dave', 'pw-dave-1', { project: { name: 'demo', domain: { id: 'default' } } });
  assert.deepEqual(t.body.token.roles.map((r: any) => r.name), ['reader']);
  await ok(['group', 'remove', 'user', 'operators', 'dave']);
  assert.equal((await api(tc.url, 'GET', `${V3}/auth/projects`, { token: t.token })).status, 401, 'leaving the group revokes');
  assert.equal((await api(tc.url, 'POST', `${V3}/auth/tokens`, {
    body: passwordAuth('dave', 'pw-dave-1', { project: { name: 'demo', domain: { id: 'default' } } }),
  })).status, 401);
  await ok(['group', 'delete', 'operators']);
  assert.deepEqual(await tc.openstackJson<any[]>(['group', 'list']), []);
});

test('lockout after repeated failures, without revealing whether the user exists', async () => {
  const max = tc.cloud.cfg.identity.lockoutFailureAttempts;
  const u = await tc.openstackJson(['user', 'create', '--password', 'right-pw-1', 'erin']);
  const noUser = await api(tc.url, 'POST', `${V3}/auth/tokens`, { body: passwordAuth('nobody', 'x') });
  for (let i = 0; i < max; i++) {
    const r = await api(tc.url, 'POST', `${V3}/auth/tokens`, { body: passwordAuth('erin', `wrong-${i}`) });
    assert.equal(r.status, 401);
    assert.deepEqual(r.body, noUser.body);
  }
  const locked = await api(tc.url, 'POST', `${V3}/auth/tokens`, { body: passwordAuth('erin', 'right-pw-1') });
  assert.equal(locked.status, 401, 'locked out even with the right password');
  assert.deepEqual(locked.body, noUser.body, 'and the answer is the same as for an unknown user');
  // an administrator enabling the user lifts the lockout
  await ok(['user', 'set', '--enable', u.id]);
  const r = await api(tc.url, 'POST', `${V3}/auth/tokens`, { body: passwordAuth('erin', 'right-pw-1') });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.body.token.roles, undefined, 'no project: an unscoped token');
});

test('demo cannot list users, see another project, or manage identity', async () => {
  const users = await tc.openstack(['user', 'list'], { as: 'demo' });
  assert.notEqual(users.code, 0);
  assert.match(users.stderr, /403|not allow/i);
  const adminProject = await tc.openstackJson(['project', 'show', 'admin']);
  const show = await tc.openstack(['project', 'show', adminProject.id], { as: 'demo' });
  assert.notEqual(show.code, 0);
  const mine = await tc.openstackJson<any[]>(['project', 'list'], { as: 'demo' });
  assert.deepEqual(mine.map((p) => p.Name), ['demo']);
  const create = await tc.openstack(['project', 'create', 'sneaky'], { as: 'demo' });
  assert.notEqual(create.code, 0);
  const { token } = await issue(tc, 'demo', tc.demoPassword);
  const raw = await api(tc.url, 'GET', `${V3}/projects/${adminProject.id}`, { token });
  assert.equal(raw.status, 403);
  assert.equal(raw.body.error.title, 'Forbidden');
  const dom = await api(tc.url, 'POST', `${V3}/domains`, { token, body: { domain: { name: 'x' } } });
  assert.equal(dom.status, 403);
});
