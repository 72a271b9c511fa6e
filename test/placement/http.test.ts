// Placement over raw HTTP: microversions, error bodies, conflicts, bad input, shapes per version,
// and the concurrency proof through the API.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { api, startTestCloud, type TestCloud } from '../helpers/cloud.js';

let tc: TestCloud;
let admin: string;
let demo: string;

async function token(user: string, password: string): Promise<string> {
  const r = await api(tc.url, 'POST', '/identity/v3/auth/tokens', { body: { auth: {
    identity: { methods: ['password'], password: { user: { name: user, domain: { id: 'default' }, password } } },
    scope: { project: { name: user, domain: { id: 'default' } } } } } });
  assert.equal(r.status, 201, r.text);
  return r.headers.get('x-subject-token')!;
}

/** A placement call as admin at microversion `v` ('' sends no header). */
const P = (method: string, path: string, v = 'latest', body?: unknown, tok = admin) =>
  api(tc.url, method, `/placement${path}`, { token: tok, body, headers: v ? { 'OpenStack-API-Version': `placement ${v}` } : {} });

async function provider(name: string, inv: Record<string, Record<string, number>>, parent?: string): Promise<string> {
  const r = await P('POST', '/resource_providers', 'latest', { name, ...(parent ? { parent_provider_uuid: parent } : {}) });
  assert.equal(r.status, 200, r.text);
  const put = await P('PUT', `/resource_providers/${r.body.uuid}/inventories`, 'latest', { resource_provider_generation: 0, inventories: inv });
  assert.equal(put.status, 200, put.text);
  return r.body.uuid;
}

before(async () => {
  tc = await startTestCloud();
  admin = await token('admin', tc.adminPassword);
  demo = await token('demo', tc.demoPassword);
});
after(async () => { await tc?.stop(); });

test('version discovery and microversion negotiation', async () => {
  const root = await api(tc.url, 'GET', '/placement');
  assert.equal(root.status, 200);
  assert.deepEqual(root.body.versions[0], { id: 'v1.0', max_version: '1.39', min_version: '1.0', status: 'CURRENT', links: [{ rel: 'self', href: '' }] });
  assert.equal((await P('GET', '/resource_providers', '')).headers.get('openstack-api-version'), 'placement 1.0');
  const latest = await P('GET', '/resource_providers', 'latest');
  assert.equal(latest.headers.get('openstack-api-version'), 'placement 1.39');
  assert.match(latest.headers.get('vary') ?? '', /openstack-api-version/);
  assert.equal(latest.headers.get('cache-control'), 'no-cache');
  assert.ok(latest.headers.get('last-modified'));
  assert.equal((await P('GET', '/resource_providers', '1.14')).headers.get('cache-control'), null);
  const tooNew = await P('GET', '/resource_providers', '1.99');
  assert.equal(tooNew.status, 406);
  assert.equal(tooNew.body.errors[0].max_version, '1.39');
  assert.equal(tooNew.body.errors[0].min_version, '1.0');
  assert.equal((await P('GET', '/resource_providers', '2.0')).status, 406);
  assert.equal((await P('GET', '/resource_providers', 'x.y')).status, 400);
  // Routes newer than the requested version do not exist there.
  assert.equal((await P('GET', '/traits', '1.5')).status, 404);
  assert.equal((await P('GET', '/allocation_candidates?resources=VCPU:1', '1.9')).status, 404);
});

test('authentication, policy and the error body', async () => {
  const anon = await api(tc.url, 'GET', '/placement/resource_providers');
  assert.equal(anon.status, 401);
  const denied = await P('GET', '/resource_providers', 'latest', undefined, demo);
  assert.equal(denied.status, 403);
  const nf = await P('GET', `/resource_providers/${randomUUID()}`);
  assert.equal(nf.status, 404);
  const e = nf.body.errors[0];
  assert.equal(e.status, 404);
  assert.equal(e.title, 'Not Found');
  assert.equal(e.code, 'placement.undefined_code');
  assert.equal(e.request_id, nf.headers.get('x-openstack-request-id'));
  assert.match(e.detail, /No resource provider with uuid/);
});

