#!/usr/bin/env node
// What the agents' waiting long polls cost the controller: H registered hosts, a network with
// ports on each, then every host long-polls its state (as src/agent/netagent.ts does) for D
// seconds while nothing changes. Prints the controller's CPU time and the host states computed.
//   node bench/netagent-poll.mjs [--dist dist] [--hosts 50] [--ports 4] [--seconds 20]
// --dist: a compiled tree (dist of this checkout, or another checkout's, to compare versions).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';

const arg = (n, d) => { const i = process.argv.indexOf(`--${n}`); return i > 0 ? process.argv[i + 1] : d; };
const dist = resolve(arg('dist', 'dist'));
const H = Number(arg('hosts', '50')), P = Number(arg('ports', '4')), S = Number(arg('seconds', '20'));
const { startCloud } = await import(join(dist, 'src/server.js'));
const { loadConfig } = await import(join(dist, 'src/core/config.js'));
const { createLogger } = await import(join(dist, 'src/core/log.js'));
const { projectCaller } = await import(join(dist, 'src/network/service.js'));

const dir = mkdtempSync(join(tmpdir(), 'stratus-bench-netpoll-'));
const cloud = await startCloud(loadConfig(dir, { listenHost: '127.0.0.1', listenPort: 0, startAgent: false }),
  { log: createLogger('warn'), skipClientConfig: true });
try {
  const token = cloud.compute.agentToken();
  const call = (path, init = {}) => fetch(`${cloud.url}/network/agent/v1${path}`,
    { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });
  const svc = cloud.network.service;
  const project = (await cloud.identity.findProject('demo')).id;
  const caller = projectCaller(project);
  for (let h = 0; h < H; h++) await call(`/hosts/bench${h}`, { method: 'PUT', body: JSON.stringify({ underlayIp: `172.16.${h >> 8}.${(h & 255) + 1}` }) });
  const net = await svc.createNetwork(caller, { name: 'bench' });
  await svc.createSubnet(caller, { network_id: net.id, cidr: '10.90.0.0/20' });
  for (let h = 0; h < H; h++) {
    for (let p = 0; p < P; p++) await svc.createServerPort({ projectId: project, serverId: randomUUID(), networkId: net.id, hostId: `bench${h}` });
  }
  // Warm up: every host has its current revision, as a long-running agent would.
  const revs = await Promise.all(Array.from({ length: H }, async (_, h) => (await (await call(`/hosts/bench${h}/state`)).json()).revision));
  const t0 = performance.now();
  const single = await (await call('/hosts/bench0/state')).json();
  const oneMs = performance.now() - t0;

  const before = cloud.netagent.computedStates;
  const c0 = process.cpuUsage();
  const end = Date.now() + S * 1000;
  let polls = 0;
  await Promise.all(revs.map(async (rev, h) => {
    while (Date.now() < end) {
      const wait = Math.max(1, Math.min(25, Math.ceil((end - Date.now()) / 1000)));
      const d = await (await call(`/hosts/bench${h}/state?since=${rev}&wait=${wait}`)).json();
      polls++;
      if (d.revision !== rev) throw new Error('state changed during the bench');
    }
  }));
  const c = process.cpuUsage(c0);
  const cpu = (c.user + c.system) / 1e6;
  console.log(JSON.stringify({
    dist, hosts: H, portsPerHost: P, seconds: S, polls, stateBytes: JSON.stringify(single.state).length,
    oneStateRequestMs: Math.round(oneMs), controllerCpuSeconds: Number(cpu.toFixed(2)),
    cpuPercent: Number((100 * cpu / S).toFixed(1)),
    statesComputed: typeof before === 'number' ? cloud.netagent.computedStates - before : 'not counted by this version',
  }));
} finally {
  await cloud.stop();
  rmSync(dir, { recursive: true, force: true });
}
