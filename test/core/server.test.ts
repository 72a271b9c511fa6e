// The listener every service shares: health, request ids, metrics, error bodies.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { api, startTestCloud, type TestCloud } from '../helpers/cloud.js';

let tc: TestCloud;
before(async () => { tc = await startTestCloud(); });
after(async () => { await tc?.stop(); });

test('healthz answers 200 once started', async () => {
  const r = await api(tc.url, 'GET', '/healthz');
  assert.equal(r.status, 200);
  assert.equal(r.body.status, 'ok');
  assert.ok(r.body.services.includes('identity'));
});

test('every response carries a request id; a well-formed one is echoed', async () => {
  const fresh = await api(tc.url, 'GET', '/healthz');
  assert.match(fresh.headers.get('x-openstack-request-id') ?? '', /^req-[0-9a-f-]{36}$/);
  const given = 'req-12345678-1234-1234-1234-123456789abc';
  const echoed = await api(tc.url, 'GET', '/no/such/path', { headers: { 'X-OpenStack-Request-Id': given } });
  assert.equal(echoed.headers.get('x-openstack-request-id'), given);
  const forged = await api(tc.url, 'GET', '/healthz', { headers: { 'X-OpenStack-Request-Id': 'req-not-a-uuid<script>' } });
  assert.notEqual(forged.headers.get('x-openstack-request-id'), 'req-not-a-uuid<script>');
});

test('unknown paths get an OpenStack-shaped 404', async () => {
  const r = await api(tc.url, 'GET', '/no/such/path');
  assert.equal(r.status, 404);
  assert.equal(r.body.error.code, 404);
  assert.match(r.body.error.message, /could not be found/);
});

test('metrics count requests by service', async () => {
  await api(tc.url, 'GET', '/healthz');
  const r = await fetch(`${tc.url}/metrics`);
  const text = await r.text();
  assert.equal(r.status, 200);
  assert.match(text, /stratus_http_requests_total\{service="healthz",method="GET",status="200"\} \d+/);
  assert.match(text, /process_resident_memory_bytes/);
});

test('clouds.yaml and openrc files are written 0600 with the generated passwords', async () => {
  const { statSync, readFileSync } = await import('node:fs');
  for (const f of ['clouds.yaml', 'admin-openrc.sh', 'demo-openrc.sh']) {
    const st = statSync(`${tc.dataDir}/${f}`);
    assert.equal(st.mode & 0o777, 0o600, f);
  }
  assert.ok(readFileSync(`${tc.dataDir}/clouds.yaml`, 'utf8').includes(tc.adminPassword));
  assert.ok(readFileSync(`${tc.dataDir}/demo-openrc.sh`, 'utf8').includes(tc.demoPassword));
});
