// The host agent: registers its host, adopts the guests already running, watches the controller
// for the desired state of its host (long poll, no broker), converges, reports, heartbeats.
// Guests are daemonized QEMUs, not children: stopping or killing the agent leaves them running.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { createLogger } from '../core/log.js';
import { ControllerClient, ControllerError } from './client.js';
import { hostFacts, hostLoad } from './hostinfo.js';
import { ImageCache } from './images.js';
import { chooseAccelerator, type ProbeResult } from './hypervisor/qemu/accel.js';
import { QemuDriver } from './hypervisor/qemu/driver.js';
import type { MigrationListen } from './hypervisor/driver.js';
import { claimOwnership, isAlive } from '../core/process.js';
import { Reconciler, markResumeOnStart } from './reconcile.js';
import { NetAgent, networkLayout, type NetworkLayout } from './netagent.js';
import type { AgentCall, CallResult } from '../compute/agent-protocol.js';

export const AGENT_VERSION = '0.1.0';

export interface AgentOptions {
  controllerUrl: string;
  dataDir: string;
  token: string;
  /** Host name registered with the controller (default: the machine's hostname). */
  hostName?: string;
  accel?: 'auto' | 'kvm' | 'tcg';
  /** Image the KVM probe boots (default: the repository's test guest image). */
  probeImage?: string;
  log?: Logger;
  observeIntervalMs?: number;
  heartbeatIntervalMs?: number;
  powerOffTimeoutSec?: number;
  /** Data plane layout (default: the all-in-one one, prefix "stratus-", provider namespace "stratus-provider"). */
  network?: NetworkLayout | false;
  /** This host's VXLAN endpoint (with `network.underlay`); null: no VXLAN. */
  underlayIp?: string | null;
  /** Address and ports other hosts reach for live migrations to this host (default 127.0.0.1, 49152-49215). */
  migrationListen?: MigrationListen;
  /** Guests' VNC servers listen on TCP at this address (controllers on other machines); default: unix sockets. */
  consoleListen?: string;
}

export interface RunningAgent {
  host: string;
  accel: ProbeResult;
  driver: QemuDriver;
  reconciler: Reconciler;
  net?: NetAgent;
  stop(): Promise<void>;
}

export function agentDirs(dataDir: string) {
  const root = join(dataDir, 'agent');
  return {
    root, instances: join(root, 'instances'), images: join(root, 'images'), state: join(root, 'state'),
    snapshots: join(root, 'snapshots'), transfers: join(root, 'transfers'), pid: join(root, 'agent.pid'),
  };
}

