// Placement through the real `openstack` CLI (osc-placement plugin; it negotiates 1.29).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';

let tc: TestCloud;
before(async () => { tc = await startTestCloud(); });
after(async () => { await tc?.stop(); });

test('resource providers, inventories, classes, traits, candidates, allocations, usages', async () => {
  const rp = await tc.openstackJson(['resource', 'provider', 'create', 'cli-host']);
  assert.equal(rp.name, 'cli-host');
  assert.equal(rp.generation, 0);
  assert.equal(rp.root_provider_uuid, rp.uuid);

  const inv = await tc.openstackJson(['resource', 'provider', 'inventory', 'set', rp.uuid,
    '--resource', 'VCPU=4', '--resource', 'VCPU:allocation_ratio=2', '--resource', 'MEMORY_MB=4096',
    '--resource', 'MEMORY_MB:reserved=1024', '--resource', 'CUSTOM_CLI_WIDGET=3']).catch((e: Error) => e);
  // A custom class must exist first.
  assert.ok(inv instanceof Error && /CUSTOM_CLI_WIDGET/.test(inv.message), String(inv));
  assert.equal((await tc.openstack(['resource', 'class', 'create', 'CUSTOM_CLI_WIDGET'])).code, 0);
  const classes = await tc.openstackJson<Array<{ name: string }>>(['resource', 'class', 'list']);
  assert.ok(classes.some((c) => c.name === 'VCPU') && classes.some((c) => c.name === 'CUSTOM_CLI_WIDGET'));
  await tc.openstackJson(['resource', 'provider', 'inventory', 'set', rp.uuid,
    '--resource', 'VCPU=4', '--resource', 'VCPU:allocation_ratio=2', '--resource', 'MEMORY_MB=4096',
    '--resource', 'MEMORY_MB:reserved=1024', '--resource', 'CUSTOM_CLI_WIDGET=3']);
  const listed = await tc.openstackJson<Array<{ resource_class: string; total: number; used: number; allocation_ratio: number }>>(
    ['resource', 'provider', 'inventory', 'list', rp.uuid]);
  assert.deepEqual(listed.map((i) => i.resource_class).sort(), ['CUSTOM_CLI_WIDGET', 'MEMORY_MB', 'VCPU']);
  assert.equal(listed.find((i) => i.resource_class === 'VCPU')!.allocation_ratio, 2);

  assert.equal((await tc.openstack(['trait', 'create', 'CUSTOM_CLI_FAST'])).code, 0);
  const traits = await tc.openstackJson<Array<{ name: string }>>(['trait', 'list']);
  assert.ok(traits.some((t) => t.name === 'CUSTOM_CLI_FAST') && traits.some((t) => t.name === 'HW_CPU_X86_AVX2'));
  const set = await tc.openstackJson<Array<{ name: string }>>(['resource', 'provider', 'trait', 'set', rp.uuid,
    '--trait', 'CUSTOM_CLI_FAST', '--trait', 'HW_CPU_X86_AVX2']);
  assert.deepEqual(set.map((t) => t.name).sort(), ['CUSTOM_CLI_FAST', 'HW_CPU_X86_AVX2']);

  const cands = await tc.openstackJson<Array<Record<string, string>>>(['allocation', 'candidate', 'list', '--resource', 'VCPU=1']);
  assert.equal(cands.length, 1);
  assert.equal(cands[0]!['resource provider'], rp.uuid);
  assert.match(cands[0]!['inventory used/capacity']!, /VCPU=0\/8/);
  assert.match(cands[0]!['inventory used/capacity']!, /MEMORY_MB=0\/3072/);
  assert.deepEqual(await tc.openstackJson(['allocation', 'candidate', 'list', '--resource', 'VCPU=9']), []);

  const consumer = randomUUID();
  const project = randomUUID();
  const alloc = await tc.openstackJson<Array<{ resource_provider: string; resources: Record<string, number> }>>([
    'resource', 'provider', 'allocation', 'set', consumer, '--allocation', `rp=${rp.uuid},VCPU=2,MEMORY_MB=1024`,
    '--project-id', project, '--user-id', randomUUID()]);
  assert.deepEqual(alloc[0]!.resources, { VCPU: 2, MEMORY_MB: 1024 });
  const shown = await tc.openstackJson<Array<{ resource_provider: string; project_id: string }>>(['resource', 'provider', 'allocation', 'show', consumer]);
  assert.equal(shown[0]!.resource_provider, rp.uuid);
  assert.equal(shown[0]!.project_id, project);
  const usage = await tc.openstackJson<Array<{ resource_class: string; usage: number }>>(['resource', 'provider', 'usage', 'show', rp.uuid]);
  assert.deepEqual(Object.fromEntries(usage.map((u) => [u.resource_class, u.usage])), { CUSTOM_CLI_WIDGET: 0, MEMORY_MB: 1024, VCPU: 2 });
  const projUsage = await tc.openstackJson<Array<{ resource_class: string; usage: number }>>(['resource', 'usage', 'show', project]);
  assert.deepEqual(Object.fromEntries(projUsage.map((u) => [u.resource_class, u.usage])), { MEMORY_MB: 1024, VCPU: 2 });

  // Over capacity: 8 VCPUs in all, 2 used.
  const over = await tc.openstack(['resource', 'provider', 'allocation', 'set', randomUUID(), '--allocation', `rp=${rp.uuid},VCPU=7`,
    '--project-id', project, '--user-id', randomUUID()]);
  assert.notEqual(over.code, 0);
  assert.match(over.stderr, /exceed the capacity/);

  // A provider with allocations cannot go; unset them first.
  const busy = await tc.openstack(['resource', 'provider', 'delete', rp.uuid]);
  assert.match(busy.stderr, /has allocations/);
  assert.deepEqual(await tc.openstackJson(['resource', 'provider', 'allocation', 'unset', consumer, '--provider', rp.uuid]), []);

  const renamed = await tc.openstackJson(['resource', 'provider', 'set', rp.uuid, '--name', 'cli-host-2']);
  assert.equal(renamed.name, 'cli-host-2');
  const shownRp = await tc.openstackJson(['resource', 'provider', 'show', rp.uuid]);
  assert.equal(shownRp.name, 'cli-host-2');
  assert.ok(shownRp.generation >= 4);
  assert.equal((await tc.openstack(['resource', 'provider', 'delete', rp.uuid])).code, 0);
  assert.deepEqual(await tc.openstackJson(['resource', 'provider', 'list']), []);
});

