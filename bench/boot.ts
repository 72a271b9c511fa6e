// bench/boot: time from a spawn request (compute service → agent → QEMU) to the test guest's
// first console marker, against the same qemu command line started by hand, in the same run.
//   node dist/bench/boot.js [--rounds N]
// Both sides boot the same image with the same arguments (accelerator, devices, config drive);
// the difference is the agent's work: watch wake-up, image cache check, overlay and config
// drive creation, daemonize, cgroup, QMP.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import type { InstanceSpec } from '../src/agent/hypervisor/driver.js';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/core/config.js';
import { createLogger } from '../src/core/log.js';
import { startCloud } from '../src/server.js';
import { FileImageSource } from '../src/compute/images.js';
import { startAgent } from '../src/agent/main.js';
import { guestPaths, qemuArgs } from '../src/agent/hypervisor/qemu/cmdline.js';
import { run } from '../src/agent/exec.js';
import { median } from './timing.js';

const MARKER = 'STRATUS-GUEST: ';
const IMAGE = join(process.cwd(), 'build', 'guest', 'stratus-test.qcow2');

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' } } });
const rounds = Number(values.rounds);

async function untilMarker(file: string, timeoutMs = 300_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try { if (readFileSync(file, 'utf8').includes(MARKER)) return; } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`no marker in ${file}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}


const T0 = performance.now();
const phase = (what: string) => { if (process.env.BENCH_VERBOSE) console.error(`[${((performance.now() - T0) / 1000).toFixed(1)} s] ${what}`); };

async function main(): Promise<void> {
  if (!existsSync(IMAGE)) throw new Error(`${IMAGE} missing: run scripts/build-guest-image.sh`);
  const dataDir = mkdtempSync(join(tmpdir(), 'stratus-bench-'));
  const log = createLogger('silent');
  const cloud = await startCloud(loadConfig(dataDir, { listenHost: '127.0.0.1', listenPort: 0, startAgent: false }), { log, skipClientConfig: true });
  phase('controller up');
  const images = new FileImageSource();
  images.add('bench-image', IMAGE);
  cloud.compute.setImageSource(images);
  const agent = await startAgent({ controllerUrl: cloud.url, dataDir, token: cloud.compute.agentToken(), hostName: 'bench-host', log, probeImage: IMAGE });
  phase('agent up');
  const svc = cloud.compute.service;
  const handDir = join(dataDir, 'by-hand');
  const rows: { round: number; agentMs: number; handMs: number; startedMs: number }[] = [];
  const pids: number[] = [];
  try {
    console.log(`accelerator: ${agent.accel.accel} (${agent.accel.reason})`);
    for (let round = 1; round <= rounds; round++) {
      let inst!: { id: string };
      const viaAgent = async () => {
        // Through the agent.
        const t0 = performance.now();
        inst = await svc.createInstance({ projectId: 'bench', name: `bench-${round}`, imageId: 'bench-image', vcpus: 1, ramMb: 256, diskGb: 0, host: 'bench-host',
          keys: [{ name: 'k', publicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDbench bench' }] });
        const p = agent.driver.paths(inst.id);
        let startedMs = 0;
        const watchPid = setInterval(() => { if (!startedMs && existsSync(p.pid)) startedMs = performance.now() - t0; }, 5);
        await untilMarker(p.console);
        clearInterval(watchPid);
        const agentMs = performance.now() - t0;
        const spec = (await agent.driver.getSpec(inst.id))!;
        await svc.deleteInstance(inst.id);
        await svc.waitFor(inst.id, (i) => i === undefined, 60_000);
        phase(`round ${round}: agent guest deleted`);
        return { agentMs, startedMs, spec };
      };
      const byHand = async (spec: InstanceSpec, id: string) => {
        // By hand: the same arguments, over a copy of the same files, QEMU in the foreground.
        rmSync(handDir, { recursive: true, force: true });
        mkdirSync(handDir, { recursive: true });
        const hp = { ...guestPaths(handDir, id) };
        mkdirSync(hp.dir, { recursive: true });
        const base = readFileSync(join(dataDir, 'agent', 'images', 'bench-image.json'), 'utf8');
        await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', (JSON.parse(base) as { path: string }).path, hp.disk]);
        await buildIso(hp.configDrive, id);
        const args = qemuArgs(spec, hp, { accel: agent.accel.accel, hasConfigDrive: true, foreground: true });
        const t1 = performance.now();
        const child = spawn('qemu-system-x86_64', args, { stdio: 'ignore' });
        pids.push(child.pid!);
        await untilMarker(hp.console);
        const handMs = performance.now() - t1;
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
        return handMs;
      };
      // Alternate the order, so neither side always runs right after the other's guest.
      let agentMs: number; let startedMs: number; let handMs: number;
      if (round % 2 === 1) {
        const a = await viaAgent();
        ({ agentMs, startedMs } = a);
        handMs = await byHand(a.spec, inst.id);
      } else {
        const spec = { id: randomUUID(), name: 'bench', vcpus: 1, ramMb: 256, diskGb: 0, nics: [] };
        handMs = await byHand(spec, spec.id);
        ({ agentMs, startedMs } = await viaAgent());
      }
      rows.push({ round, agentMs, handMs, startedMs });
      console.log(`round ${round}: agent ${agentMs.toFixed(0)} ms (QEMU running after ${startedMs.toFixed(0)} ms), by hand ${handMs.toFixed(0)} ms, ratio ${(agentMs / handMs).toFixed(2)}${round === 1 ? ' (agent: cold image cache)' : ''}`);
    }
    const warm = rows.length > 1 ? rows.slice(1) : rows;
    const a = median(warm.map((r) => r.agentMs));
    const h = median(warm.map((r) => r.handMs));
    const o = median(warm.map((r) => r.startedMs));
    console.log(`median (warm cache, ${warm.length} rounds): agent ${a.toFixed(0)} ms (agent work before QEMU runs: ${o.toFixed(0)} ms), by hand ${h.toFixed(0)} ms, ratio ${(a / h).toFixed(2)}`);
  } finally {
    for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    phase('cleaning up');
    for (const g of await agent.driver.list()) await agent.driver.destroy(g.id);
    await agent.stop();
    // The in-process agent's aborted long poll leaves a keep-alive connection the server waits on.
    cloud.app.server.closeAllConnections();
    await cloud.stop();
    rmSync(dataDir, { recursive: true, force: true });
    phase('done');
  }
}

async function buildIso(dest: string, id: string): Promise<void> {
  const { buildConfigDrive } = await import('../src/agent/hypervisor/qemu/configdrive.js');
  await buildConfigDrive({ metaData: { uuid: id, name: 'bench', hostname: 'bench', public_keys: { k: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDbench bench' } } }, dest);
}

await main();
process.exit(0);
