// bench/compute parts (b) and (c), shared with test/compute/bench.test.ts, which runs them at a
// small size so that the bench cannot rot: (b) GET /servers/detail latency with N servers in the
// database (rows bulk-inserted through the server store, no guests), (c) scheduler decisions per
// second against N simulated hosts (registered as an agent would, no processes).
import { randomUUID } from 'node:crypto';
import { nowIso } from '../src/core/ids.js';
import type { Cloud } from '../src/server.js';
import { instanceToRow, type InstanceRecord } from '../src/compute/store.js';
import type { ServerRecord } from '../src/compute/servers/store.js';
import { timed, type Timing } from './timing.js';

export { median, timed, type Timing } from './timing.js';

export const fmt = (t: Timing) =>
  `p50 ${t.p50.toFixed(1).padStart(7)} ms  p95 ${t.p95.toFixed(1).padStart(7)} ms  ${t.perSec.toFixed(1).padStart(7)}/s  cpu ${t.cpuMsPerOp.toFixed(1).padStart(6)} ms/op`;

export interface Caller { token: string; projectId: string; userId: string }

/** A project-scoped admin token (the bench's API caller). */
export async function adminToken(url: string, password: string): Promise<Caller> {
  const r = await fetch(`${url}/identity/v3/auth/tokens`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ auth: {
      identity: { methods: ['password'], password: { user: { name: 'admin', domain: { id: 'default' }, password } } },
      scope: { project: { name: 'admin', domain: { id: 'default' } } },
    } }),
  });
  if (r.status !== 201) throw new Error(`login failed: ${r.status} ${await r.text()}`);
  const body = await r.json() as { token: { project: { id: string }; user: { id: string } } };
  return { token: r.headers.get('x-subject-token')!, projectId: body.token.project.id, userId: body.token.user.id };
}

/** Inserts servers (and their instances, running) until the caller's project has `target` of them. */
export async function fillServers(cloud: Cloud, who: Caller, have: number, target: number, hosts: string[]): Promise<void> {
  const store = cloud.compute.nova.servers.store;
  const flavor = await cloud.compute.nova.flavors.get('42', { admin: true });
  const now = nowIso();
  const BATCH = 200;
  for (let done = have; done < target;) {
    const servers: ServerRecord[] = [];
    const insts: InstanceRecord[] = [];
    for (let i = 0; i < Math.min(BATCH, target - done); i++) {
      const id = randomUUID();
      const n = done + i;
      const host = hosts[n % hosts.length]!;
      servers.push({
        id, projectId: who.projectId, userId: who.userId, name: `bench-${n}`, description: null, hostname: `bench-${n}`,
        imageId: 'bench-image', flavor: { id: flavor.id, name: flavor.name, vcpus: flavor.vcpus, ram: flavor.ram, disk: flavor.disk, ephemeral: flavor.ephemeral, swap: flavor.swap, extraSpecs: flavor.extraSpecs },
        keyName: null, keyData: null, userData: null, metadata: { role: 'bench', n: String(n) }, configDrive: false,
        requestedAz: null, availabilityZone: 'nova', host, vmState: 'active', taskState: null, task: null, fault: null,
        request: { hints: {}, triedHosts: [], attempts: 1, imageProperties: {} }, reservationId: `r-${id.slice(0, 8)}`, launchIndex: 0,
        locked: false, lockedReason: null, lockedBy: null, accessIpv4: null, accessIpv6: null,
        createdAt: now, updatedAt: now, launchedAt: now, terminatedAt: null, deleted: false, tags: n % 10 ? [] : ['tagged'],
      });
      insts.push({
        id, projectId: who.projectId, userId: who.userId, name: `bench-${n}`, host, imageId: 'bench-image', vcpus: flavor.vcpus,
        ramMb: flavor.ram, diskGb: flavor.disk, keys: [], hostname: `bench-${n}`, metadata: {}, nics: [], desiredPower: 'running',
        deleted: false, task: null, taskState: null, generation: 1, powerState: 'running', observedGeneration: 1, pid: null,
        diskBytes: null, busy: false, fault: null, lastTaskResult: null, lastEvent: null, observedAt: now, createdAt: now, updatedAt: now,
        peer: null, diskSource: null,
      });
    }
    await store.db.transaction().execute(async (tx) => {
      await store.insertMany(servers, tx);
      await tx.insertInto('compute_instances').values(insts.map(instanceToRow)).execute();
    });
    done += servers.length;
  }
}