/** The test guest image built by scripts/build-guest-image.sh, relative to this installation. */
export function defaultProbeImage(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'build', 'guest', 'stratus-test.qcow2');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startAgent(o: AgentOptions): Promise<RunningAgent> {
  const log = o.log ?? createLogger(process.env.STRATUS_LOG_LEVEL ?? 'info', 'stratus-agent');
  const dirs = agentDirs(o.dataDir);
  for (const d of [dirs.instances, dirs.images, dirs.state, dirs.snapshots, dirs.transfers]) mkdirSync(d, { recursive: true, mode: 0o700 });
  // One agent per data dir: refuses to start next to a live one.
  claimOwnership(dirs.pid, 'agent', (pid) => `another agent (pid ${pid}) already manages ${o.dataDir}`);
  const host = o.hostName ?? hostname();

  const accel = await chooseAccelerator({ mode: o.accel ?? 'auto', probeImage: o.probeImage ?? defaultProbeImage(), log });
  log.info({ accel: accel.accel, reason: accel.reason }, 'accelerator chosen');
  // A host named explicitly may share the machine with other agents (tests): its own cgroup slice.
  const driver = new QemuDriver({
    instancesDir: dirs.instances, accel: accel.accel, log, vncListen: o.consoleListen,
    ...(o.hostName && o.hostName !== hostname() ? { cgroupTag: o.hostName } : {}),
  });
  log.info({ cgroups: driver.cgroupRoot ?? 'unavailable: guests tracked by pid only' }, 'guest tracking');

  // Adopt: guests already running (pid file + /proc check) are left exactly as they are.
  for (const g of await driver.list()) {
    if (g.pid) log.info({ instance: g.id, pid: g.pid, powerState: g.powerState }, 'adopted running guest');
    else log.info({ instance: g.id, powerState: g.powerState }, 'found stopped guest');
  }

  const client = new ControllerClient(o.controllerUrl, o.token, host);
  const images = new ImageCache(dirs.images, client, log);
  const net = o.network === false ? undefined : new NetAgent({
    controllerUrl: o.controllerUrl, token: o.token, host, dataDir: o.dataDir, log: log.child({ part: 'network' }),
    layout: o.network ?? networkLayout({}), underlayIp: o.underlayIp ?? null,
  });
  const reconciler = new Reconciler({
    // A started guest's tap waits, down, in the root namespace until the data plane plugs it.
    afterConverge: () => net?.kick(),
    driver, stateDir: dirs.state, snapshotDir: dirs.snapshots, log,
    ensureImage: (id) => images.ensure(id),
    report: (instances) => client.report(instances),
    powerOffTimeoutSec: o.powerOffTimeoutSec,
    transfers: {
      dir: dirs.transfers,
      upload: (id, migrationId, path) => client.putDisk(id, migrationId, path),
      download: (id, disk, dest) => client.getDisk(id, dest, disk.sha256),
      uploadSnapshot: (imageId, path) => client.putSnapshot(imageId, path),
    },
    migrationListen: o.migrationListen,
    portsPlugged: net ? (ids) => net.waitPlugged(ids, 120_000) : undefined,
  });

  let stopping = false;
  const abort = new AbortController();
  const facts = await hostFacts(o.dataDir, driver.binary);
  const register = async () => {
    for (let attempt = 1; !stopping; attempt++) {
      try {
        await client.register({ ...facts, hypervisorType: 'QEMU', accelerator: accel.accel, agentVersion: AGENT_VERSION });
        log.info({ host, controller: o.controllerUrl }, 'registered with the controller');
        return;
      } catch (e) {
        if (e instanceof ControllerError && e.status === 401) log.error('the controller refused the agent token');
        else if (attempt === 1 || attempt % 30 === 0) log.warn({ err: (e as Error).message }, 'controller not reachable yet');
        await sleep(Math.min(5000, 200 * attempt));
      }
    }
  };
  await register();
  await net?.start();

  // Calls stay listed until answered; answer each once.
  const answered = new Set<string>();
  const answer = (call: AgentCall) => {
    if (answered.has(call.id)) return;
    answered.add(call.id);
    if (answered.size > 1000) answered.delete(answered.values().next().value!);
    void (async (): Promise<CallResult> => {
      try {
        if (call.type === 'console') {
          const size = (await driver.readConsole(call.instanceId, 0, 0)).size;
          const offset = call.offset < 0 ? Math.max(0, size + call.offset) : call.offset;
          const c = await driver.readConsole(call.instanceId, offset, call.maxBytes);
          return { ok: true, result: { data: c.data.toString('base64'), next: c.next, size: c.size } };
        }
        return { ok: true, result: { ...(await driver.vncAddress(call.instanceId)) } };
      } catch (e) {
        return { ok: false, error: (e as Error).message };
      }
    })().then((r) => client.completeCall(call.id, r))
      .catch((e) => log.warn({ call: call.id, err: (e as Error).message }, 'answering a call failed'));
  };

  const watchLoop = (async () => {
    let since = -1;
    let failures = 0;
    while (!stopping) {
      try {
        const state = await client.watch(since, 25, abort.signal);
        failures = 0;
        if (state.revision !== since) {
          since = state.revision;
          reconciler.setDesired(state);
          for (const call of state.calls ?? []) answer(call);
        }
      } catch (e) {
        if (stopping) break;
        failures++;
        if (e instanceof ControllerError && e.status === 404) await register(); // controller lost our host (new database)
        else if (failures === 1 || failures % 30 === 0) log.warn({ err: (e as Error).message }, 'watch failed; retrying');
        await sleep(Math.min(5000, 250 * failures));
      }
    }
  })();

  const every = (ms: number, fn: () => Promise<void>) => (async () => {
    while (!stopping) {
      await fn().catch((e) => log.warn({ err: (e as Error).message }, 'periodic task failed'));
      for (let waited = 0; waited < ms && !stopping; waited += 100) await sleep(100);
    }
  })();
  const observeLoop = every(o.observeIntervalMs ?? 2000, () => reconciler.observe());
  const heartbeatLoop = every(o.heartbeatIntervalMs ?? 10_000, async () => {
    const all = await driver.list();
    await client.heartbeat({
      ...hostLoad(), orphans: await reconciler.orphans(),
      usedDiskBytes: all.reduce((s, g) => s + g.diskBytes, 0),
    });
  });

  return {
    host, accel, driver, reconciler, net,
    async stop() {
      if (stopping) return;
      stopping = true;
      abort.abort();
      reconciler.stop();
      await Promise.all([watchLoop, observeLoop, heartbeatLoop, net?.stop()]);
      // Let a step in progress finish (bounded), so its record is written; guests keep running.
      await Promise.race([reconciler.idle(), sleep(20_000)]);
      rmSync(dirs.pid, { force: true });
      log.info('agent stopped; guests left running');
    },
  };
}

/**
 * `stratus down`: powers every running guest off cleanly (ACPI, then hard after the timeout) and
 * marks it to come back on the next start; `purge` destroys every guest and file instead.
 */
export async function shutdownGuests(dataDir: string, opts: { purge?: boolean; timeoutSec?: number; log?: Logger } = {}): Promise<{ stopped: string[]; destroyed: string[] }> {
  const dirs = agentDirs(dataDir);
  const log = opts.log ?? createLogger('warn', 'stratus-agent');
  if (!existsSync(dirs.instances)) return { stopped: [], destroyed: [] };
  const driver = new QemuDriver({ instancesDir: dirs.instances, accel: 'TCG', log });
  const guests = await driver.list();
  const stopped: string[] = [];
  const destroyed: string[] = [];
  await Promise.all(guests.map(async (g) => {
    if (opts.purge) {
      await driver.destroy(g.id);
      destroyed.push(g.id);
      return;
    }
    if (!g.pid) return;
    if (g.powerState === 'paused') await driver.suspend(g.id); // keeps its memory; comes back paused
    else await driver.powerOff(g.id, opts.timeoutSec ?? 30);
    markResumeOnStart(dirs.state, g.id);
    stopped.push(g.id);
  }));
  return { stopped, destroyed };
}
