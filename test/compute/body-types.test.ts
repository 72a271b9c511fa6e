// JSON bodies are validated without type coercion (src/core/http.ts); Nova's own lenient fields
// (`parameter_types.positive_integer` / `boolean`: flavor sizes, quota values, min/max_count) still
// take digit strings, as tempest's test_create_flavor_using_string_ram expects, and nothing else.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { api, startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { issue } from '../identity/helpers.js';

let tc: TestCloud;
let admin: string;
let demoProject: string;
const V = '/compute/v2.1';
before(async () => {
  tc = await startTestCloud();
  admin = (await issue(tc, 'admin', tc.adminPassword)).token;
  demoProject = (await issue(tc, 'demo', tc.demoPassword)).body.token.project.id;
});
after(async () => { await tc?.stop(); });

test('flavor sizes and quota values as digit strings; lists and bad strings refused', async () => {
  const ok = await api(tc.url, 'POST', `${V}/flavors`, { token: admin, body: { flavor: {
    name: 'strram', ram: '1024', vcpus: '2', disk: '0', 'OS-FLV-EXT-DATA:ephemeral': '1', swap: '', rxtx_factor: 1.5,
    'os-flavor-access:is_public': 'True' } } });
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual([ok.body.flavor.ram, ok.body.flavor.vcpus, ok.body.flavor.disk, ok.body.flavor['OS-FLV-EXT-DATA:ephemeral'],
    ok.body.flavor['os-flavor-access:is_public']], [1024, 2, 0, 1, true]);
  // A numeric flavor id (tempest's test_create_flavor_with_int_id) is the id as a string.
  const intId = await api(tc.url, 'POST', `${V}/flavors`, { token: admin, body: { flavor: { name: 'intid', ram: 512, vcpus: 1, disk: 0, id: 4321 } } });
  assert.equal(intId.status, 200, intId.text);
  assert.equal(intId.body.flavor.id, '4321');
  for (const [field, value] of [['id', [1]], ['ram', ['1024']], ['ram', '0'], ['ram', 'lots'], ['vcpus', 1.5], ['name', ['x']], ['disk', '-1']] as const) {
    const body = { flavor: { name: 'bad', ram: 512, vcpus: 1, disk: 0, [field]: value } };
    const r = await api(tc.url, 'POST', `${V}/flavors`, { token: admin, body });
    assert.equal(r.status, 400, `${field}=${JSON.stringify(value)}: ${r.text}`);
  }
  const q = await api(tc.url, 'PUT', `${V}/os-quota-sets/${demoProject}`, { token: admin, body: { quota_set: { instances: '7', force: 'true' } } });
  assert.equal(q.status, 200, q.text);
  assert.equal(q.body.quota_set.instances, 7);
  for (const v of [['7'], '-2', 'seven']) {
    const r = await api(tc.url, 'PUT', `${V}/os-quota-sets/${demoProject}`, { token: admin, body: { quota_set: { instances: v } } });
    assert.equal(r.status, 400, `${JSON.stringify(v)}: ${r.text}`);
  }
});
