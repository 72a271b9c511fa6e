// The all-in-one cloud as users run it, for the headline benches: `./bin/stratus up --detach` on a
// fresh temporary data dir, with its own namespace prefix, provider namespace and port (so it never
// meets another cloud or test on this machine), the public `openstack` / `stratus` commands against
// it, what its processes use, and `stratus down --purge` with checks that nothing is left.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { readClientConfig } from '../../src/cli/clientconfig.js';
import { guestPids, until } from '../../test/helpers/agent.js';

export { guestPids, until };

export const ROOT = process.cwd();
export const BIN = join(ROOT, 'bin', 'stratus');
export const IMAGE = join(ROOT, 'build', 'guest', 'stratus-test.qcow2');

export interface Run { code: number; stdout: string; stderr: string; ms: number }

export function sh(cmd: string, args: string[], o: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Run> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    execFile(cmd, args, { env: o.env ?? process.env, timeout: o.timeoutMs ?? 300_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout: String(stdout), stderr: String(stderr), ms: performance.now() - t0 }));
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
export const mib = (kb: number) => kb / 1024;
export const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

// ---- processes and memory ----

/** Every process's parent, from /proc. */
function parents(): Map<number, number> {
  const m = new Map<number, number>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      // comm may hold spaces and parentheses: the fields after the last ')' are fixed.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      m.set(Number(e), ppid);
    } catch { /* exited */ }
  }
  return m;
}

/** `root` and all its descendants. */
export function processTree(root: number): number[] {
  const pp = parents();
  const out = [root];
  for (let i = 0; i < out.length; i++) for (const [pid, ppid] of pp) if (ppid === out[i]) out.push(pid);
  return out.filter((p) => pp.has(p));
}

export interface Mem { rssKb: number; pssKb?: number }

export function memOf(pid: number): Mem | undefined {
  try {
    const roll = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const f = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(roll)?.[1] ?? NaN);
    return { rssKb: f('Rss'), pssKb: f('Pss') };
  } catch {
    try {
      const st = readFileSync(`/proc/${pid}/status`, 'utf8');
      return { rssKb: Number(/^VmRSS:\s+(\d+)/m.exec(st)?.[1] ?? NaN) };
    } catch { return undefined; }
  }
}

export function argvOf(pid: number): string[] {
  try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean); } catch { return []; }
}

/** CPU time (user + system) of a process in clock ticks (100/s on Linux); with `children`, plus its waited-for children's (the `ip`, `iptables` it ran). */
export function cpuTicks(pid: number, children = false): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]) + (children ? Number(f[13]) + Number(f[14]) : 0);
  } catch { return NaN; }
}

/** CPU seconds a process tree uses from now until `stop()` (processes that exit meanwhile unwaited are missed). */
export function treeCpu(root: number): { stop(): number } {
  const at = new Map(processTree(root).map((p) => [p, cpuTicks(p, true)]));
  return {
    stop() {
      let ticks = 0;
      for (const p of processTree(root)) {
        const now = cpuTicks(p, true);
        if (Number.isFinite(now)) ticks += now - (at.get(p) ?? 0);
      }
      return ticks / 100;
    },
  };
}

export async function netnsWithPrefix(prefix: string): Promise<string[]> {
  const r = await sh('ip', ['netns', 'list']);
  return r.stdout.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n && n.startsWith(prefix));
}

/** Pids inside namespaces (dnsmasq and metadata proxies are started there). */
export async function pidsInNetns(names: string[]): Promise<number[]> {
  const out: number[] = [];
  for (const ns of names) {
    const r = await sh('ip', ['netns', 'pids', ns]);
    out.push(...r.stdout.split('\n').filter((l) => /^\d+$/.test(l)).map(Number));
  }
  return out;
}

// ---- the cloud ----

export interface Aio {
  dataDir: string;
  url: string;
  prefix: string;
  providerNetns: string;
  env: NodeJS.ProcessEnv;
  /** `stratus up --detach` wall time (returns once /healthz answers 200). */
  upMs: number;
  controllerPid(): number;
  agentPid(): number | undefined;
  /** The real openstack CLI as admin or demo (DATA_DIR/clouds.yaml). */
  openstack(args: string[], as?: 'admin' | 'demo'): Promise<Run>;
  openstackJson<T = any>(args: string[], as?: 'admin' | 'demo'): Promise<T>;
  stratus(args: string[], timeoutMs?: number): Promise<Run>;
  /** Milliseconds since `up` was called until the agent logged `what` (polls agent.log). */
  untilAgentLog(what: string, timeoutMs: number): Promise<void>;
  /** A project-scoped token of admin or demo, and the password-authenticated raw HTTP API. */
  api(method: string, path: string, body?: unknown, as?: 'admin' | 'demo'): Promise<{ status: number; json: any; ms: number }>;
  /** The serial console of a guest so far ('' until it exists). */
  console(serverId: string): string;
  /** Spawns CMD inside the provider namespace (the place floating IPs are reached from). */
  spawnInProvider(argv: string[]): ChildProcess;
  /** `stratus down --purge`, then checks (processes, namespaces, dirs, root routes); returns what was left over (empty: clean). */
  down(): Promise<string[]>;
}

