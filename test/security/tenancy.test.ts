// Cross-tenant security review over raw HTTP: three callers (admin; demo, a member of "demo";
// eve, a member of her own project "eve") and one shared cloud. For every service: eve can
// neither see nor touch demo's things (list, filters, show, update, delete, sub-resources), a
// member cannot do admin things, and malformed bodies on the main create routes never give a 500.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { api, startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { hexId } from '../../src/core/ids.js';

let tc: TestCloud;
let admin: string;
let demo: string;
let eve: string;
let demoProject: string;
let eveProject: string;
let eveUser: string;
let demoUser: string;
const V3 = '/identity/v3';

async function token(user: string, password: string, project: string): Promise<string> {
  const r = await api(tc.url, 'POST', `${V3}/auth/tokens`, {
    body: { auth: { identity: { methods: ['password'], password: { user: { name: user, domain: { id: 'default' }, password } } },
      scope: { project: { name: project, domain: { id: 'default' } } } } },
  });
  assert.equal(r.status, 201, r.text);
  return r.headers.get('x-subject-token')!;
}

/** A third project and a member user in it, made through the identity API as admin. */
async function makeEve(): Promise<string> {
  const password = 'eve-secret-password';
  const p = await call(admin, 'POST', `${V3}/projects`, { project: { name: 'eve', domain_id: 'default' } });
  expect(p, 201, 'create project eve');
  const u = await call(admin, 'POST', `${V3}/users`, { user: { name: 'eve', domain_id: 'default', password, default_project_id: p.body.project.id } });
  expect(u, 201, 'create user eve');
  eveUser = u.body.user.id;
  const member = (await call(admin, 'GET', `${V3}/roles?name=member`)).body.roles[0].id;
  expect(await call(admin, 'PUT', `${V3}/projects/${p.body.project.id}/users/${eveUser}/roles/${member}`), 204, 'grant eve member');
  return password;
}

before(async () => {
  tc = await startTestCloud();
  admin = await token('admin', tc.adminPassword, 'admin');
  demo = await token('demo', tc.demoPassword, 'demo');
  eve = await token('eve', await makeEve(), 'eve');
  demoProject = (await tc.cloud.identity.findProject('demo'))!.id;
  eveProject = (await tc.cloud.identity.findProject('eve'))!.id;
  demoUser = (await call(demo, 'GET', `${V3}/auth/tokens`, undefined, { 'X-Subject-Token': demo })).body.token.user.id;
});
after(async () => { await tc?.stop(); });