test('provider shapes per microversion, trees, name conflicts', async () => {
  const old = await P('POST', '/resource_providers', '1.0', { name: 'shape-old' });
  assert.equal(old.status, 201);
  assert.match(old.headers.get('location')!, /^http:\/\/.+\/placement\/resource_providers\/[0-9a-f-]{36}$/);
  const uuid = old.headers.get('location')!.split('/').pop()!;
  const v10 = await P('GET', `/resource_providers/${uuid}`, '1.0');
  assert.deepEqual(v10.body.links.map((l: { rel: string }) => l.rel), ['self', 'inventories', 'usages']);
  assert.equal(v10.body.root_provider_uuid, undefined);
  const child = await P('POST', '/resource_providers', 'latest', { name: 'shape-child', parent_provider_uuid: uuid });
  assert.equal(child.status, 200);
  assert.equal(child.body.root_provider_uuid, uuid);
  assert.equal(child.body.links.length, 6);
  const tree = await P('GET', `/resource_providers?in_tree=${child.body.uuid}`);
  assert.deepEqual(tree.body.resource_providers.map((p: { name: string }) => p.name).sort(), ['shape-child', 'shape-old']);
  const dup = await P('POST', '/resource_providers', 'latest', { name: 'shape-old' });
  assert.equal(dup.status, 409);
  assert.equal(dup.body.errors[0].code, 'placement.duplicate_name');
  const parentDel = await P('DELETE', `/resource_providers/${uuid}`);
  assert.equal(parentDel.status, 409);
  assert.equal(parentDel.body.errors[0].code, 'placement.resource_provider.cannot_delete_parent');
  // Re-parenting needs 1.37.
  const other = await P('POST', '/resource_providers', 'latest', { name: 'shape-other' });
  assert.equal((await P('PUT', `/resource_providers/${child.body.uuid}`, '1.36', { name: 'shape-child', parent_provider_uuid: other.body.uuid })).status, 400);
  const moved = await P('PUT', `/resource_providers/${child.body.uuid}`, '1.37', { name: 'shape-child', parent_provider_uuid: other.body.uuid });
  assert.equal(moved.body.root_provider_uuid, other.body.uuid);
  assert.equal((await P('PUT', `/resource_providers/${other.body.uuid}`, '1.37', { name: 'shape-other', parent_provider_uuid: child.body.uuid })).status, 400);
});

test('generation conflicts are 409 concurrent_update', async () => {
  const rp = await provider('gen-host', { VCPU: { total: 2 } });
  const stale = await P('PUT', `/resource_providers/${rp}/inventories`, 'latest', { resource_provider_generation: 0, inventories: { VCPU: { total: 4 } } });
  assert.equal(stale.status, 409);
  assert.equal(stale.body.errors[0].code, 'placement.concurrent_update');
  const traits = await P('PUT', `/resource_providers/${rp}/traits`, 'latest', { resource_provider_generation: 0, traits: ['HW_CPU_X86_SSE'] });
  assert.equal(traits.status, 409);
  const ok = await P('PUT', `/resource_providers/${rp}/traits`, 'latest', { resource_provider_generation: 1, traits: ['HW_CPU_X86_SSE'] });
  assert.deepEqual(ok.body, { traits: ['HW_CPU_X86_SSE'], resource_provider_generation: 2 });
  const agg = randomUUID();
  assert.equal((await P('PUT', `/resource_providers/${rp}/aggregates`, '1.19', { aggregates: [agg], resource_provider_generation: 1 })).status, 409);
  const aggOld = await P('PUT', `/resource_providers/${rp}/aggregates`, '1.1', [agg]);
  assert.deepEqual(aggOld.body, { aggregates: [agg] });
  // Consumer generations (1.28).
  const c = randomUUID();
  const body = (gen: number | null, vcpu = 1) => ({ allocations: { [rp]: { resources: { VCPU: vcpu } } }, project_id: 'p', user_id: 'u', consumer_generation: gen });
  assert.equal((await P('PUT', `/allocations/${c}`, '1.28', body(null))).status, 204);
  const again = await P('PUT', `/allocations/${c}`, '1.28', body(null));
  assert.equal(again.status, 409);
  assert.equal(again.body.errors[0].code, 'placement.concurrent_update');
  assert.equal((await P('PUT', `/allocations/${c}`, '1.28', body(0, 2))).status, 204);
  const got = await P('GET', `/allocations/${c}`, '1.38');
  assert.deepEqual(got.body, { allocations: { [rp]: { generation: 5, resources: { VCPU: 2 } } }, project_id: 'p', user_id: 'u',
    consumer_generation: 1, consumer_type: 'unknown' });
  const inUse = await P('PUT', `/resource_providers/${rp}/inventories`, 'latest', { resource_provider_generation: 5, inventories: {} });
  assert.equal(inUse.status, 409);
  assert.equal(inUse.body.errors[0].code, 'placement.inventory.inuse');
  assert.equal((await P('DELETE', `/allocations/${c}`)).status, 204);
  assert.equal((await P('DELETE', `/allocations/${c}`)).status, 404);
});