test('the demo user (no admin role) is refused', async () => {
  const r = await tc.openstack(['resource', 'provider', 'list'], { as: 'demo' });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /HTTP 403/);
});

test('aggregates, per-class inventory, deleting classes and traits', async () => {
  const rp = await tc.openstackJson(['resource', 'provider', 'create', 'cli-agg-host']);
  const agg = randomUUID();
  const set = await tc.openstackJson<Array<{ uuid: string }>>(['resource', 'provider', 'aggregate', 'set', rp.uuid,
    '--aggregate', agg, '--generation', '0']);
  assert.deepEqual(set.map((a) => a.uuid), [agg]);
  const stale = await tc.openstack(['resource', 'provider', 'aggregate', 'set', rp.uuid, '--aggregate', agg, '--generation', '0']);
  assert.match(stale.stderr, /generation conflict/);
  const inv = await tc.openstackJson(['resource', 'provider', 'inventory', 'class', 'set', rp.uuid, 'VCPU', '--total', '4', '--max_unit', '2']);
  assert.equal(inv.total, 4);
  assert.equal(inv.max_unit, 2);
  const shown = await tc.openstackJson(['resource', 'provider', 'inventory', 'show', rp.uuid, 'VCPU']);
  assert.equal(shown.max_unit, 2);
  assert.equal((await tc.openstack(['resource', 'provider', 'inventory', 'delete', rp.uuid, '--resource-class', 'VCPU'])).code, 0);
  assert.deepEqual(await tc.openstackJson(['resource', 'provider', 'inventory', 'list', rp.uuid]), []);
  assert.equal((await tc.openstack(['trait', 'create', 'CUSTOM_CLI_GONE'])).code, 0);
  assert.equal((await tc.openstack(['trait', 'delete', 'CUSTOM_CLI_GONE'])).code, 0);
  assert.equal((await tc.openstack(['resource', 'class', 'create', 'CUSTOM_CLI_GONE'])).code, 0);
  assert.equal((await tc.openstack(['resource', 'class', 'delete', 'CUSTOM_CLI_GONE'])).code, 0);
  const std = await tc.openstack(['resource', 'class', 'delete', 'VCPU']);
  assert.match(std.stderr, /standard/);
});
