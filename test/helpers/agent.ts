// A host agent for a test cloud: a real `stratus agent` child process on the cloud's data dir,
// plus the test guest image served to it. Guests it starts are killed by pid in `cleanup()`,
// which tests call in after() even when they fail.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileImageSource } from '../../src/compute/images.js';
import { dataplaneFor, layoutFile, readLayout } from '../../src/agent/netagent.js';
import type { TestCloud } from './cloud.js';
import { cgroupRoot, guestCgroup, removeCgroup } from '../../src/agent/hypervisor/qemu/process.js';

export const TEST_IMAGE = join(process.cwd(), 'build', 'guest', 'stratus-test.qcow2');
export const TEST_IMAGE_ID = 'stratus-test-image';
const BIN = join(process.cwd(), 'bin', 'stratus');

export interface TestAgent {
  host: string;
  dataDir: string;
  pid(): number | undefined;
  /** Everything the agent logged so far (JSON lines). */
  log(): string;
  /** Starts the agent (again) and waits until it has registered. */
  start(): Promise<void>;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
  kill9(): Promise<void>;
  /** Stops the agent and kills every QEMU started under the data dir (by pid, checked against /proc). */
  cleanup(): Promise<void>;
}

/** Serves the test guest image to agents through the compute module's image seam. */
export function serveTestImage(tc: TestCloud): void {
  if (!existsSync(TEST_IMAGE)) throw new Error(`${TEST_IMAGE} is missing: run scripts/build-guest-image.sh`);
  const src = new FileImageSource();
  src.add(TEST_IMAGE_ID, TEST_IMAGE, 'qcow2');
  tc.cloud.compute.setImageSource(src);
}

/**
 * `dataDir` (default: the cloud's) must differ for a second agent of the same cloud: an agent
 * claims DATA_DIR/agent (pid file, metadata socket, network layout), and the same guest on two
 * hosts (a migration) must not share an instance directory. Its token stays the cloud's. Keep it
 * short: QMP/VNC socket paths under it must stay below the 108-byte unix socket limit.
 */
export function testAgent(tc: TestCloud, opts: { host?: string; args?: string[]; dataDir?: string } = {}): TestAgent {
  const host = opts.host ?? `test-host-${Math.random().toString(36).slice(2, 8)}`;
  const dataDir = opts.dataDir ?? tc.dataDir;
  // Its own namespaces (never the real cloud's "stratus-"), removed by cleanup().
  const tag = Math.random().toString(36).slice(2, 7);
  const netArgs = ['--netns-prefix', `stratus-t${tag}-`, '--provider-netns', `stratus-t${tag}-provider`];
  let child: ChildProcess | undefined;
  let output = '';
  const alive = () => !!child && child.exitCode === null && child.signalCode === null;
  const waitExit = (c: ChildProcess) => new Promise<void>((r) => {
    if (c.exitCode !== null || c.signalCode !== null) r(); else c.once('exit', () => r());
  });

  const self: TestAgent = {
    host, dataDir,
    pid: () => (alive() ? child!.pid : undefined),
    log: () => output,
    async start() {
      if (alive()) return;
      const c = spawn(process.execPath, [BIN, 'agent', '--controller', tc.url, '--data-dir', dataDir, '--token-file', join(tc.dataDir, 'agent-token'), '--host', host,
        '--probe-image', TEST_IMAGE, ...netArgs, ...(opts.args ?? [])], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, STRATUS_LOG_LEVEL: 'info' },
      });
      child = c;
      c.stdout!.on('data', (d) => { output += String(d); });
      c.stderr!.on('data', (d) => { output += String(d); });
      const deadline = Date.now() + 60_000;
      const since = output.length;
      while (!output.slice(since).includes('registered with the controller')) {
        if (!alive()) throw new Error(`agent exited: ${output.slice(-2000)}`);
        if (Date.now() > deadline) throw new Error(`agent did not register: ${output.slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop() {
      if (!alive()) return;
      const c = child!;
      c.kill('SIGTERM');
      await waitExit(c);
    },
    async kill9() {
      if (!alive()) return;
      const c = child!;
      c.kill('SIGKILL');
      await waitExit(c);
    },
    async cleanup() {
      if (alive()) await self.kill9();
      for (const pid of guestPids(dataDir)) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
      }
      // Their cgroups too (empty once the processes are gone), in the agent's own slice (a host
      // named explicitly gets one: see QemuDriverOptions.cgroupTag).
      const dir = join(dataDir, 'agent', 'instances');
      const root = cgroupRoot(host);
      if (existsSync(dir)) for (const id of readdirSync(dir)) await removeCgroup(guestCgroup(root, id));
      await removeCgroup(root);
      if (existsSync(layoutFile(dataDir))) await dataplaneFor(readLayout(dataDir)).purge();
    },
  };
  return self;
}

/** Pids of live QEMUs of guests under DATA_DIR/agent/instances (pid files checked against /proc). */
export function guestPids(dataDir: string): number[] {
  const dir = join(dataDir, 'agent', 'instances');
  if (!existsSync(dir)) return [];
  const pids: number[] = [];
  for (const id of readdirSync(dir)) {
    try {
      const pid = Number(readFileSync(join(dir, id, 'qemu.pid'), 'utf8').trim());
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (argv[argv.indexOf('-uuid') + 1] === id) pids.push(pid);
    } catch { /* no pid file or process */ }
  }
  return pids;
}

/** Polls `fn` until it returns a truthy value. */
export async function until<T>(what: string, fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * after(): cleans every agent (guests, namespaces, cgroups) even when another's clean-up fails,
 * one after the other in the order given (the last sees a shared underlay unused and removes
 * it), then stops the cloud; rethrows the first failure.
 */
export async function cleanupAll(agents: Array<TestAgent | undefined>, tc?: TestCloud): Promise<void> {
  const errors: unknown[] = [];
  for (const a of agents) await a?.cleanup().catch((e: unknown) => errors.push(e));
  await tc?.stop().catch((e: unknown) => errors.push(e));
  if (errors.length) throw errors[0];
}
