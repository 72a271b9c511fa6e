// The in-process interface compute uses: registration, candidates, atomic claims, moves.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import type { PlacementClient, PlacementModule } from '../../src/placement/index.js';

let tc: TestCloud;
let pl: PlacementClient;
const owner = { projectId: 'p-1', userId: 'u-1' };

before(async () => {
  tc = await startTestCloud();
  await (tc.cloud.modules.find((m) => m.name === 'placement') as PlacementModule).service.createResourceClass('CUSTOM_PAGE', true);
  pl = (tc.cloud.modules.find((m) => m.name === 'placement') as PlacementModule).client;
});
after(async () => { await tc?.stop(); });

test('ensureHostProvider is idempotent and only bumps the generation on change', async () => {
  const spec = { name: 'host-idem', inventories: { VCPU: { total: 8, allocation_ratio: 4 }, MEMORY_MB: { total: 4096, reserved: 512 } },
    traits: ['HW_CPU_X86_AVX2', 'CUSTOM_IDEM'] };
  const a = await pl.ensureHostProvider(spec);
  const b = await pl.ensureHostProvider(spec);
  assert.equal(a.uuid, b.uuid);
  assert.equal(a.generation, b.generation);
  const c = await pl.ensureHostProvider({ ...spec, inventories: { ...spec.inventories, DISK_GB: { total: 100 } } });
  assert.equal(c.generation, b.generation + 1);
  assert.deepEqual(await pl.providerUsages(a.uuid), { DISK_GB: 0, MEMORY_MB: 0, VCPU: 0 });
  // Agents racing to register the same host end up with one provider.
  const racing = await Promise.all(Array.from({ length: 5 }, () => pl.ensureHostProvider({ name: 'host-race', inventories: { VCPU: { total: 2 } } })));
  assert.equal(new Set(racing.map((r) => r.uuid)).size, 1);
});

test('candidates: capacity math, traits, aggregates, min/max/step', async () => {
  const agg = randomUUID();
  const h1 = await pl.ensureHostProvider({ name: 'cand-1', inventories: { VCPU: { total: 4, reserved: 1, allocation_ratio: 2 }, MEMORY_MB: { total: 2048, max_unit: 1024 } },
    traits: ['CUSTOM_FAST'], aggregates: [agg] });
  const h2 = await pl.ensureHostProvider({ name: 'cand-2', inventories: { VCPU: { total: 2 }, MEMORY_MB: { total: 8192, step_size: 256 } } });
  const only = (r: { candidates: Array<{ rootUuid: string }> }) => r.candidates.map((c) => c.rootUuid).filter((u) => u === h1.uuid || u === h2.uuid).sort();

  // (4 - 1) * 2 = 6 VCPUs on h1, 2 on h2.
  assert.deepEqual(only(await pl.getCandidates({ resources: { VCPU: 6 } })), [h1.uuid]);
  assert.deepEqual(only(await pl.getCandidates({ resources: { VCPU: 7 } })), []);
  assert.deepEqual(only(await pl.getCandidates({ resources: { VCPU: 2 } })), [h1.uuid, h2.uuid].sort());
  // max_unit 1024 on h1; step 256 on h2.
  assert.deepEqual(only(await pl.getCandidates({ resources: { MEMORY_MB: 2048 } })), [h2.uuid]);
  assert.deepEqual(only(await pl.getCandidates({ resources: { MEMORY_MB: 300 } })), [h1.uuid]);
  assert.deepEqual(only(await pl.getCandidates({ resources: { VCPU: 1 }, required: ['CUSTOM_FAST'] })), [h1.uuid]);
  assert.deepEqual(only(await pl.getCandidates({ resources: { VCPU: 1 }, forbidden: ['CUSTOM_FAST'] })), [h2.uuid]);
  assert.deepEqual(only(await pl.getCandidates({ resources: { VCPU: 1 }, memberOf: [[agg]] })), [h1.uuid]);
  assert.deepEqual(only(await pl.getCandidates({ resources: { VCPU: 1 }, forbiddenAggregates: [agg] })), [h2.uuid]);

  const r = await pl.getCandidates({ resources: { VCPU: 1 }, inTree: h1.uuid, summaries: 'all' });
  assert.equal(r.candidates.length, 1);
  assert.deepEqual(r.candidates[0]!.allocations, { [h1.uuid]: { VCPU: 1 } });
  assert.deepEqual(r.summaries[h1.uuid]!.resources.VCPU, { capacity: 6, used: 0 });
  assert.deepEqual(r.summaries[h1.uuid]!.traits, ['CUSTOM_FAST']);
  assert.equal(r.summaries[h1.uuid]!.resources.MEMORY_MB!.capacity, 2048);
});

test('candidates: nested tree and a sharing provider', async () => {
  const agg = randomUUID();
  const root = await pl.ensureHostProvider({ name: 'nest-root', inventories: { VCPU: { total: 4 } }, aggregates: [agg] });
  const numa = await pl.ensureHostProvider({ name: 'nest-numa0', parentUuid: root.uuid, inventories: { MEMORY_MB: { total: 1024 } } });
  const disk = await pl.ensureHostProvider({ name: 'nest-shared-disk', inventories: { DISK_GB: { total: 500 } },
    traits: ['MISC_SHARES_VIA_AGGREGATE'], aggregates: [agg] });
  const r = await pl.getCandidates({ resources: { VCPU: 1, MEMORY_MB: 512, DISK_GB: 10 }, inTree: root.uuid });
  assert.equal(r.candidates.length, 1);
  assert.deepEqual(r.candidates[0]!.allocations, { [root.uuid]: { VCPU: 1 }, [numa.uuid]: { MEMORY_MB: 512 }, [disk.uuid]: { DISK_GB: 10 } });
  assert.equal(r.summaries[numa.uuid]!.parentUuid, root.uuid);
  // Granular group: the memory must come from one provider with it.
  const g = await pl.getCandidates({ resources: { VCPU: 1 }, groups: [{ suffix: '1', resources: { MEMORY_MB: 256 } }], inTree: root.uuid });
  assert.deepEqual(g.candidates[0]!.mappings, { '': [root.uuid], '1': [numa.uuid] });
  assert.ok(await pl.claim(randomUUID(), g.candidates[0]!.allocations, owner));
});

