// Placement under a scheduler's load: 1,000 registered hosts, then allocation candidates and
// claims per second through the in-process interface the compute scheduler uses.
//   node dist/bench/placement.js [--hosts 1000] [--database postgres://...]
// SQLite (a temp file, WAL) by default; --database (or STRATUS_BENCH_DATABASE) for PostgreSQL.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { migrate, openDatabase } from '../src/core/db.js';
import { createLogger } from '../src/core/log.js';
import { AllocationService } from '../src/placement/allocations.js';
import { createPlacementClient, type CandidateRequest } from '../src/placement/client.js';
import { migrations } from '../src/placement/migrations.js';
import { PlacementService } from '../src/placement/service.js';
import { timed as measure } from './timing.js';

function arg(name: string, fallback?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

const hosts = Number(arg('hosts', '1000'));
const dbUrlArg = arg('database', process.env.STRATUS_BENCH_DATABASE);
const dir = mkdtempSync(join(tmpdir(), 'stratus-bench-placement-'));
const db = await openDatabase(dbUrlArg ?? `sqlite:${join(dir, 'bench.db')}`);
if (db.engine === 'postgres') {
  // A clean slate on a throwaway database is the caller's job; refuse to reuse a populated one.
  const r = await db.kysely.selectFrom('information_schema.tables').select('table_name')
    .where('table_name', '=', 'placement_resource_providers').execute();
  if (r.length) throw new Error('the bench wants an empty database');
}
await migrate(db, { placement: migrations });
const log = createLogger('warn');
const svc = new PlacementService(db);
const pl = createPlacementClient(svc, new AllocationService(svc, log), log);

async function timed<T>(label: string, n: number, fn: (i: number) => Promise<T>, concurrency = 1): Promise<void> {
  const t = await measure(n, async (i) => { await fn(i); }, concurrency);
  console.log(`${label.padEnd(60)} ${t.perSec.toFixed(1).padStart(8)}/s  p50 ${t.p50.toFixed(1).padStart(7)} ms  p95 ${t.p95.toFixed(1).padStart(7)} ms  cpu ${t.cpuMsPerOp.toFixed(2).padStart(6)} ms/op`);
}

console.log(`placement bench: ${hosts} hosts, ${db.engine}`);
const aggs = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
const uuids: string[] = [];
await timed(`register ${hosts} hosts (ensureHostProvider)`, hosts, async (i) => {
  const p = await pl.ensureHostProvider({
    name: `bench-host-${i}`,
    inventories: { VCPU: { total: 32, allocation_ratio: 4 }, MEMORY_MB: { total: 131072, reserved: 2048, allocation_ratio: 1.5 }, DISK_GB: { total: 2000 } },
    traits: i % 2 ? ['HW_CPU_X86_AVX2', 'COMPUTE_STATUS_DISABLED'].slice(0, 1) : ['HW_CPU_X86_SSE42'],
    aggregates: [aggs[i % aggs.length]!],
  });
  uuids.push(p.uuid);
});
await timed('re-register (no change, idempotent)', 200, async (i) => {
  await pl.ensureHostProvider({ name: `bench-host-${i}`,
    inventories: { VCPU: { total: 32, allocation_ratio: 4 }, MEMORY_MB: { total: 131072, reserved: 2048, allocation_ratio: 1.5 }, DISK_GB: { total: 2000 } } });
});

// Some load so that usage sums are not trivially empty: 5 servers per host.
const owner = { projectId: 'bench', userId: 'bench' };
await timed(`pre-load: ${hosts * 5} claims (sequential)`, hosts * 5, async (i) => {
  if (!(await pl.claim(randomUUID(), { [uuids[i % hosts]!]: { VCPU: 2, MEMORY_MB: 4096, DISK_GB: 20 } }, owner))) throw new Error('pre-load claim refused');
});

const flavor: CandidateRequest = { resources: { VCPU: 2, MEMORY_MB: 4096, DISK_GB: 20 } };
const n = Number(arg('iterations', '100'));
await timed('candidates, all hosts, summaries of requested classes', n, async () => {
  const r = await pl.getCandidates(flavor);
  if (r.candidates.length !== hosts) throw new Error(`expected ${hosts} candidates, got ${r.candidates.length}`);
});
await timed('candidates, all hosts, summaries of all classes', n, () => pl.getCandidates({ ...flavor, summaries: 'all' }));
await timed('candidates, all hosts, no summaries', n, () => pl.getCandidates({ ...flavor, summaries: 'none' }));
await timed('candidates, limit 50', n, () => pl.getCandidates({ ...flavor, limit: 50 }));
await timed('candidates, required trait + member_of (1/4 of hosts)', n, () =>
  pl.getCandidates({ ...flavor, required: ['HW_CPU_X86_AVX2'], memberOf: [[aggs[1]!]] }));

// Scheduler decision = candidates (limit 50) + pick one + claim, retrying the next on a lost race.
const decide = async () => {
  const r = await pl.getCandidates({ ...flavor, limit: 50 });
  const order = r.candidates.sort(() => Math.random() - 0.5);
  for (const c of order) if (await pl.claim(randomUUID(), c.allocations, owner)) return;
  throw new Error('no host fit');
};
await timed('scheduler decisions (candidates limit 50 + claim), 1 at a time', n, decide);
await timed('scheduler decisions, 8 concurrent', n * 2, decide, 8);
const decideRandom = async () => {
  const r = await pl.getCandidates({ ...flavor, limit: 50, randomize: true });
  for (const c of r.candidates) if (await pl.claim(randomUUID(), c.allocations, owner)) return;
  throw new Error('no host fit');
};
await timed('scheduler decisions, randomized candidates, 8 concurrent', n * 2, decideRandom, 8);
await timed('claims alone, random host, sequential', n * 5, async () => {
  await pl.claim(randomUUID(), { [uuids[Math.floor(Math.random() * hosts)]!]: { VCPU: 1, MEMORY_MB: 512 } }, owner);
});
await timed('claims alone, random host, 8 concurrent', n * 5, async () => {
  await pl.claim(randomUUID(), { [uuids[Math.floor(Math.random() * hosts)]!]: { VCPU: 1, MEMORY_MB: 512 } }, owner);
}, 8);

await db.close();
rmSync(dir, { recursive: true, force: true });
