// A real guest through the whole stack: the openstack CLI creates a server from the test image
// (registered in the image service), the scheduler places it on a real host agent, QEMU boots
// it, and its console log shows the guest's markers. Three boots: the first server, then one from its snapshot (TCG costs ~5-10 s each).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { TEST_IMAGE, testAgent, type TestAgent } from '../helpers/agent.js';

let tc: TestCloud;
let agent: TestAgent | undefined;
const haveImage = existsSync(TEST_IMAGE);

before(async () => {
  if (!haveImage) return;
  tc = await startTestCloud({ image: { bootstrapImage: TEST_IMAGE } } as never);
  agent = testAgent(tc);
  await agent.start();
});
after(async () => {
  await agent?.cleanup();
  await tc?.stop();
});

test('server create --wait reaches ACTIVE on a real agent; console log shows the guest markers; delete --wait', { skip: !haveImage && `${TEST_IMAGE} missing` }, async () => {
  const key = join(tc.dataDir, 'e2e-key');
  const k = await tc.openstack(['keypair', 'create', '--private-key', key, 'e2e']);
  assert.equal(k.code, 0, k.stderr);
  const s = await tc.openstackJson(['server', 'create', '--image', 'stratus-test', '--flavor', 'm1.nano', '--key-name', 'e2e', '--wait', 'e2e-1']);
  assert.equal(s.status, 'ACTIVE');
  assert.equal(s['OS-EXT-SRV-ATTR:host'], agent!.host);
  let log = '';
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline && !/STRATUS-GUEST: .*ssh/i.test(log)) {
    const r = await tc.openstack(['console', 'log', 'show', 'e2e-1']);
    log = r.stdout;
    await new Promise((res) => setTimeout(res, 1000));
  }
  assert.match(log, /STRATUS-GUEST: /);
  const tail = await tc.openstack(['console', 'log', 'show', '--lines', '3', 'e2e-1']);
  assert.ok(tail.stdout.trim().split('\n').length <= 3);
  // createImage end to end: the agent's snapshot becomes an active image; a server boots from it.
  const img = await tc.openstackJson(['server', 'image', 'create', '--wait', '--name', 'e2e-snap', 'e2e-1']);
  assert.equal(img.name, 'e2e-snap');
  const shown = await tc.openstackJson(['image', 'show', 'e2e-snap']);
  assert.equal(shown.status, 'active');
  assert.ok(Number(shown.size) > 1024 * 1024, `snapshot size ${shown.size}`);
  assert.equal(shown.disk_format, 'qcow2');
  assert.deepEqual(readdirSync(join(tc.dataDir, 'agent', 'snapshots')), [], 'the host file is removed once uploaded');
  const s2 = await tc.openstackJson(['server', 'create', '--image', 'e2e-snap', '--flavor', 'm1.nano', '--wait', 'e2e-2']);
  assert.equal(s2.status, 'ACTIVE');
  let log2 = '';
  const deadline2 = Date.now() + 90_000;
  while (Date.now() < deadline2 && !/STRATUS-GUEST: /.test(log2)) {
    log2 = (await tc.openstack(['console', 'log', 'show', 'e2e-2'])).stdout;
    await new Promise((res) => setTimeout(res, 1000));
  }
  assert.match(log2, /STRATUS-GUEST: /);
  const del2 = await tc.openstack(['server', 'delete', '--wait', 'e2e-2']);
  assert.equal(del2.code, 0, del2.stderr);
  const del = await tc.openstack(['server', 'delete', '--wait', 'e2e-1']);
  assert.equal(del.code, 0, del.stderr);
  assert.deepEqual(await tc.openstackJson<any[]>(['server', 'list']), []);
});
