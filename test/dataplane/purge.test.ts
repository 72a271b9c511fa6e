// `stratus down --purge`'s data-plane step: the agent's layout maps two names (`public`,
// `physnet-public`) to one provider namespace; purging must remove it once and report no error,
// or the state dir is kept and the purge looks failed. Runs as root.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LinuxDataplane } from '../../src/agent/dataplane/driver.js';
import { Fixture, sh } from './helpers.js';

const fx = new Fixture('pg');
const provider = `${fx.prefix}provider`;
const pub = { netns: provider, bridge: 'br-public', addresses: ['203.0.113.1/24'] };
const stateDir = join(fx.dir, 'state');
const dp = new LinuxDataplane({ prefix: fx.prefix, stateDir, physicalNetworks: { 'physnet-public': pub, public: pub } });

after(() => fx.cleanup());

test('purge removes a provider namespace shared by two physical network names, without errors', async () => {
  assert.equal(await dp.ensurePhysicalNetwork('physnet-public'), provider);
  const r = await dp.purge();
  assert.deepEqual(r.errors, []);
  assert.ok(!(await sh('ip', ['netns', 'list'])).stdout.includes(provider), 'the provider namespace is gone');
  assert.ok(!existsSync(stateDir), 'the state dir is removed once nothing is left');
});
