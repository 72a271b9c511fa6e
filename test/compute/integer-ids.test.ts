// Nova's integer ids in paths and markers (migrations, aggregates): a number past what the
// database's integer column holds is simply not found (404, or 400 for a marker), never a 500
// (PostgreSQL refuses such a value outright; run this file with STRATUS_TEST_DATABASE too).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { api, startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { issue } from '../identity/helpers.js';
import { MigrationService } from '../../src/compute/migrations/service.js';

let tc: TestCloud;
let admin: string;
const V = '/compute/v2.1';
const HUGE = '99999999999999999999';

before(async () => {
  tc = await startTestCloud();
  admin = (await issue(tc, 'admin', tc.adminPassword)).token;
});
after(async () => { await tc?.stop(); });

test('integer ids past the column range: not found, not a server error', async () => {
  const mv = { 'OpenStack-API-Version': 'compute 2.59' };
  for (const marker of [HUGE, '2147483648']) {
    const r = await api(tc.url, 'GET', `${V}/os-migrations?marker=${marker}`, { token: admin, headers: mv });
    assert.equal(r.status, 400, `marker ${marker}: ${r.text}`);
    assert.match(r.body.badRequest.message, /Marker .* could not be found/);
  }
  for (const id of [HUGE, '2147483648', '1']) {
    const r = await api(tc.url, 'GET', `${V}/os-aggregates/${id}`, { token: admin });
    assert.equal(r.status, 404, `aggregate ${id}: ${r.text}`);
  }
  // What /servers/{id}/migrations/{mid} and the live-migration abort look a migration up by.
  const migrations = new MigrationService(tc.cloud.db.kysely);
  for (const ref of [HUGE, Number(HUGE), '2147483648', 2 ** 53 + 1]) assert.equal(await migrations.get(ref), undefined, String(ref));
});