test('bad input is a 400 with a reason', async () => {
  const rp = await provider('bad-host', { VCPU: { total: 2 } });
  const cases: Array<[string, string, unknown, RegExp]> = [
    ['GET', '/allocation_candidates?resources=VCPU', undefined, /Badly formed resources/],
    ['GET', '/allocation_candidates?resources=VCPU:0', undefined, /positive integer/],
    ['GET', '/allocation_candidates?resources=NOPE:1', undefined, /No such resource class NOPE/],
    ['GET', '/allocation_candidates?resources=VCPU:1&required=CUSTOM_NOPE', undefined, /No such trait/],
    ['GET', '/allocation_candidates?resources=VCPU:1&member_of=xyz', undefined, /valid UUID/],
    ['GET', '/allocation_candidates?resources=VCPU:1&bogus=1', undefined, /bogus/],
    ['GET', '/allocation_candidates?resources1=VCPU:1&resources2=VCPU:1', undefined, /group_policy/],
    ['GET', '/allocation_candidates?resources=VCPU:1&limit=-1', undefined, /limit/],
    ['POST', '/resource_providers', { name: '' }, /JSON does not validate/],
    ['POST', '/resource_providers', { name: 'x', bogus: 1 }, /JSON does not validate/],
    ['PUT', `/resource_providers/${rp}/inventories`, { resource_provider_generation: 1, inventories: { VCPU: { total: 2, reserved: 3 } } }, /reserved/],
    ['PUT', `/resource_providers/${rp}/inventories`, { resource_provider_generation: 1, inventories: { CUSTOM_NOPE: { total: 2 } } }, /Unknown resource class/],
    ['PUT', `/resource_providers/${rp}/inventories`, { resource_provider_generation: 1, inventories: { VCPU: { total: 0 } } }, /JSON does not validate/],
    ['PUT', `/resource_providers/${rp}/traits`, { resource_provider_generation: 1, traits: ['CUSTOM_NOPE'] }, /No such trait/],
    ['PUT', '/traits/NOT_CUSTOM', undefined, /CUSTOM_/],
    ['POST', '/resource_classes', { name: 'VCPU' }, /JSON does not validate/],
    ['DELETE', '/resource_classes/VCPU', undefined, /standard/],
    ['PUT', `/allocations/${randomUUID()}`, { allocations: { [rp]: { resources: { VCPU: 0 } } }, project_id: 'p', user_id: 'u', consumer_generation: null, consumer_type: 'INSTANCE' }, /JSON does not validate/],
    ['PUT', `/allocations/${randomUUID()}`, { allocations: { [randomUUID()]: { resources: { VCPU: 1 } } }, project_id: 'p', user_id: 'u', consumer_generation: null, consumer_type: 'INSTANCE' }, /does not exist/],
    ['PUT', `/allocations/${randomUUID()}`, { allocations: { [rp]: { resources: { VCPU: 1 } } }, project_id: 'p', user_id: 'u', consumer_type: 'INSTANCE' }, /consumer_generation/],
    ['PUT', '/allocations/not-a-uuid', { allocations: {}, project_id: 'p', user_id: 'u', consumer_generation: null }, /Malformed consumer/],
  ];
  for (const [method, path, body, re] of cases) {
    const r = await P(method, path, '1.39', body);
    assert.equal(r.status, 400, `${method} ${path}: ${r.status} ${r.text}`);
    assert.match(r.body.errors[0].detail, re, `${method} ${path}`);
  }
  const malformed = await api(tc.url, 'PUT', `/placement/resource_providers/${rp}/traits`,
    { token: admin, rawBody: '{"traits": [', headers: { 'Content-Type': 'application/json' } });
  assert.equal(malformed.status, 400);
  assert.ok(malformed.body.errors[0].detail);
  // Invalid inventory for the class → 409; over-capacity → 409.
  const noInv = await P('PUT', `/allocations/${randomUUID()}`, '1.39', { allocations: { [rp]: { resources: { MEMORY_MB: 1 } } },
    project_id: 'p', user_id: 'u', consumer_generation: null, consumer_type: 'INSTANCE' });
  assert.equal(noInv.status, 409);
});