test('a limit reads trees page by page and agrees with the full answer', async () => {
  // More trees than one page (100 roots), the last three marked: a limit must look past page one.
  for (let i = 0; i < 110; i++) {
    await pl.ensureHostProvider({ name: `page-${i}`, inventories: { VCPU: { total: 2 }, CUSTOM_PAGE: { total: 1 } },
      traits: i >= 107 ? ['CUSTOM_LATE'] : [] });
  }
  const late = await pl.getCandidates({ resources: { CUSTOM_PAGE: 1 }, required: ['CUSTOM_LATE'] });
  assert.equal(late.candidates.length, 3);
  assert.deepEqual((await pl.getCandidates({ resources: { CUSTOM_PAGE: 1 }, required: ['CUSTOM_LATE'], limit: 2 })).candidates,
    late.candidates.slice(0, 2));
  const full = await pl.getCandidates({ resources: { VCPU: 1, CUSTOM_PAGE: 1 } });
  assert.equal(full.candidates.length, 110);
  const key = (c: { rootUuid: string }) => c.rootUuid;
  const shuffled = await pl.getCandidates({ resources: { VCPU: 1, CUSTOM_PAGE: 1 }, randomize: true });
  assert.deepEqual(shuffled.candidates.map(key).sort(), full.candidates.map(key).sort());
  assert.notDeepEqual(shuffled.candidates.map(key), full.candidates.map(key)); // 110! orders: never equal in practice
  const few = await pl.getCandidates({ resources: { VCPU: 1, CUSTOM_PAGE: 1 }, randomize: true, limit: 3 });
  assert.equal(few.candidates.length, 3);
  assert.ok(few.candidates.every((c) => full.candidates.some((f) => f.rootUuid === c.rootUuid)));
  for (const limit of [1, 3, 7, 10]) {
    const some = await pl.getCandidates({ resources: { VCPU: 1, CUSTOM_PAGE: 1 }, limit });
    assert.deepEqual(some.candidates, full.candidates.slice(0, limit));
    assert.deepEqual(Object.keys(some.summaries).sort(), some.candidates.map((c) => c.rootUuid).sort());
  }
});

test('20 concurrent claims on a small host: exactly the ones that fit succeed', async () => {
  const h = await pl.ensureHostProvider({ name: 'tiny', inventories: { VCPU: { total: 4 }, MEMORY_MB: { total: 4096 } } });
  const consumers = Array.from({ length: 20 }, () => randomUUID());
  const results = await Promise.all(consumers.map((c) => pl.claim(c, { [h.uuid]: { VCPU: 1, MEMORY_MB: 512 } }, owner)));
  assert.equal(results.filter(Boolean).length, 4);
  assert.deepEqual(await pl.providerUsages(h.uuid), { VCPU: 4, MEMORY_MB: 2048 });
  assert.equal((await pl.getCandidates({ resources: { VCPU: 1 }, inTree: h.uuid })).candidates.length, 0);
  // Freeing one makes room for exactly one more.
  await pl.deleteAllocations(consumers[results.indexOf(true)]!);
  const again = await Promise.all(Array.from({ length: 5 }, () => pl.claim(randomUUID(), { [h.uuid]: { VCPU: 1 } }, owner)));
  assert.equal(again.filter(Boolean).length, 1);
});

test('move allocations (resize/migrate) and project usages', async () => {
  const a = await pl.ensureHostProvider({ name: 'mv-src', inventories: { VCPU: { total: 2 }, MEMORY_MB: { total: 2048 } } });
  const b = await pl.ensureHostProvider({ name: 'mv-dst', inventories: { VCPU: { total: 4 }, MEMORY_MB: { total: 4096 } } });
  const inst = randomUUID();
  const migration = randomUUID();
  const me = { projectId: 'p-move', userId: 'u-move' };
  assert.ok(await pl.claim(inst, { [a.uuid]: { VCPU: 2, MEMORY_MB: 1024 } }, me));
  await pl.moveAllocations(inst, migration);
  assert.deepEqual((await pl.getAllocations(inst)).allocations, {});
  assert.deepEqual((await pl.getAllocations(migration)).allocations[a.uuid]!.resources, { VCPU: 2, MEMORY_MB: 1024 });
  // The new flavor on the destination while the source stays held (revert possible).
  assert.ok(await pl.claim(inst, { [b.uuid]: { VCPU: 4, MEMORY_MB: 2048 } }, me));
  assert.deepEqual(await pl.projectUsages('p-move'), { VCPU: 6, MEMORY_MB: 3072 });
  await pl.deleteAllocations(migration); // confirm
  await pl.deleteAllocations(migration); // idempotent
  assert.deepEqual(await pl.projectUsages('p-move'), { VCPU: 4, MEMORY_MB: 2048 });
  assert.equal(await pl.claim(randomUUID(), { [b.uuid]: { VCPU: 1 } }, me), false);
});