export interface ListFigure { servers: number; query: string; microversion: string; returned: number; bytes: number; next: boolean; t: Timing }

/** GET /servers/detail `iterations` times per query and microversion. */
export async function listLatency(url: string, who: Caller, servers: number, opts: { iterations: number; queries: string[]; microversions: string[] }): Promise<ListFigure[]> {
  const out: ListFigure[] = [];
  for (const mv of opts.microversions) {
    for (const query of opts.queries) {
      let returned = 0; let bytes = 0; let next = false;
      const get = async () => {
        const r = await fetch(`${url}/compute/v2.1/servers/detail${query}`, { headers: { 'X-Auth-Token': who.token, 'OpenStack-API-Version': `compute ${mv}` } });
        const text = await r.text();
        if (r.status !== 200) throw new Error(`GET /servers/detail${query}: ${r.status} ${text.slice(0, 500)}`);
        const body = JSON.parse(text) as { servers: unknown[]; servers_links?: unknown[] };
        returned = body.servers.length; bytes = text.length; next = !!body.servers_links?.length;
      };
      await get(); // warm-up (statement caches, JIT)
      const t = await timed(opts.iterations, get);
      out.push({ servers, query: query || '(no limit)', microversion: mv, returned, bytes, next, t });
    }
  }
  return out;
}

export const hostRegistration = (name: string) => ({
  hostname: name, vcpus: 32, memoryMb: 131072, diskGb: 2000, cpuModel: 'bench', hypervisorType: 'fake' as const,
  accelerator: 'TCG' as const, hypervisorVersion: '0', agentVersion: 'bench',
});

/** Registers `n` simulated hosts as their agents would (compute host record + heartbeat), then mirrors them into placement. */
export async function registerHosts(cloud: Cloud, n: number, prefix = 'sim'): Promise<{ names: string[]; t: Timing }> {
  const svc = cloud.compute.service;
  const names = Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(5, '0')}`);
  const t = await timed(n, async (i) => { await svc.registerHost(names[i]!, hostRegistration(names[i]!)); });
  await cloud.compute.nova.scheduler.syncProviders();
  return { names, t };
}

/** Keeps the simulated hosts alive (the scheduler skips hosts silent for 60 s). */
export async function heartbeatAll(cloud: Cloud, names: string[]): Promise<void> {
  for (const h of names) await cloud.compute.service.heartbeat(h, {});
}

export interface ScheduleFigure { label: string; t: Timing; distinctHosts: number; consumers: string[] }

/** Scheduler decisions (filters, allocation candidates, weighing, atomic claim in placement). */
export async function scheduleDecisions(cloud: Cloud, who: Caller, n: number, concurrency: number, label: string): Promise<ScheduleFigure> {
  const scheduler = cloud.compute.nova.scheduler;
  const chosen = new Set<string>();
  const consumers: string[] = [];
  const t = await timed(n, async () => {
    const serverId = randomUUID();
    consumers.push(serverId);
    const d = await scheduler.place({
      serverId, projectId: who.projectId, userId: who.userId,
      resources: { VCPU: 1, MEMORY_MB: 2048, DISK_GB: 20 }, flavorExtraSpecs: {}, imageProperties: {}, triedHosts: [],
    });
    if ('error' in d) throw new Error(d.error);
    chosen.add(d.host);
  }, concurrency);
  return { label, t, distinctHosts: chosen.size, consumers };
}