export async function startAio(o: { tag: string }): Promise<Aio> {
  if (process.getuid?.() !== 0) throw new Error('the headline benches run the cloud as users do: as root (namespaces, taps)');
  if (!existsSync(IMAGE)) throw new Error(`${IMAGE} missing: run scripts/build-guest-image.sh`);
  const routesBefore = await rootRoutes();
  const dataDir = mkdtempSync(join(tmpdir(), `stratus-bench-${o.tag}-`));
  const port = await freePort();
  const short = Math.random().toString(36).slice(2, 6);
  const prefix = `sb${short}-`;
  const providerNetns = `sb${short}-provider`;
  const env = { ...process.env, STRATUS_NETNS_PREFIX: prefix, STRATUS_PROVIDER_NETNS: providerNetns, OS_CLIENT_CONFIG_FILE: join(dataDir, 'clouds.yaml') };
  const stratus = (args: string[], timeoutMs = 300_000) => sh(process.execPath, [BIN, ...args], { env, timeoutMs });
  const t0 = performance.now();
  const up = await stratus(['up', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`, '--detach']);
  const upMs = performance.now() - t0;
  const pid = Number(readFileSync(join(dataDir, 'stratus.pid'), 'utf8').trim() || 0);
  const tokens: Partial<Record<'admin' | 'demo', string>> = {};
  const aio: Aio = {
    dataDir, url: `http://127.0.0.1:${port}`, prefix, providerNetns, env, upMs,
    controllerPid: () => pid,
    agentPid: () => processTree(pid).find((p) => argvOf(p).includes('agent')),
    openstack: (args, as = 'admin') => sh('openstack', args, { env: { ...env, OS_CLOUD: as === 'demo' ? 'stratus-demo' : 'stratus' } }),
    async openstackJson(args, as) {
      const r = await aio.openstack([...args, '-f', 'json'], as);
      if (r.code !== 0) throw new Error(`openstack ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
      return JSON.parse(r.stdout);
    },
    stratus,
    async untilAgentLog(what, timeoutMs) {
      await until(`agent log: ${what}`, () => { try { return readFileSync(join(dataDir, 'agent.log'), 'utf8').includes(what); } catch { return false; } }, timeoutMs);
    },
    async api(method, path, body, as = 'demo') {
      const token = tokens[as] ??= await issueToken(aio, as);
      const t0 = performance.now();
      const r = await fetch(`${aio.url}${path}`, { method, headers: { 'x-auth-token': token, 'content-type': 'application/json', 'openstack-api-version': 'compute 2.47' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
      const text = await r.text();
      return { status: r.status, json: text ? JSON.parse(text) : undefined, ms: performance.now() - t0 };
    },
    console: (id) => { try { return readFileSync(join(dataDir, 'agent', 'instances', id, 'console.log'), 'utf8'); } catch { return ''; } },
    spawnInProvider: (argv) => spawn('ip', ['netns', 'exec', providerNetns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] }),
    async down() {
      const before = processTree(pid).filter((p) => p !== pid);
      const guests = guestPids(dataDir);
      const r = await stratus(['down', '--data-dir', dataDir, '--purge'], 120_000);
      const left: string[] = [];
      if (r.code !== 0 || r.stderr.trim()) left.push(`stratus down --purge exited ${r.code}: ${r.stdout.trim()} ${r.stderr.trim()}`);
      // Whatever `down` did not stop: ours by pid, checked against what we recorded.
      for (const p of [pid, ...before, ...guests]) {
        if (existsSync(`/proc/${p}`) && argvOf(p).length) {
          left.push(`process ${p} (${argvOf(p).slice(0, 3).join(' ')}) still running: killed`);
          try { process.kill(p, 'SIGKILL'); } catch { /* gone meanwhile */ }
        }
      }
      const ns = await netnsWithPrefix(prefix);
      if (ns.length) left.push(`namespaces left: ${ns.join(' ')}`);
      if (existsSync(dataDir)) left.push(`data dir left: ${dataDir}`);
      const state = `/run/stratus/dataplane-${prefix.replace(/-$/, '')}`;
      if (existsSync(state)) left.push(`data-plane state dir left: ${state}`);
      const routesAfter = await rootRoutes();
      if (routesAfter !== routesBefore) left.push(`root namespace routes changed:\n${routesBefore}---\n${routesAfter}`);
      return left;
    },
  };
  if (up.code !== 0) {
    const left = await aio.down();
    throw new Error(`stratus up failed (${up.code}): ${up.stderr}${up.stdout}; cleanup: ${left.join('; ') || 'clean'}`);
  }
  return aio;
}

async function issueToken(aio: Aio, as: 'admin' | 'demo'): Promise<string> {
  const c = readClientConfig(aio.dataDir);
  if (!c) throw new Error(`no clouds.yaml in ${aio.dataDir}`);
  const r = await fetch(`${aio.url}/identity/v3/auth/tokens`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ auth: {
    identity: { methods: ['password'], password: { user: { name: as, domain: { name: 'Default' }, password: as === 'admin' ? c.adminPassword : c.demoPassword } } },
    scope: { project: { name: as, domain: { name: 'Default' } } },
  } }) });
  if (r.status !== 201) throw new Error(`token for ${as}: HTTP ${r.status}`);
  return r.headers.get('x-subject-token')!;
}

/** Prints what a run left over; true when nothing. */
export function reportCleanup(left: string[]): boolean {
  console.log(left.length ? `cleanup: ${left.join('; ')}` : 'cleanup: nothing left (processes, namespaces, data dir, data-plane state dir; root routes unchanged)');
  return left.length === 0;
}

/** `ip route` of the root namespace, to check that a run changed nothing there. */
export const rootRoutes = async () => (await sh('ip', ['-4', 'route', 'show'])).stdout + (await sh('ip', ['-6', 'route', 'show'])).stdout;
