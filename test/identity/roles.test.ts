// Roles, implied roles, grants and role assignments through the openstack CLI; removing a role
// revokes; demo cannot grant itself a role; catalog administration (regions, services, endpoints).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { api, startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { V3, issue, projectScope } from './helpers.js';

let tc: TestCloud;
let adminToken: string;
before(async () => {
  tc = await startTestCloud();
  adminToken = (await issue(tc, 'admin', tc.adminPassword)).token;
});
after(async () => { await tc?.stop(); });

const ok = async (args: string[], as?: 'admin' | 'demo') => {
  const r = await tc.openstack(args, { as });
  assert.equal(r.code, 0, `openstack ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};

test('role create|list|show|set|delete and implied roles', async () => {
  const r = await tc.openstackJson(['role', 'create', '--description', 'watches', 'observer']);
  assert.equal(r.name, 'observer');
  const list = await tc.openstackJson<any[]>(['role', 'list']);
  assert.deepEqual(list.map((x) => x.Name).sort(), ['admin', 'member', 'observer', 'reader']);
  await ok(['role', 'set', '--name', 'watcher', '--description', 'renamed', 'observer']);
  const shown = await tc.openstackJson(['role', 'show', 'watcher']);
  assert.equal(shown.description, 'renamed');
  await ok(['implied', 'role', 'create', '--implied-role', 'reader', 'watcher']);
  const inf = await tc.openstackJson<any[]>(['implied', 'role', 'list']);
  assert.ok(inf.some((x) => x['Prior Role Name'] === 'watcher' && x['Implied Role Name'] === 'reader'));
  assert.ok(inf.some((x) => x['Prior Role Name'] === 'admin' && x['Implied Role Name'] === 'member'));
  const readerId = inf.find((x) => x['Implied Role Name'] === 'reader')['Implied Role ID'];
  const loop = await api(tc.url, 'PUT', `${V3}/roles/${readerId}/implies/${r.id}`, { token: adminToken });
  assert.equal(loop.status, 400, 'reader ⇒ watcher would close a loop');
  assert.match(loop.body.error.message, /loop/);
  await ok(['role', 'delete', 'watcher']);
  assert.notEqual((await tc.openstack(['role', 'show', r.id])).code, 0);
  const inf2 = await tc.openstackJson<any[]>(['implied', 'role', 'list']);
  assert.equal(inf2.length, 2, 'the deleted role takes its inference rule along');
});

test('role add/remove, role assignment list --names --effective, and revocation on removal', async () => {
  await tc.openstackJson(['user', 'create', '--password', 'pw-frank-1', 'frank']);
  await tc.openstackJson(['group', 'create', 'auditors']);
  await ok(['group', 'add', 'user', 'auditors', 'frank']);
  await ok(['role', 'add', '--user', 'frank', '--project', 'demo', 'member']);
  await ok(['role', 'add', '--group', 'auditors', '--project', 'admin', 'reader']);

  const direct = await tc.openstackJson<any[]>(['role', 'assignment', 'list', '--names', '--user', 'frank']);
  assert.deepEqual(direct.map((a) => `${a.Role}|${a.User}|${a.Project}`), ['member|frank@Default|demo@Default']);

  const eff = await tc.openstackJson<any[]>(['role', 'assignment', 'list', '--names', '--effective', '--user', 'frank']);
  const got = eff.map((a) => `${a.Role}|${a.Project}`).sort();
  assert.deepEqual(got, ['member|demo@Default', 'reader|admin@Default', 'reader|demo@Default'],
    'effective: implied reader, and the group role on admin');
  const byProject = await tc.openstackJson<any[]>(['role', 'assignment', 'list', '--names', '--project', 'demo']);
  assert.deepEqual(byProject.map((a) => `${a.Role}|${a.User}`).sort(), ['member|demo@Default', 'member|frank@Default']);
  const sys = await tc.openstackJson<any[]>(['role', 'assignment', 'list', '--names', '--system', 'all']);
  assert.deepEqual(sys.map((a) => `${a.Role}|${a.User}|${a.System}`), ['admin|admin@Default|all']);

  const t = await issue(tc, 'frank', 'pw-frank-1', projectScope('demo'));
  assert.deepEqual(t.body.token.roles.map((r: any) => r.name).sort(), ['member', 'reader']);
  await ok(['role', 'remove', '--user', 'frank', '--project', 'demo', 'member']);
  assert.equal((await api(tc.url, 'GET', `${V3}/auth/projects`, { token: t.token })).status, 401, 'role removal revokes');
  const denied = await api(tc.url, 'POST', `${V3}/auth/tokens`, {
    body: { auth: { identity: { methods: ['password'], password: { user: { name: 'frank', domain: { id: 'default' }, password: 'pw-frank-1' } } }, scope: projectScope('demo') } },
  });
  assert.equal(denied.status, 401);
  // still a reader on admin through the group
  const t2 = await issue(tc, 'frank', 'pw-frank-1', projectScope('admin'));
  assert.deepEqual(t2.body.token.roles.map((r: any) => r.name), ['reader']);
  const projects = await api(tc.url, 'GET', `${V3}/auth/projects`, { token: t2.token });
  assert.deepEqual(projects.body.projects.map((p: any) => p.name), ['admin']);
});

test('demo cannot grant itself a role', async () => {
  const r = await tc.openstack(['role', 'add', '--user', 'demo', '--project', 'demo', 'admin'], { as: 'demo' });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /403|not allow/i);
  // Even with the real ids in hand, the grant itself is refused.
  const demoTok = await issue(tc, 'demo', tc.demoPassword);
  const adminRole = (await tc.openstackJson(['role', 'show', 'admin'])).id;
  const put = await api(tc.url, 'PUT', `${V3}/projects/${demoTok.body.token.project.id}/users/${demoTok.body.token.user.id}/roles/${adminRole}`, { token: demoTok.token });
  assert.equal(put.status, 403);
  const after = await tc.openstackJson<any[]>(['role', 'assignment', 'list', '--names', '--user', 'demo']);
  assert.deepEqual(after.map((a) => a.Role), ['member']);
  // demo can read its own assignments but nobody else's
  const mine = await api(tc.url, 'GET', `${V3}/role_assignments?user.id=${demoTok.body.token.user.id}`, { token: demoTok.token });
  assert.equal(mine.status, 200);
  assert.equal(mine.body.role_assignments.length, 1);
  const all = await api(tc.url, 'GET', `${V3}/role_assignments`, { token: demoTok.token });
  assert.equal(all.status, 403);
});

test('endpoint list, and region/service/endpoint administration', async () => {
  const eps = await tc.openstackJson<any[]>(['endpoint', 'list']);
  const identity = eps.filter((e) => e['Service Type'] === 'identity');
  assert.deepEqual(identity.map((e) => e.Interface).sort(), ['admin', 'internal', 'public']);
  assert.ok(identity.every((e) => e.URL === `${tc.url}/identity/v3` && e.Region === 'RegionOne'));
  await ok(['region', 'create', '--description', 'second', 'RegionTwo']);
  const svc = await tc.openstackJson(['service', 'create', '--name', 'widgets', '--description', 'w', 'widget']);
  const ep = await tc.openstackJson(['endpoint', 'create', '--region', 'RegionTwo', 'widgets', 'public', 'http://203.0.113.5:9999/w']);
  assert.equal(ep.url, 'http://203.0.113.5:9999/w');
  const cat = await api(tc.url, 'GET', `${V3}/auth/catalog`, { token: adminToken });
  assert.ok(cat.body.catalog.some((c: any) => c.type === 'widget' && c.endpoints[0].region_id === 'RegionTwo'));
  const badUrl = await api(tc.url, 'POST', `${V3}/endpoints`, { token: adminToken, body: { endpoint: { service_id: svc.id, interface: 'public', url: 'not a url' } } });
  assert.equal(badUrl.status, 400);
  const badIface = await api(tc.url, 'POST', `${V3}/endpoints`, { token: adminToken, body: { endpoint: { service_id: svc.id, interface: 'private', url: 'http://x/' } } });
  assert.equal(badIface.status, 400);
  const inUse = await api(tc.url, 'DELETE', `${V3}/regions/RegionTwo`, { token: adminToken });
  assert.equal(inUse.status, 409);
  await ok(['service', 'delete', 'widgets']);
  await ok(['region', 'delete', 'RegionTwo']);
  const demoEps = await tc.openstack(['endpoint', 'list'], { as: 'demo' });
  assert.notEqual(demoEps.code, 0, 'the endpoint list is for administrators');
});