test('allocation candidates: shapes per microversion, granular groups, limit', async () => {
  const agg = randomUUID();
  const root = await provider('ac-root', { VCPU: { total: 8 }, MEMORY_MB: { total: 8192 } });
  const pf = await provider('ac-pf', { SRIOV_NET_VF: { total: 4 } }, root);
  await P('PUT', `/resource_providers/${root}/aggregates`, 'latest', { aggregates: [agg], resource_provider_generation: 1 });
  const q = `/allocation_candidates?resources=VCPU:1&resources1=SRIOV_NET_VF:1&group_policy=isolate&in_tree=${root}`;
  const latest = await P('GET', q, '1.39');
  assert.equal(latest.status, 200, latest.text);
  assert.deepEqual(latest.body.allocation_requests, [{
    allocations: { [root]: { resources: { VCPU: 1 } }, [pf]: { resources: { SRIOV_NET_VF: 1 } } },
    mappings: { '': [root], '1': [pf] },
  }]);
  assert.deepEqual(latest.body.provider_summaries[pf], {
    resources: { SRIOV_NET_VF: { capacity: 4, used: 0 } }, traits: [], parent_provider_uuid: root, root_provider_uuid: root,
  });
  assert.deepEqual(Object.keys(latest.body.provider_summaries[root].resources).sort(), ['MEMORY_MB', 'VCPU']);

  const v110 = await P('GET', `/allocation_candidates?resources=VCPU:1,MEMORY_MB:1024`, '1.10');
  const mine = v110.body.allocation_requests.find((a: any) => a.allocations[0].resource_provider.uuid === root);
  assert.deepEqual(mine, { allocations: [{ resource_provider: { uuid: root }, resources: { VCPU: 1, MEMORY_MB: 1024 } }] });
  assert.deepEqual(v110.body.provider_summaries[root], { resources: { VCPU: { capacity: 8, used: 0 }, MEMORY_MB: { capacity: 8192, used: 0 } } });

  // Before 1.29 nested providers take no part.
  assert.deepEqual((await P('GET', `/allocation_candidates?resources=SRIOV_NET_VF:1&in_tree=${root}`, '1.28')).status, 400);
  assert.deepEqual((await P('GET', `/allocation_candidates?resources=SRIOV_NET_VF:1`, '1.28')).body.allocation_requests
    .filter((a: any) => a.allocations[pf]), []);
  assert.equal((await P('GET', `/allocation_candidates?resources=SRIOV_NET_VF:1&in_tree=${root}`, '1.31')).body.allocation_requests.length, 1);
  const member = await P('GET', `/allocation_candidates?resources=VCPU:1&member_of=in:${agg},${randomUUID()}`, '1.24');
  assert.deepEqual(member.body.allocation_requests.map((a: any) => Object.keys(a.allocations)), [[root]]);
  const notMember = await P('GET', `/allocation_candidates?resources=VCPU:1&member_of=!${agg}&in_tree=${root}`, '1.32');
  assert.deepEqual(notMember.body.allocation_requests, []);
  const limited = await P('GET', '/allocation_candidates?resources=VCPU:1&limit=1', '1.16');
  assert.equal(limited.body.allocation_requests.length, 1);
  const anyTraits = await P('GET', `/allocation_candidates?resources=VCPU:1&required=in:HW_CPU_X86_SSE,HW_CPU_X86_AVX&in_tree=${root}`, '1.39');
  assert.deepEqual(anyTraits.body.allocation_requests, []);
});

