// bench/compute part (a): POST /servers → ACTIVE through the whole control plane and a real agent
// process (what users run), against the agent's own QEMU driver spawning the same guest directly
// in this process — same image file (the agent's cached base), same flavor size, same config
// drive content, same driver, so the same QEMU command line.
//
// Readiness points, the same on both sides:
//   running   — QEMU started and QMP says the guest runs. The agent reports this and the server
//               turns ACTIVE (via API: until GET /servers/{id} says ACTIVE; direct: until the
//               driver's powerOn returns).
//   ssh ready — the guest's `STRATUS-GUEST: ssh ready` console marker (dropbear listening): what
//               a user waits for, and the real target (within 1.1x of raw QEMU).
import { readFileSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { ConfigDriveSpec } from '../src/agent/hypervisor/driver.js';
import { QemuDriver } from '../src/agent/hypervisor/qemu/driver.js';
import { guestPaths } from '../src/agent/hypervisor/qemu/cmdline.js';
import { chooseAccelerator } from '../src/agent/hypervisor/qemu/accel.js';
import { createLogger } from '../src/core/log.js';
import type { TestCloud } from '../test/helpers/cloud.js';
import { TEST_IMAGE, testAgent } from '../test/helpers/agent.js';
import { median, type Caller } from './compute-parts.js';

const SSH_READY = 'STRATUS-GUEST: ssh ready';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const HOST = 'bench-host';
const FLAVOR = '42'; // m1.nano: 1 vCPU, 192 MiB, 1 GiB

async function untilFile(file: string, text: string, t0: number, timeoutMs = 300_000): Promise<number> {
  for (;;) {
    try { if (readFileSync(file, 'utf8').includes(text)) return performance.now() - t0; } catch { /* not yet */ }
    if (performance.now() - t0 > timeoutMs) throw new Error(`no "${text}" in ${file} after ${timeoutMs} ms`);
    await sleep(10);
  }
}

interface Round { api: { active: number; ssh: number; steps: { spawning: number; qemu: number; converged: number } }; direct: { running: number; ssh: number } }

export async function bootBench(tc: TestCloud, who: Caller, opts: { rounds: number }): Promise<void> {
  const http = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(tc.url + path, { method, headers: { 'content-type': 'application/json', 'X-Auth-Token': who.token, 'OpenStack-API-Version': 'compute 2.37' }, ...(body ? { body: JSON.stringify(body) } : {}) });
    const text = await r.text();
    return { status: r.status, json: text ? JSON.parse(text) : undefined };
  };
  const images = (await http('GET', '/image/v2/images?name=stratus-test')).json?.images as { id: string }[] | undefined;
  if (!images?.length) throw new Error('no stratus-test image (the image service bootstraps it from build/guest/stratus-test.qcow2)');
  const imageId = images[0]!.id;
  const agent = testAgent(tc, { host: HOST });
  const log = createLogger('warn');
  const accel = await chooseAccelerator({ mode: 'auto', probeImage: TEST_IMAGE, log });
  const direct = new QemuDriver({ instancesDir: join(tc.dataDir, 'direct', 'instances'), accel: accel.accel, log });
  const agentInstances = join(tc.dataDir, 'agent', 'instances');
  let configDrive: ConfigDriveSpec | undefined;
  const rows: Round[] = [];
  try {
    await agent.start();
    console.log(`(a) boot: image stratus-test (${imageId}), flavor m1.nano, no NIC (config drive), accelerator ${accel.accel}; agent = \`stratus agent\` child process`);

    // Where the API path's time goes, from the agent's own log (epoch ms per line).
    const agentTimes = (id: string, wall0: number) => {
      const at: Record<string, number> = {};
      for (const line of agent.log().split('\n')) {
        if (!line.includes(id)) continue;
        try {
          const j = JSON.parse(line) as { time: number; msg: string; instance?: string };
          if (j.instance === id && at[j.msg] === undefined) at[j.msg] = j.time - wall0;
        } catch { /* not a log line */ }
      }
      return { spawning: at.spawning ?? NaN, qemu: at['started qemu'] ?? NaN, converged: at.converged ?? NaN };
    };

    const viaApi = async (round: number) => {
      const wall0 = Date.now();
      const t0 = performance.now();
      const r = await http('POST', '/compute/v2.1/servers', { server: { name: `boot-${round}`, imageRef: imageId, flavorRef: FLAVOR, networks: 'none' } });
      if (r.status !== 202) throw new Error(`create: ${r.status} ${JSON.stringify(r.json)}`);
      const id = r.json.server.id as string;
      for (;;) {
        const s = (await http('GET', `/compute/v2.1/servers/${id}`)).json.server;
        if (s.status === 'ACTIVE') break;
        if (s.status === 'ERROR') throw new Error(`server ERROR: ${JSON.stringify(s.fault)}\n${agent.log().slice(-3000)}`);
        if (performance.now() - t0 > 300_000) throw new Error(`server not ACTIVE after 300 s: ${s.status}/${s['OS-EXT-STS:task_state']}\n${agent.log().slice(-3000)}`);
        await sleep(10);
      }
      const active = performance.now() - t0;
      const steps = agentTimes(id, wall0);
      // The config drive the agent got, reused for the direct boot (its uuid aside).
      if (!configDrive) {
        const state = await tc.cloud.compute.service.watch(HOST, -1, 0);
        configDrive = state.instances.find((i) => i.id === id)?.configDrive;
      }
      const ssh = await untilFile(guestPaths(agentInstances, id).console, SSH_READY, t0);
      const del = await http('DELETE', `/compute/v2.1/servers/${id}`);
      if (del.status !== 204) throw new Error(`delete: ${del.status}`);
      while ((await http('GET', `/compute/v2.1/servers/${id}`)).status !== 404) await sleep(100);
      return { active, ssh, steps };
    };

    const viaDriver = async () => {
      const id = randomUUID();
      const meta = JSON.parse(readFileSync(join(tc.dataDir, 'agent', 'images', `${imageId}.json`), 'utf8')) as { path: string; format: 'qcow2' | 'raw' };
      const drive: ConfigDriveSpec = { ...configDrive!, metaData: { ...configDrive!.metaData, uuid: id } };
      const t0 = performance.now();
      await direct.spawn({ id, name: 'direct', vcpus: 1, ramMb: 192, diskGb: 1, nics: [] }, { path: meta.path, format: meta.format }, drive, { start: false });
      await direct.powerOn(id);
      const running = performance.now() - t0;
      const ssh = await untilFile(guestPaths(join(tc.dataDir, 'direct', 'instances'), id).console, SSH_READY, t0);
      await direct.destroy(id);
      return { running, ssh };
    };

    for (let round = 1; round <= opts.rounds; round++) {
      // Round 1 goes through the API first: it fills the agent's image cache the direct boot reuses.
      let a: Round['api']; let d: Round['direct'];
      if (round % 2) { a = await viaApi(round); d = await viaDriver(); } else { d = await viaDriver(); a = await viaApi(round); }
      rows.push({ api: a, direct: d });
      console.log(`  round ${round}: running/ACTIVE: API ${a.active.toFixed(0)} ms (agent got it at ${a.steps.spawning.toFixed(0)}, QEMU started ${a.steps.qemu.toFixed(0)}, converged ${a.steps.converged.toFixed(0)}), direct ${d.running.toFixed(0)} ms, ratio ${(a.active / d.running).toFixed(2)}`
        + ` | ssh ready: API ${a.ssh.toFixed(0)} ms, direct ${d.ssh.toFixed(0)} ms, ratio ${(a.ssh / d.ssh).toFixed(2)}`
        + `${round === 1 ? ' (API: cold image cache)' : ''} | load ${loadavg()[0]!.toFixed(1)}`);
    }
    const warm = rows.length > 1 ? rows.slice(1) : rows;
    const m = (f: (r: Round) => number) => median(warm.map(f));
    console.log(`  median of ${warm.length} warm round(s): ACTIVE ${m((r) => r.api.active).toFixed(0)} ms vs direct running ${m((r) => r.direct.running).toFixed(0)} ms`
      + ` (control plane overhead ${(m((r) => r.api.active) - m((r) => r.direct.running)).toFixed(0)} ms, ratio ${(m((r) => r.api.active) / m((r) => r.direct.running)).toFixed(2)});`
      + ` ssh ready ${m((r) => r.api.ssh).toFixed(0)} ms vs ${m((r) => r.direct.ssh).toFixed(0)} ms, ratio ${(m((r) => r.api.ssh) / m((r) => r.direct.ssh)).toFixed(2)}`);
    console.log(`  API path, median: POST → agent has the instance ${m((r) => r.api.steps.spawning).toFixed(0)} ms (API, quota, scheduler, claim, desired state, long-poll wake-up);`
      + ` agent work to converged ${m((r) => r.api.steps.converged - r.api.steps.spawning).toFixed(0)} ms (direct: ${m((r) => r.direct.running).toFixed(0)} ms);`
      + ` converged → ACTIVE seen ${m((r) => r.api.active - r.api.steps.converged).toFixed(0)} ms (report, server reconciler, 10 ms polling)`);
  } finally {
    for (const g of await direct.list()) await direct.destroy(g.id).catch(() => undefined);
    rmSync(join(tc.dataDir, 'direct'), { recursive: true, force: true });
    await agent.cleanup();
  }
}