const call = (token: string | undefined, method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
  api(tc.url, method, path, { token, body, headers });

/** Asserts a status (or one of several), with the body in the message. */
function expect(r: { status: number; text: string }, want: number | number[], what: string): void {
  const ok = Array.isArray(want) ? want.includes(r.status) : r.status === want;
  assert.ok(ok, `${what}: got ${r.status} ${r.text.slice(0, 300)}`);
}

test('every service API needs a valid token; secrets on disk are 0600', async () => {
  const paths = ['/identity/v3/auth/catalog', '/image/v2/images', '/network/v2.0/networks', '/placement/resource_providers',
    '/compute/v2.1/servers', '/compute/v2.1/flavors', '/compute/v2.1/os-keypairs'];
  for (const p of paths) {
    expect(await call(undefined, 'GET', p), 401, `${p} without a token`);
    expect(await call('gAAAAnot-a-token', 'GET', p), 401, `${p} with a garbage token`);
  }
  // Version discovery stays open.
  for (const p of ['/identity/v3', '/image/versions', '/network/', '/compute/']) {
    assert.ok((await call(undefined, 'GET', p)).status < 400, p);
  }
  // The agent API takes only the agent bearer token: not a Keystone token, not an empty/wrong bearer.
  const agentToken = readFileSync(join(tc.dataDir, 'agent-token'), 'utf8').trim();
  const bearers: Array<Record<string, string>> = [{}, { Authorization: 'Bearer ' }, { Authorization: 'Bearer x' }, { Authorization: `Bearer ${agentToken}x` },
    { Authorization: agentToken }, { 'X-Auth-Token': admin }, { Authorization: `bearer ${agentToken.slice(0, -1)}` }];
  for (const headers of bearers) {
    const r = await call(undefined, 'GET', '/compute/agent/v1/hosts/h1/desired', undefined, headers);
    expect(r, 401, `agent API with ${JSON.stringify(headers)}`);
  }
  expect(await call(undefined, 'GET', '/compute/agent/v1/hosts/h1/desired', undefined, { Authorization: `Bearer ${agentToken}` }), [200, 404], 'agent token');
  for (const f of ['agent-token', 'clouds.yaml']) {
    assert.equal(statSync(join(tc.dataDir, f)).mode & 0o077, 0, `${f} is readable by others`);
  }
});

test('identity: a member cannot read or revoke another user\'s token', async () => {
  const self = await call(demo, 'GET', `${V3}/auth/tokens`, undefined, { 'X-Subject-Token': demo });
  expect(self, 200, 'own token');
  expect(await call(eve, 'GET', `${V3}/auth/tokens`, undefined, { 'X-Subject-Token': demo }), [403, 404], 'eve reads demo token');
  expect(await call(eve, 'HEAD', `${V3}/auth/tokens`, undefined, { 'X-Subject-Token': demo }), [403, 404], 'eve checks demo token');
  expect(await call(eve, 'DELETE', `${V3}/auth/tokens`, undefined, { 'X-Subject-Token': demo }), [403, 404], 'eve revokes demo token');
  expect(await call(demo, 'GET', `${V3}/auth/tokens`, undefined, { 'X-Subject-Token': demo }), 200, 'demo token survives');
  // Scoping to a project one has no role on fails.
  const r = await api(tc.url, 'POST', `${V3}/auth/tokens`, {
    body: { auth: { identity: { methods: ['token'], token: { id: eve } }, scope: { project: { id: demoProject } } } },
  });
  expect(r, 401, 'eve rescopes to demo');
  const projects = await call(eve, 'GET', `${V3}/auth/projects`);
  assert.deepEqual(projects.body.projects.map((p: any) => p.name), ['eve']);
});

test('identity: a member cannot manage users, projects, roles or others\' credentials', async () => {
  const roles = (await call(admin, 'GET', `${V3}/roles`)).body.roles as Array<{ id: string; name: string }>;
  const adminRole = roles.find((r) => r.name === 'admin')!.id;
  const denied: Array<[string, string, unknown?]> = [
    ['POST', '/users', { user: { name: 'mallory', domain_id: 'default', password: 'x' } }],
    ['GET', '/users'], ['GET', `/users/${demoUser}`], ['PATCH', `/users/${demoUser}`, { user: { enabled: false } }],
    ['DELETE', `/users/${demoUser}`],
    ['PATCH', `/users/${eveUser}`, { user: { default_project_id: demoProject } }],
    ['POST', '/projects', { project: { name: 'mine', domain_id: 'default' } }], ['GET', '/projects'],
    ['GET', `/projects/${demoProject}`], ['PATCH', `/projects/${eveProject}`, { project: { name: 'renamed' } }],
    ['DELETE', `/projects/${demoProject}`], ['PUT', `/projects/${eveProject}/tags/x`],
    ['PUT', `/projects/${eveProject}/users/${eveUser}/roles/${adminRole}`],
    ['PUT', `/projects/${demoProject}/users/${eveUser}/roles/${adminRole}`],
    ['PUT', `/domains/default/users/${eveUser}/roles/${adminRole}`],
    ['PUT', `/system/users/${eveUser}/roles/${adminRole}`],
    ['GET', `/projects/${demoProject}/users/${demoUser}/roles`],
    ['POST', '/roles', { role: { name: 'superuser' } }], ['DELETE', `/roles/${adminRole}`],
    ['POST', '/domains', { domain: { name: 'evil' } }], ['PATCH', '/domains/default', { domain: { enabled: false } }],
    ['GET', '/role_assignments'], [`GET`, `/role_assignments?user.id=${demoUser}`],
    ['POST', '/groups', { group: { name: 'g' } }],
    ['GET', '/endpoints'], ['POST', '/services', { service: { type: 'x', name: 'x' } }],
    ['POST', '/limits', { limits: [{ service_id: 'x', project_id: eveProject, resource_name: 'x', resource_limit: 1 }] }],
    ['GET', `/users/${demoUser}/application_credentials`],
    ['POST', `/users/${demoUser}/application_credentials`, { application_credential: { name: 'steal' } }],
    ['GET', `/users/${demoUser}/credentials/OS-EC2`],
    ['POST', `/users/${demoUser}/credentials/OS-EC2`, { tenant_id: demoProject }],
    ['POST', `/users/${eveUser}/credentials/OS-EC2`, { tenant_id: demoProject }],
    ['POST', '/credentials', { credential: { user_id: demoUser, type: 'totp', blob: 'x' } }],
  ];
  for (const [m, p, b] of denied) expect(await call(eve, m, `${V3}${p}`, b), [403, 404], `member ${m} ${p}`);
  // As in Keystone, a password change is authorized by the original password, not by policy: a
  // wrong one is a 401 (and counts towards the owner's lockout, like a failed login).
  expect(await call(eve, 'POST', `${V3}/users/${demoUser}/password`, { user: { password: 'a', original_password: 'b' } }), 401,
    "member changing another's password with a wrong original");
  expect(await call(eve, 'GET', `${V3}/role_assignments?user.id=${eveUser}`), 200, 'own role assignments');
  expect(await call(eve, 'GET', `${V3}/users/${eveUser}`), 200, 'self');

  // An application credential cannot carry a role its creator does not have.
  expect(await call(eve, 'POST', `${V3}/users/${eveUser}/application_credentials`, { application_credential: { name: 'up', roles: [{ name: 'admin' }] } }),
    [400, 403], 'app credential with admin');
  // Credentials: demo's are invisible to eve, and eve cannot hand hers to demo.
  const demoCred = await call(demo, 'POST', `${V3}/credentials`, { credential: { user_id: demoUser, type: 'totp', blob: 'demo-seed' } });
  expect(demoCred, 201, 'demo credential');
  const list = await call(eve, 'GET', `${V3}/credentials`);
  assert.ok(list.status === 200 && !list.text.includes(demoCred.body.credential.id), 'eve lists demo credentials');
  expect(await call(eve, 'GET', `${V3}/credentials?user_id=${demoUser}`), 200, 'filter');
  assert.ok(!(await call(eve, 'GET', `${V3}/credentials?user_id=${demoUser}`)).text.includes('demo-seed'));
  expect(await call(eve, 'GET', `${V3}/credentials/${demoCred.body.credential.id}`), [403, 404], 'show demo credential');
  expect(await call(eve, 'PATCH', `${V3}/credentials/${demoCred.body.credential.id}`, { credential: { user_id: eveUser } }), [403, 404], 'take demo credential');
  expect(await call(eve, 'DELETE', `${V3}/credentials/${demoCred.body.credential.id}`), [403, 404], 'delete demo credential');
  const ec2 = await call(eve, 'POST', `${V3}/users/${eveUser}/credentials/OS-EC2`, { tenant_id: eveProject });
  expect(ec2, 201, 'own ec2 credential');
  const ec2Id = (await call(eve, 'GET', `${V3}/credentials?type=ec2`)).body.credentials[0].id;
  // Keystone OSSA-2020-005 (CVE-2020-12691): moving a credential to another user lets its holder act as them.
  expect(await call(eve, 'PATCH', `${V3}/credentials/${ec2Id}`, { credential: { user_id: demoUser, project_id: demoProject } }), [403], 'give ec2 credential to demo');
  expect(await call(eve, 'PATCH', `${V3}/credentials/${ec2Id}`, { credential: { user_id: demoUser } }), [403], 'give ec2 credential to demo');
  expect(await call(eve, 'PATCH', `${V3}/credentials/${ec2Id}`, { credential: { project_id: demoProject } }), [403], 'move ec2 credential to demo project');
  expect(await call(eve, 'PATCH', `${V3}/credentials/${ec2Id}`, { credential: { project_id: eveProject } }), 200, 'own project stays fine');
});

test('image: another project cannot see, filter for, change or delete a private image; members cannot publish', async () => {
  const img = await call(demo, 'POST', '/image/v2/images', { name: 'demo-private', disk_format: 'raw', container_format: 'bare' });
  expect(img, 201, 'create');
  const id = img.body.id;
  expect(await api(tc.url, 'PUT', `/image/v2/images/${id}/file`, { token: demo, rawBody: Buffer.alloc(1024, 1), headers: { 'Content-Type': 'application/octet-stream' } }), 204, 'upload');

  for (const q of ['', '?owner=' + demoProject, '?visibility=private', '?visibility=all', '?member_status=all', '?name=demo-private', `?marker=${id}`]) {
    const l = await call(eve, 'GET', `/image/v2/images${q}`);
    assert.ok(l.status < 500, `list${q}: ${l.status}`);
    if (l.status === 200) assert.ok(!l.body.images.some((i: any) => i.id === id), `eve lists demo's image via '${q}'`);
  }
  expect(await call(eve, 'GET', `/image/v2/images/${id}`), 404, 'show');
  expect(await call(eve, 'GET', `/image/v2/images/${id}/file`), 404, 'download');
  expect(await call(eve, 'PATCH', `/image/v2/images/${id}`, [{ op: 'replace', path: '/name', value: 'x' }],
    { 'Content-Type': 'application/openstack-images-v2.1-json-patch' }), 404, 'update');
  expect(await call(eve, 'PUT', `/image/v2/images/${id}/tags/x`), 404, 'tag');
  expect(await call(eve, 'POST', `/image/v2/images/${id}/members`, { member: eveProject }), 404, 'share to self');
  expect(await call(eve, 'GET', `/image/v2/images/${id}/members`), 404, 'members');
  expect(await call(eve, 'POST', `/image/v2/images/${id}/actions/deactivate`), [403, 404], 'deactivate');
  expect(await call(eve, 'DELETE', `/image/v2/images/${id}`), 404, 'delete');
  expect(await call(demo, 'GET', `/image/v2/images/${id}`), 200, 'still there');

  // Escalation: publishing, owning for another project, deactivating (admin-only).
  expect(await call(eve, 'POST', '/image/v2/images', { name: 'pub', visibility: 'public' }), 403, 'member creates public image');
  const other = await call(eve, 'POST', '/image/v2/images', { name: 'planted', owner: demoProject });
  assert.ok(other.status === 403 || (other.status === 201 && other.body.owner === eveProject), `plant an image in demo: ${other.status} ${other.text}`);
  expect(await call(demo, 'PATCH', `/image/v2/images/${id}`, [{ op: 'replace', path: '/visibility', value: 'public' }],
    { 'Content-Type': 'application/openstack-images-v2.1-json-patch' }), 403, 'member publishes by update');
  const own = await call(demo, 'PATCH', `/image/v2/images/${id}`, [{ op: 'replace', path: '/owner', value: eveProject }],
    { 'Content-Type': 'application/openstack-images-v2.1-json-patch' });
  expect(own, [403, 400], 'member gives the image away');
  // Shared with eve: visible but eve still cannot change it or its members.
  expect(await call(demo, 'POST', `/image/v2/images/${id}/members`, { member: eveProject }), 200, 'share');
  expect(await call(eve, 'PUT', `/image/v2/images/${id}/members/${eveProject}`, { status: 'accepted' }), 200, 'accept');
  expect(await call(eve, 'GET', `/image/v2/images/${id}`), 200, 'shared show');
  expect(await call(eve, 'PATCH', `/image/v2/images/${id}`, [{ op: 'replace', path: '/name', value: 'x' }],
    { 'Content-Type': 'application/openstack-images-v2.1-json-patch' }), [403, 404], 'member of share updates');
  expect(await call(eve, 'POST', `/image/v2/images/${id}/members`, { member: hexId() }), [403, 404], 'member of share re-shares');
  expect(await call(eve, 'DELETE', `/image/v2/images/${id}`), [403, 404], 'member of share deletes');
  expect(await call(demo, 'DELETE', `/image/v2/images/${id}/members/${eveProject}`), 204, 'unshare');
  expect(await call(eve, 'GET', `/image/v2/images/${id}`), 404, 'unshared');
});

test('image: deactivation is for admins (Glance default)', async () => {
  const img = await call(demo, 'POST', '/image/v2/images', { name: 'demo-deact', disk_format: 'raw', container_format: 'bare' });
  await api(tc.url, 'PUT', `/image/v2/images/${img.body.id}/file`, { token: demo, rawBody: Buffer.alloc(512, 1), headers: { 'Content-Type': 'application/octet-stream' } });
  expect(await call(demo, 'POST', `/image/v2/images/${img.body.id}/actions/deactivate`), 403, 'member deactivates');
});

const N = (p: string) => `/network/v2.0${p}`;

test('network: another project cannot see or touch networks, subnets, ports, groups, routers; no provider or binding attributes', async () => {
  const mk = async (path: string, body: unknown, token = demo) => {
    const r = await call(token, 'POST', N(path), body);
    expect(r, 201, `create ${path}`);
    return Object.values(r.body)[0] as any;
  };
  const net = await mk('/networks', { network: { name: 'demo-net' } });
  const sub = await mk('/subnets', { subnet: { network_id: net.id, cidr: '10.77.0.0/24', ip_version: 4 } });
  const port = await mk('/ports', { port: { network_id: net.id } });
  const sg = await mk('/security-groups', { security_group: { name: 'demo-sg' } });
  const rule = await mk('/security-group-rules', { security_group_rule: { security_group_id: sg.id, direction: 'ingress', protocol: 'tcp', port_range_min: 22, port_range_max: 22 } });
  const router = await mk('/routers', { router: { name: 'demo-r' } });
  const things: Array<[string, string, string]> = [
    ['/networks', 'network', net.id], ['/subnets', 'subnet', sub.id], ['/ports', 'port', port.id],
    ['/security-groups', 'security_group', sg.id], ['/security-group-rules', 'security_group_rule', rule.id], ['/routers', 'router', router.id],
  ];
  for (const [path, kind, id] of things) {
    for (const q of ['', `?tenant_id=${demoProject}`, `?project_id=${demoProject}`, `?id=${id}`, '?all_tenants=1', `?marker=${id}&limit=1`]) {
      const l = await call(eve, 'GET', N(path + q));
      assert.ok(l.status < 500, `${path}${q}: ${l.status}`);
      if (l.status === 200) assert.ok(!JSON.stringify(l.body).includes(id), `eve lists demo's ${kind} via '${q}'`);
    }
    expect(await call(eve, 'GET', N(`${path}/${id}`)), 404, `show ${kind}`);
    if (kind !== 'security_group_rule') expect(await call(eve, 'PUT', N(`${path}/${id}`), { [kind]: { name: 'x' } }), 404, `update ${kind}`);
    expect(await call(eve, 'DELETE', N(`${path}/${id}`)), 404, `delete ${kind}`);
  }
  // Sub-resources and cross-references: eve cannot use demo's network, subnet, group or router.
  expect(await call(eve, 'POST', N('/ports'), { port: { network_id: net.id } }), 404, 'port on demo network');
  expect(await call(eve, 'POST', N('/subnets'), { subnet: { network_id: net.id, cidr: '10.78.0.0/24', ip_version: 4 } }), [403, 404], 'subnet on demo network');
  expect(await call(eve, 'POST', N('/security-group-rules'), { security_group_rule: { security_group_id: sg.id, direction: 'ingress' } }), 404, 'rule in demo group');
  expect(await call(eve, 'PUT', N(`/routers/${router.id}/add_router_interface`), { subnet_id: sub.id }), 404, 'interface on demo router');
  const eveRouter = await mk('/routers', { router: { name: 'eve-r' } }, eve);
  expect(await call(eve, 'PUT', N(`/routers/${eveRouter.id}/add_router_interface`), { subnet_id: sub.id }), 404, 'demo subnet on eve router');
  expect(await call(eve, 'PUT', N(`/routers/${eveRouter.id}/add_router_interface`), { port_id: port.id }), 404, 'demo port on eve router');
  const evePort = await call(eve, 'POST', N('/ports'), { port: { network_id: (await mk('/networks', { network: { name: 'e' } }, eve)).id, security_groups: [sg.id] } });
  expect(evePort, [400, 404], 'eve port with demo security group');
  expect(await call(eve, 'POST', N('/rbac-policies'), { rbac_policy: { object_type: 'network', object_id: net.id, action: 'access_as_shared', target_tenant: eveProject } }), [403, 404], 'rbac on demo net');

  // Escalation by a member.
  const esc: Array<[string, unknown, string]> = [
    ['/networks', { network: { name: 'p', 'provider:network_type': 'flat', 'provider:physical_network': 'public' } }, 'provider attributes'],
    ['/networks', { network: { name: 's', shared: true } }, 'shared network'],
    ['/networks', { network: { name: 'x', 'router:external': true } }, 'external network'],
    ['/networks', { network: { name: 'o', tenant_id: demoProject } }, 'network for another project'],
    ['/networks', { network: { name: 'o', project_id: demoProject } }, 'network for another project'],
    ['/security-groups', { security_group: { name: 'o', tenant_id: demoProject } }, 'group for another project'],
    ['/ports', { port: { network_id: net.id, tenant_id: eveProject } }, 'port on demo network claiming eve'],
  ];
  for (const [path, body, what] of esc) expect(await call(eve, 'POST', N(path), body), [403, 404], what);
  const bound = await call(demo, 'POST', N('/ports'), { port: { network_id: net.id, 'binding:host_id': 'h1' } });
  expect(bound, 403, 'member sets binding:host_id');
  expect(await call(demo, 'PUT', N(`/ports/${port.id}`), { port: { 'binding:host_id': 'h1' } }), 403, 'member updates binding:host_id');
  expect(await call(demo, 'PUT', N(`/networks/${net.id}`), { network: { shared: true } }), 403, 'member shares network');
  const shownPort = await call(demo, 'GET', N(`/ports/${port.id}`));
  assert.equal(shownPort.body.port['binding:host_id'] ?? '', '', 'no host leaked or set');
  // Attributes Neutron keeps for admins (or that would reach into another project).
  const eveNet = (await call(eve, 'GET', N('/networks?name=e'))).body.networks[0];
  await mk('/subnets', { subnet: { network_id: eveNet.id, cidr: '10.80.0.0/24', ip_version: 4 } }, eve);
  expect(await call(eve, 'POST', N('/ports'), { port: { network_id: eveNet.id, fixed_ips: [{ subnet_id: sub.id }] } }), [400, 404], 'eve port with demo subnet ip');
  // A port claiming to be an interface or the gateway of demo's router would plug eve's network into it.
  for (const owner of ['network:router_interface', 'network:router_gateway', 'network:dhcp', 'network:floatingip']) {
    expect(await call(eve, 'POST', N('/ports'), { port: { network_id: eveNet.id, device_owner: owner, device_id: router.id } }), 403, `port as ${owner}`);
  }
  const evePlain = await mk('/ports', { port: { network_id: eveNet.id } }, eve);
  expect(await call(eve, 'PUT', N(`/ports/${evePlain.id}`), { port: { device_owner: 'network:router_interface', device_id: router.id } }), 403, 'port becomes an interface');
  const eveSub = (await call(eve, 'GET', N(`/subnets?network_id=${eveNet.id}`))).body.subnets[0];
  const iface = await call(eve, 'PUT', N(`/routers/${eveRouter.id}/add_router_interface`), { subnet_id: eveSub.id });
  expect(iface, 200, 'own interface');
  expect(await call(eve, 'PUT', N(`/ports/${iface.body.port_id}`), { port: { device_id: router.id } }), 403, 'interface moves to demo router');
  expect(await call(eve, 'PUT', N(`/ports/${iface.body.port_id}`), { port: { name: 'fine' } }), 200, 'interface renamed');
  const demoIfaces = await call(admin, 'GET', N(`/ports?device_id=${router.id}`));
  assert.deepEqual(demoIfaces.body.ports.map((p: any) => p.project_id).filter((p: string) => p !== demoProject), [], 'only demo ports on demo router');
  const pub = (await call(eve, 'GET', N('/networks?router:external=true'))).body.networks[0];
  assert.ok(pub, 'the public network is listed');
  {
    const fip = await call(eve, 'POST', N('/floatingips'), { floatingip: { floating_network_id: pub.id, port_id: port.id } });
    expect(fip, [400, 404], 'floating ip onto demo port');
    expect(await call(eve, 'PUT', N(`/routers/${eveRouter.id}`), { router: { external_gateway_info: { network_id: pub.id, enable_snat: false } } }), [403], 'member disables snat');
    expect(await call(eve, 'POST', N('/subnets'), { subnet: { network_id: pub.id, cidr: '198.51.100.0/28', ip_version: 4 } }), [403, 404], 'subnet on public');
    expect(await call(eve, 'PUT', N(`/networks/${pub.id}`), { network: { name: 'mine' } }), [403, 404], 'rename public');
    expect(await call(eve, 'DELETE', N(`/networks/${pub.id}`)), [403, 404], 'delete public');
    expect(await call(eve, 'POST', N('/floatingips'), { floatingip: { floating_network_id: pub.id, floating_ip_address: '203.0.113.77' } }), [403, 400, 404], 'member picks a floating address');
  }
  expect(await call(eve, 'PUT', N(`/quotas/${eveProject}`), { quota: { network: 1000 } }), 403, 'member raises own quota');
  expect(await call(eve, 'GET', N(`/quotas/${demoProject}`)), [403, 404], 'member reads other quota');
  // demo's things survive eve's attempts.
  for (const [path, , id] of things) expect(await call(demo, 'GET', N(`${path}/${id}`)), 200, `${path} survives`);
});

const C = (p: string) => `/compute/v2.1${p}`;

test('compute: keypairs, server groups, servers and metadata are private; admin APIs are admin-only', async () => {
  const kp = await call(demo, 'POST', C('/os-keypairs'), { keypair: { name: 'demo-kp' } });
  expect(kp, [200, 201], 'keypair');
  expect(await call(eve, 'GET', C('/os-keypairs/demo-kp')), 404, 'show keypair');
  expect(await call(eve, 'DELETE', C('/os-keypairs/demo-kp')), 404, 'delete keypair');
  const kl = await call(eve, 'GET', C('/os-keypairs'));
  assert.ok(!kl.text.includes('demo-kp'), 'eve lists demo keypair');
  expect(await call(eve, 'GET', C(`/os-keypairs/demo-kp?user_id=${demoUser}`), undefined, { 'OpenStack-API-Version': 'compute 2.10' }), [403, 404], 'keypair by user_id');
  assert.ok(!(await call(eve, 'GET', C(`/os-keypairs?user_id=${demoUser}`), undefined, { 'OpenStack-API-Version': 'compute 2.10' })).text.includes('demo-kp'), 'keypair list by user_id');

  const sg = await call(demo, 'POST', C('/os-server-groups'), { server_group: { name: 'demo-sg', policies: ['anti-affinity'] } });
  expect(sg, 200, 'server group');
  const sgId = sg.body.server_group.id;
  // Nova answers 403 here (the policy target is the stored group's project), not 404.
  expect(await call(eve, 'GET', C(`/os-server-groups/${sgId}`)), [403, 404], 'show server group');
  expect(await call(eve, 'DELETE', C(`/os-server-groups/${sgId}`)), [403, 404], 'delete server group');
  expect(await call(demo, 'GET', C(`/os-server-groups/${sgId}`)), 200, 'server group survives');
  for (const q of ['', '?all_projects=True', `?project_id=${demoProject}`]) {
    const l = await call(eve, 'GET', C(`/os-server-groups${q}`));
    assert.ok(l.status < 500 && !l.text.includes(sgId), `server groups${q}: ${l.status}`);
  }

  const flavor = (await call(admin, 'GET', C('/flavors'))).body.flavors[0];
  const image = (await call(admin, 'GET', '/image/v2/images')).body.images.find((i: any) => i.status === 'active');
  const srv = await call(demo, 'POST', C('/servers'), { server: { name: 'demo-vm', flavorRef: flavor?.id ?? '1', imageRef: image?.id ?? hexId(), networks: 'none' } },
    { 'OpenStack-API-Version': 'compute 2.37' });
  assert.equal(srv.status, 202, `server create: ${srv.text}`);
  {
    const id = srv.body.server.id;
    for (const q of ['', '?all_tenants=1', `?project_id=${demoProject}`, `?tenant_id=${demoProject}`, `?marker=${id}`]) {
      for (const base of ['/servers', '/servers/detail']) {
        const l = await call(eve, 'GET', C(base + q));
        assert.ok(l.status < 500, `${base}${q}: ${l.status}`);
        if (l.status === 200) assert.ok(!l.text.includes(id), `eve lists demo's server via ${base}${q}`);
      }
    }
    expect(await call(eve, 'GET', C(`/servers/${id}`)), 404, 'show server');
    expect(await call(eve, 'PUT', C(`/servers/${id}`), { server: { name: 'x' } }), 404, 'update server');
    expect(await call(eve, 'POST', C(`/servers/${id}/action`), { 'os-stop': null }), 404, 'stop server');
    expect(await call(eve, 'POST', C(`/servers/${id}/action`), { 'os-getConsoleOutput': {} }), 404, 'console');
    expect(await call(eve, 'GET', C(`/servers/${id}/metadata`)), 404, 'metadata');
    expect(await call(eve, 'PUT', C(`/servers/${id}/metadata/k`), { meta: { k: 'v' } }), 404, 'set metadata');
    expect(await call(eve, 'GET', C(`/servers/${id}/os-instance-actions`)), 404, 'actions');
    expect(await call(eve, 'PUT', C(`/servers/${id}/tags/t`), undefined, { 'OpenStack-API-Version': 'compute 2.26' }), 404, 'tag');
    expect(await call(eve, 'DELETE', C(`/servers/${id}`)), 404, 'delete server');
    expect(await call(demo, 'GET', C(`/servers/${id}`)), 200, 'server survives');
    expect(await call(demo, 'POST', C(`/servers/${id}/action`), { 'os-migrateLive': { host: null, block_migration: 'auto' } },
      { 'OpenStack-API-Version': 'compute 2.30' }), [403], 'member live-migrates');
  }

  // Booting onto another project's network or port, from its private image, with another user's key.
  const demoNet = (await call(demo, 'POST', N('/networks'), { network: { name: 'demo-boot-net' } })).body.network;
  await call(demo, 'POST', N('/subnets'), { subnet: { network_id: demoNet.id, cidr: '10.79.0.0/24', ip_version: 4 } });
  const demoPort = (await call(demo, 'POST', N('/ports'), { port: { network_id: demoNet.id } })).body.port;
  const boot = (extra: Record<string, unknown>) => call(eve, 'POST', C('/servers'),
    { server: { name: 'eve-vm', flavorRef: flavor.id, imageRef: image.id, networks: 'none', ...extra } }, { 'OpenStack-API-Version': 'compute 2.37' });
  const eveImage = (await call(eve, 'POST', '/image/v2/images', { name: 'eve-img', disk_format: 'raw', container_format: 'bare' })).body.id;
  await api(tc.url, 'PUT', `/image/v2/images/${eveImage}/file`, { token: eve, rawBody: Buffer.alloc(512, 2), headers: { 'Content-Type': 'application/octet-stream' } });
  expect(await boot({ imageRef: image.id }), [400, 404], 'boot from demo private image');
  expect(await boot({ imageRef: eveImage, networks: [{ uuid: demoNet.id }] }), [400, 403, 404], 'boot on demo network');
  expect(await boot({ imageRef: eveImage, networks: [{ port: demoPort.id }] }), [400, 403, 404, 409], 'boot on demo port');
  expect(await boot({ imageRef: eveImage, key_name: 'demo-kp' }), [400, 404], 'boot with demo keypair');
  expect(await call(demo, 'GET', N(`/ports/${demoPort.id}`)), 200, 'demo port untouched');
  assert.equal((await call(demo, 'GET', N(`/ports/${demoPort.id}`))).body.port.device_id, '', 'demo port not claimed');

  // Admin-only APIs.
  const adminOnly: Array<[string, string, unknown?]> = [
    ['POST', '/flavors', { flavor: { name: 'big', ram: 1, vcpus: 1, disk: 1 } }],
    ['PUT', `/os-quota-sets/${eveProject}`, { quota_set: { instances: 1000 } }],
    ['DELETE', `/os-quota-sets/${eveProject}`],
    ['GET', `/os-quota-sets/${demoProject}`],
    ['GET', '/os-hypervisors'], ['GET', '/os-hypervisors/detail'], ['GET', '/os-hypervisors/statistics'],
    ['GET', '/os-aggregates'], ['POST', '/os-aggregates', { aggregate: { name: 'a' } }],
    ['GET', '/os-services'],
    ['GET', '/os-simple-tenant-usage'],
    ['POST', `/flavors/${flavor?.id ?? '1'}/os-extra_specs`, { extra_specs: { a: 'b' } }],
    ['DELETE', `/flavors/${flavor?.id ?? '1'}`],
  ];
  for (const [m, p, b] of adminOnly) expect(await call(eve, m, C(p), b), [403, 404], `member ${m} ${p}`);
  expect(await call(eve, 'GET', C(`/os-quota-sets/${eveProject}`)), 200, 'own quota');
});

test('placement: members cannot read or write the inventory', async () => {
  for (const [m, p, b] of [['GET', '/resource_providers'], ['POST', '/resource_providers', { name: 'x' }], ['GET', '/allocation_candidates?resources=VCPU:1'],
    ['GET', '/usages?project_id=' + demoProject], ['GET', '/resource_classes'], ['POST', '/reshaper', {}]] as Array<[string, string, unknown?]>) {
    expect(await call(eve, m, `/placement${p}`, b, { 'OpenStack-API-Version': 'placement latest' }), 403, `member ${m} ${p}`);
  }
});

/** Bodies that are wrong in shape; none may produce a 5xx. */
function badBodies(key: string): unknown[] {
  const huge = 'x'.repeat(300_000);
  return [null, [], 'str', 42, true, {}, { [key]: null }, { [key]: [] }, { [key]: 'str' }, { [key]: 7 },
    { [key]: { name: 7 } }, { [key]: { name: null } }, { [key]: { name: ['a'] } }, { [key]: { name: { a: 1 } } },
    { [key]: { name: huge } }, { [key]: { name: '\u0000\ud800💥' } }, { [key]: { id: '../../etc/passwd', name: 'x' } },
    { [key]: { name: 'x', tags: 'notalist', metadata: [], description: 5 } }];
}

test('malformed input on the main create routes gives a clean 4xx, never a 500', async () => {
  const routes: Array<[string, string, string, string?]> = [
    ['POST', '/image/v2/images', ''],
    ['POST', N('/networks'), 'network'], ['POST', N('/subnets'), 'subnet'], ['POST', N('/ports'), 'port'],
    ['POST', N('/routers'), 'router'], ['POST', N('/security-groups'), 'security_group'],
    ['POST', N('/security-group-rules'), 'security_group_rule'], ['POST', N('/floatingips'), 'floatingip'],
    ['POST', N('/rbac-policies'), 'rbac_policy'],
    ['POST', C('/servers'), 'server'], ['POST', C('/os-keypairs'), 'keypair'], ['POST', C('/os-server-groups'), 'server_group'],
    ['POST', C('/flavors'), 'flavor', 'admin'], ['POST', C('/os-aggregates'), 'aggregate', 'admin'],
    ['POST', '/placement/resource_providers', '', 'admin'],
    ['POST', `${V3}/auth/tokens`, 'auth'],
    ['POST', `${V3}/users`, 'user', 'admin'], ['POST', `${V3}/projects`, 'project', 'admin'], ['POST', `${V3}/roles`, 'role', 'admin'],
    ['POST', `${V3}/credentials`, 'credential'], ['POST', `${V3}/limits`, 'limits', 'admin'],
    ['POST', `${V3}/users/${demoUser}/application_credentials`, 'application_credential'],
    ['PUT', `/compute/v2.1/os-quota-sets/${demoProject}`, 'quota_set', 'admin'], ['PUT', N(`/quotas/${demoProject}`), 'quota', 'admin'],
  ];
  const failures: string[] = [];
  for (const [m, path, key, who] of routes) {
    const token = who === 'admin' ? admin : demo;
    const bodies = key === '' ? [null, [], 'str', 42, { name: 7 }, { name: null }, { name: 'x'.repeat(300_000) }, { name: '\ud800' }, { tags: 'x' }, { visibility: 7 }, { id: 'nope' }, { uuid: 7 }]
      : badBodies(key);
    for (const body of bodies) {
      const r = await api(tc.url, m, path, { token, rawBody: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });
      if (r.status >= 500) failures.push(`${m} ${path} ${JSON.stringify(body).slice(0, 80)} -> ${r.status} ${r.text.slice(0, 200)}`);
      else if (r.status >= 400 && !r.text) failures.push(`${m} ${path} ${JSON.stringify(body).slice(0, 80)} -> ${r.status} with an empty body`);
    }
    for (const raw of ['{', '{"a":', '\u0000', '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]']) {
      const r = await api(tc.url, m, path, { token, rawBody: raw, headers: { 'Content-Type': 'application/json' } });
      if (r.status >= 500) failures.push(`${m} ${path} raw ${JSON.stringify(raw).slice(0, 40)} -> ${r.status} ${r.text.slice(0, 200)}`);
    }
  }
  // JSON-patch bodies of the wrong shape on an image.
  const img = (await call(demo, 'POST', '/image/v2/images', { name: 'fuzz' })).body.id;
  for (const body of [null, {}, [null], [{}], [{ op: 'replace' }], [{ op: 'replace', path: 7, value: 1 }], [{ op: 'add', path: '/tags', value: 'x' }],
    [{ op: 'replace', path: '/name', value: { a: 1 } }], [{ op: 'add', path: '/x', value: 'y'.repeat(300_000) }], [{ op: 'remove', path: '/' }],
    [{ op: 'add', path: '/min_ram', value: -1 }], [{ op: 'add', path: '/locations/-', value: { url: 'file:///etc/passwd', metadata: {} } }]]) {
    const r = await api(tc.url, 'PATCH', `/image/v2/images/${img}`, { token: demo, rawBody: JSON.stringify(body), headers: { 'Content-Type': 'application/openstack-images-v2.1-json-patch' } });
    if (r.status >= 500 || r.status < 400) failures.push(`PATCH image ${JSON.stringify(body).slice(0, 80)} -> ${r.status} ${r.text.slice(0, 200)}`);
  }
  // Ids in paths that are not ids at all.
  for (const p of ['/image/v2/images/..%2F..%2Fetc%2Fpasswd', '/image/v2/images/%00/file', N('/networks/%2e%2e'), N('/ports/' + 'x'.repeat(5000)),
    C('/servers/..%2F1'), C('/os-keypairs/..%2F..%2Fx'), C('/flavors/%00'), '/placement/resource_providers/not-a-uuid']) {
    const r = await call(admin, 'GET', p);
    if (r.status >= 500) failures.push(`GET ${p} -> ${r.status} ${r.text.slice(0, 200)}`);
  }
  assert.deepEqual(failures, []);
});