test('same_subtree with a resourceless group (1.36)', async () => {
  assert.equal((await P('PUT', '/resource_classes/CUSTOM_ACC')).status, 201);
  for (const t of ['CUSTOM_NUMA_A', 'CUSTOM_NUMA_B']) assert.equal((await P('PUT', `/traits/${t}`)).status, 201);
  const root = await provider('ss-root', { VCPU: { total: 4 } });
  const numa: string[] = [];
  const acc: string[] = [];
  for (const [i, t] of ['CUSTOM_NUMA_A', 'CUSTOM_NUMA_B'].entries()) {
    const n = await P('POST', '/resource_providers', 'latest', { name: `ss-numa${i}`, parent_provider_uuid: root });
    await P('PUT', `/resource_providers/${n.body.uuid}/traits`, 'latest', { traits: [t], resource_provider_generation: 0 });
    numa.push(n.body.uuid);
    acc.push(await provider(`ss-acc${i}`, { CUSTOM_ACC: { total: 1 } }, n.body.uuid));
  }
  const q = `/allocation_candidates?resources=VCPU:1&resources_ACC=CUSTOM_ACC:1&required_NUMA=CUSTOM_NUMA_A&group_policy=none&in_tree=${root}`;
  const r = await P('GET', `${q}&same_subtree=_ACC,_NUMA`, '1.36');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.allocation_requests, [{
    allocations: { [root]: { resources: { VCPU: 1 } }, [acc[0]!]: { resources: { CUSTOM_ACC: 1 } } },
    mappings: { '': [root], _ACC: [acc[0]], _NUMA: [numa[0]] },
  }]);
  // Without same_subtree the resourceless group is refused; unknown suffixes too.
  assert.equal((await P('GET', q, '1.36')).status, 400);
  assert.equal((await P('GET', `${q}&same_subtree=_ACC,_NOPE`, '1.36')).status, 400);
  assert.equal((await P('GET', `${q}&same_subtree=_ACC,_NUMA`, '1.35')).status, 400);
});

