// bench/compute: the compute service's own costs, each against a baseline in the same run.
//   node dist/bench/compute.js [--parts a,b,c] [--rounds 3] [--sizes 1000,10000] [--hosts 1000]
//                              [--decisions 300] [--database postgres://ADMIN@HOST/postgres]
// (a) POST /servers → ACTIVE (and → the guest's `ssh ready` console marker) for the test image
//     through the whole control plane and a real agent process, against the agent's QEMU driver
//     spawning the same guest directly; order alternated per round (compute-boot.ts).
// (b) GET /servers/detail latency with 1,000 and 10,000 servers in the database (rows bulk-inserted
//     through the server store; no guests), default page and ?limit=1000.
// (c) Scheduler decisions per second (filters, placement candidates, weighing, atomic claim)
//     against 1,000 simulated hosts registered as agents would, sequentially and 8 at a time.
// SQLite in a temp dir by default; --database (or STRATUS_TEST_DATABASE) names a PostgreSQL admin
// URL: the bench creates and drops its own database there.
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { startTestCloud } from '../test/helpers/cloud.js';
import { adminToken, fillServers, fmt, heartbeatAll, listLatency, registerHosts, scheduleDecisions } from './compute-parts.js';
import { bootBench } from './compute-boot.js';

const { values } = parseArgs({ options: {
  parts: { type: 'string', default: 'a,b,c' },
  rounds: { type: 'string', default: '3' },
  sizes: { type: 'string', default: '1000,10000' },
  hosts: { type: 'string', default: '1000' },
  decisions: { type: 'string', default: '300' },
  iterations: { type: 'string', default: '20' },
  database: { type: 'string' },
} });
if (values.database) process.env.STRATUS_TEST_DATABASE = values.database;
const parts = new Set(values.parts.split(','));
const load = () => loadavg().map((l) => l.toFixed(1)).join(' ');

const tc = await startTestCloud();
try {
  const engine = tc.cloud.db.engine;
  console.log(`compute bench: ${engine}, ${new Date().toISOString()}, ${cpus().length} CPUs (${cpus()[0]?.model}), load average ${load()}`);
  const who = await adminToken(tc.url, tc.adminPassword);

  if (parts.has('a')) await bootBench(tc, who, { rounds: Number(values.rounds) });

  if (parts.has('c')) {
    const n = Number(values.hosts);
    console.log(`(c) scheduler against ${n} simulated hosts (compute host records + placement providers, no processes)`);
    const reg = await registerHosts(tc.cloud, n);
    console.log(`  register ${n} hosts (as PUT /agent/v1/hosts/{host})        ${fmt(reg.t)}`);
    const decisions = Number(values.decisions);
    for (const [c, label] of [[1, 'sequential'], [8, '8 concurrent']] as const) {
      await heartbeatAll(tc.cloud, reg.names);
      const f = await scheduleDecisions(tc.cloud, who, decisions, c, label);
      console.log(`  ${decisions} decisions, ${label.padEnd(13)} (filter+candidates+weigh+claim) ${fmt(f.t)}  ${f.distinctHosts} hosts chosen`);
    }
    console.log(`  load average ${load()}`);
  }

  if (parts.has('b')) {
    console.log('(b) GET /servers/detail as admin, own project (rows inserted through the server store, no guests)');
    const hosts = (await tc.cloud.compute.service.listHosts()).map((h) => h.name);
    let have = 0;
    for (const size of values.sizes.split(',').map(Number)) {
      await fillServers(tc.cloud, who, have, size, hosts.length ? hosts : ['bench-host']);
      have = size;
      const figs = await listLatency(tc.url, who, size, {
        iterations: size >= 10_000 ? Math.max(5, Number(values.iterations) >> 1) : Number(values.iterations),
        queries: ['', '?limit=1000'], microversions: ['2.1', '2.73'],
      });
      for (const f of figs) {
        console.log(`  ${String(f.servers).padStart(6)} servers, ${f.query.padEnd(12)} @${f.microversion.padEnd(5)} → ${String(f.returned).padStart(5)} servers, ${(f.bytes / 1024).toFixed(0).padStart(6)} KiB${f.next ? ', next link' : ''}  ${fmt(f.t)}`);
      }
    }
    console.log(`  load average ${load()}`);
  }
} finally {
  await tc.stop();
}
process.exit(0);