test('reshaper moves inventory and allocations together, or nothing (1.30)', async () => {
  const root = await provider('rs-root', { VCPU: { total: 4 }, MEMORY_MB: { total: 1024 } });
  const c = randomUUID();
  assert.equal((await P('PUT', `/allocations/${c}`, '1.30', { allocations: { [root]: { resources: { VCPU: 2, MEMORY_MB: 256 } } },
    project_id: 'p', user_id: 'u', consumer_generation: null })).status, 204);
  const child = (await P('POST', '/resource_providers', 'latest', { name: 'rs-numa0', parent_provider_uuid: root })).body.uuid;
  const gen = async (rp: string) => (await P('GET', `/resource_providers/${rp}`)).body.generation;
  // Dropping VCPU from the root while the consumer still holds it there: refused, nothing changes.
  const bad = await P('POST', '/reshaper', '1.30', {
    inventories: { [root]: { resource_provider_generation: await gen(root), inventories: { MEMORY_MB: { total: 1024 } } },
      [child]: { resource_provider_generation: await gen(child), inventories: { VCPU: { total: 4 } } } },
    allocations: {},
  });
  assert.equal(bad.status, 409, bad.text);
  assert.deepEqual((await P('GET', `/resource_providers/${child}/inventories`)).body.inventories, {});
  const ok = await P('POST', '/reshaper', '1.30', {
    inventories: { [root]: { resource_provider_generation: await gen(root), inventories: { MEMORY_MB: { total: 1024 } } },
      [child]: { resource_provider_generation: await gen(child), inventories: { VCPU: { total: 4 } } } },
    allocations: { [c]: { allocations: { [root]: { resources: { MEMORY_MB: 256 } }, [child]: { resources: { VCPU: 2 } } },
      project_id: 'p', user_id: 'u', consumer_generation: 0 } },
  });
  assert.equal(ok.status, 204, ok.text);
  assert.deepEqual((await P('GET', `/resource_providers/${root}/usages`)).body.usages, { MEMORY_MB: 256 });
  assert.deepEqual((await P('GET', `/resource_providers/${child}/usages`)).body.usages, { VCPU: 2 });
  assert.equal((await P('POST', '/reshaper', '1.29', { inventories: {}, allocations: {} })).status, 404);
});

test('POST /allocations moves a consumer atomically; usages per project (1.38 by type)', async () => {
  const rp = await provider('post-host', { VCPU: { total: 4 }, MEMORY_MB: { total: 2048 } });
  const inst = randomUUID();
  const mig = randomUUID();
  const project = randomUUID();
  assert.equal((await P('PUT', `/allocations/${inst}`, '1.39', { allocations: { [rp]: { resources: { VCPU: 2, MEMORY_MB: 512 } } },
    project_id: project, user_id: 'u', consumer_generation: null, consumer_type: 'INSTANCE' })).status, 204);
  const move = await P('POST', '/allocations', '1.38', {
    [inst]: { allocations: {}, project_id: project, user_id: 'u', consumer_generation: 0, consumer_type: 'INSTANCE' },
    [mig]: { allocations: { [rp]: { resources: { VCPU: 2, MEMORY_MB: 512 } } }, project_id: project, user_id: 'u', consumer_generation: null, consumer_type: 'MIGRATION' },
  });
  assert.equal(move.status, 204, move.text);
  assert.deepEqual((await P('GET', `/allocations/${inst}`)).body, { allocations: {} });
  const usages = await P('GET', `/usages?project_id=${project}`, '1.38');
  assert.deepEqual(usages.body.usages, { MIGRATION: { consumer_count: 1, VCPU: 2, MEMORY_MB: 512 }, all: { consumer_count: 1, VCPU: 2, MEMORY_MB: 512 } });
  assert.deepEqual((await P('GET', `/usages?project_id=${project}`, '1.9')).body, { usages: { VCPU: 2, MEMORY_MB: 512 } });
  const provAllocs = await P('GET', `/resource_providers/${rp}/allocations`);
  assert.deepEqual(provAllocs.body.allocations, { [mig]: { resources: { VCPU: 2, MEMORY_MB: 512 } } });
});

test('20 concurrent claims over HTTP: exactly the ones that fit succeed', async () => {
  const rp = await provider('race-host', { VCPU: { total: 3 }, MEMORY_MB: { total: 1024 } });
  const results = await Promise.all(Array.from({ length: 20 }, () => P('PUT', `/allocations/${randomUUID()}`, '1.28', {
    allocations: { [rp]: { resources: { VCPU: 1, MEMORY_MB: 256 } } }, project_id: 'p', user_id: 'u', consumer_generation: null,
  })));
  const codes = results.map((r) => r.status);
  assert.equal(codes.filter((c) => c === 204).length, 3, codes.join(','));
  assert.equal(codes.filter((c) => c === 409).length, 17, codes.join(','));
  const usage = await P('GET', `/resource_providers/${rp}/usages`);
  assert.deepEqual(usage.body.usages, { MEMORY_MB: 768, VCPU: 3 });
});
