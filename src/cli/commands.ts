// The commands of the `stratus` CLI, each a small function over parsed flags.
import { spawn } from 'node:child_process';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { closeSync, existsSync, openSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultDataDir, loadConfig, parseListen, type StratusConfig } from '../core/config.js';
import { readClientConfig } from './clientconfig.js';
import { adminApi, type AdminApi } from './adminapi.js';
import { isAlive } from '../core/process.js';
import { execExternal, sshCommand } from './netcommands.js';

type Flags = Record<string, string | boolean | undefined>;
type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

export interface Command {
  summary: string;
  options: OptionSpec;
  run(flags: Flags, args: string[]): Promise<number | void>;
}

const dataDirOption: OptionSpec = { 'data-dir': { type: 'string' } };

const dataDirOf = (f: Flags) => String(f['data-dir'] ?? process.env.STRATUS_DATA_DIR ?? defaultDataDir());
const pidFile = (dir: string) => join(dir, 'stratus.pid');
const stateFile = (dir: string) => join(dir, 'stratus.json');

interface RuntimeState { pid: number; url: string; startedAt: string; database: string; dataDir: string }

function readPid(dir: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile(dir), 'utf8').trim());
    return pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function waitHealthy(url: string, timeoutMs: number, alive: () => boolean): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive()) return false;
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) return true;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

/** Whether this machine's agent (host = hostname) is registered and up, as the compute API says. */
async function waitLocalAgent(dir: string, timeoutMs: number, alive: () => boolean): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let api: AdminApi | undefined;
  while (Date.now() < deadline && alive()) {
    try {
      api ??= await adminApi(dir);
      const compute = api.endpoint('compute');
      if (!compute) return true;
      const r = await api.get(`${compute}/os-services?binary=nova-compute&host=${encodeURIComponent(hostname())}`);
      if ((r?.services ?? []).some((s: { state: string }) => s.state === 'up')) return true;
    } catch { /* starting */ }
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

function configFrom(flags: Flags): StratusConfig {
  const overrides: Partial<StratusConfig> = {};
  if (typeof flags.listen === 'string') {
    const { host, port } = parseListen(flags.listen);
    overrides.listenHost = host;
    overrides.listenPort = port;
  }
  if (typeof flags.database === 'string') overrides.databaseUrl = flags.database;
  return loadConfig(dataDirOf(flags), overrides);
}

const redact = (url: string) => url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');

function printCredentials(dir: string, url: string): void {
  const c = readClientConfig(dir);
  console.log(`Stratus is up at ${url}`);
  if (c) {
    console.log(`  admin password: ${c.adminPassword}`);
    console.log(`  demo password:  ${c.demoPassword}`);
  }
  console.log(`  clouds.yaml:    ${join(dir, 'clouds.yaml')} (clouds 'stratus' and 'stratus-demo')`);
  console.log(`  try: OS_CLIENT_CONFIG_FILE=${join(dir, 'clouds.yaml')} openstack --os-cloud stratus catalog list`);
}

const up: Command = {
  summary: 'start the all-in-one cloud (foreground, or --detach)',
  options: { ...dataDirOption, listen: { type: 'string' }, database: { type: 'string' }, detach: { type: 'boolean' } },
  async run(flags) {
    const cfg = configFrom(flags);
    const dir = cfg.dataDir;
    const running = readPid(dir);
    if (running && isAlive(running)) {
      console.error(`stratus is already running (pid ${running}, data dir ${dir})`);
      return 1;
    }
    const firstStart = !existsSync(join(dir, 'clouds.yaml'));
    if (flags.detach) {
      const { mkdirSync } = await import('node:fs');
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const logPath = join(dir, 'stratus.log');
      const out = openSync(logPath, 'a');
      const args = process.argv.slice(2).filter((a) => a !== '--detach');
      const bin = fileURLToPath(new URL('../../../bin/stratus', import.meta.url));
      const child = spawn(process.execPath, [bin, ...args], { detached: true, stdio: ['ignore', out, out] });
      closeSync(out);
      let exited = false;
      child.on('exit', () => { exited = true; });
      child.unref();
      const url = `http://${cfg.listenHost.includes(':') ? `[${cfg.listenHost}]` : cfg.listenHost}:${cfg.listenPort}`;
      if (!(await waitHealthy(url, 120_000, () => !exited))) {
        console.error(`stratus did not come up; see ${logPath}:`);
        console.error(readFileSync(logPath, 'utf8').split('\n').slice(-20).join('\n'));
        if (!exited && child.pid) process.kill(child.pid, 'SIGTERM');
        return 1;
      }
      // Servers cannot be scheduled before the local agent has registered its host (after its
      // accelerator probe, up to 15 s on a fresh boot): a script's next command may create one.
      if (cfg.startAgent && !(await waitLocalAgent(dir, 90_000, () => !exited))) {
        console.error(`warning: the local agent has not registered its host yet (servers cannot be scheduled until it has); see ${join(dir, 'agent.log')}`);
      }
      if (firstStart) printCredentials(dir, url);
      else console.log(`Stratus is up at ${url} (pid ${child.pid}; log ${logPath})`);
      return 0;
    }

    const { startCloud } = await import('../server.js');
    const cloud = await startCloud(cfg);
    writeFileSync(pidFile(dir), `${process.pid}\n`);
    const state: RuntimeState = {
      pid: process.pid, url: cloud.url, startedAt: new Date().toISOString(),
      database: redact(cloud.db.url), dataDir: dir,
    };
    writeFileSync(stateFile(dir), JSON.stringify(state, null, 2));
    if (firstStart && process.stdout.isTTY !== undefined) printCredentials(dir, cloud.url);
    const { superviseLocalAgent } = await import('../agent/supervise.js');
    const agent = cfg.startAgent ? superviseLocalAgent({ controllerUrl: cloud.url, dataDir: dir, log: cloud.log }) : undefined;
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      cloud.log.info({ signal }, 'stopping');
      await agent?.stop();
      await cloud.stop();
      try { unlinkSync(pidFile(dir)); } catch { /* already gone */ }
      process.exit(0);
    };
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGINT', () => void stop('SIGINT'));
  },
};

const down: Command = {
  summary: 'stop the cloud (--purge also deletes its data and everything it made)',
  options: { ...dataDirOption, purge: { type: 'boolean' } },
  async run(flags) {
    const dir = dataDirOf(flags);
    const pid = readPid(dir);
    if (pid && isAlive(pid)) {
      process.kill(pid, 'SIGTERM');
      const deadline = Date.now() + 30_000;
      while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      if (isAlive(pid)) process.kill(pid, 'SIGKILL');
      console.log(`stopped stratus (pid ${pid})`);
    } else {
      console.log('stratus is not running');
    }
    try { unlinkSync(pidFile(dir)); } catch { /* not there */ }
    // Guests: powered off cleanly and brought back by the next `up` (desired state untouched);
    // --purge destroys them with every file.
    const { shutdownGuests } = await import('../agent/main.js');
    const g = await shutdownGuests(dir, { purge: !!flags.purge });
    if (g.stopped.length) console.log(`powered off ${g.stopped.length} guest(s); 'stratus up' brings them back`);
    if (g.destroyed.length) console.log(`destroyed ${g.destroyed.length} guest(s)`);
    if (flags.purge) {
      // The data plane: converge to the empty state (namespaces, bridges, taps, rules, dnsmasq, proxies).
      const { purgeNetwork } = await import('./netcommands.js');
      await purgeNetwork(dir);
      rmSync(dir, { recursive: true, force: true });
      console.log(`purged ${dir}`);
    }
  },
};

const status: Command = {
  summary: 'what runs, where, and whether it is healthy',
  options: { ...dataDirOption, json: { type: 'boolean' } },
  async run(flags) {
    const dir = dataDirOf(flags);
    const pid = readPid(dir);
    let state: RuntimeState | undefined;
    try { state = JSON.parse(readFileSync(stateFile(dir), 'utf8')) as RuntimeState; } catch { /* never started */ }
    const alive = !!pid && isAlive(pid);
    let health: unknown = undefined;
    if (alive && state) {
      try {
        const r = await fetch(`${state.url}/healthz`);
        health = { http: r.status, ...(await r.json() as object) };
      } catch (e) {
        health = { error: (e as Error).message };
      }
    }
    const report = { dataDir: dir, running: alive, pid: alive ? pid : undefined, url: state?.url, database: state?.database, startedAt: state?.startedAt, health };
    if (flags.json) console.log(JSON.stringify(report, null, 2));
    else {
      console.log(`data dir:  ${dir}`);
      console.log(`running:   ${alive ? `yes (pid ${pid})` : 'no'}`);
      if (state) console.log(`url:       ${state.url}\ndatabase:  ${state.database}\nstarted:   ${state.startedAt}`);
      if (alive) console.log(`health:    ${JSON.stringify(health)}`);
    }
    const healthy = alive && (health as { http?: number } | undefined)?.http === 200;
    return alive ? (healthy ? 0 : 1) : 3;
  },
};

const admin: Command = {
  summary: 'operator tasks: rotate-keys',
  options: { ...dataDirOption },
  async run(flags, args) {
    const dir = dataDirOf(flags);
    switch (args[0]) {
      case 'rotate-keys': {
        const { rotateKeys } = await import('../identity/keys.js');
        const r = await rotateKeys(dir);
        console.log(`token keys rotated: primary is now key ${r.primary}; ${r.kept} keys kept`);
        return 0;
      }
      default:
        console.error('usage: stratus admin rotate-keys [--data-dir DIR]');
        return 2;
    }
  },
};

const agent: Command = {
  summary: 'run the host agent (--controller URL [--data-dir DIR] [--token-file F] [--host NAME] [--accel auto|kvm|tcg] [--console-listen ADDRESS] [--migration-address IP] [--migration-ports LOW-HIGH])',
  options: {
    ...dataDirOption, controller: { type: 'string' }, 'token-file': { type: 'string' }, host: { type: 'string' },
    accel: { type: 'string' }, 'probe-image': { type: 'string' }, 'console-listen': { type: 'string' },
    'netns-prefix': { type: 'string' }, 'provider-netns': { type: 'string' }, 'underlay-ip': { type: 'string' },
    'underlay-netns': { type: 'string' }, 'no-network': { type: 'boolean' },
    'migration-address': { type: 'string' }, 'migration-ports': { type: 'string' },
  },
  async run(flags) {
    const dir = dataDirOf(flags);
    const controller = typeof flags.controller === 'string' ? flags.controller : process.env.STRATUS_CONTROLLER_URL;
    if (!controller) throw new Error('--controller URL is required (or STRATUS_CONTROLLER_URL)');
    const tokenFile = String(flags['token-file'] ?? join(dir, 'agent-token'));
    const token = process.env.STRATUS_AGENT_TOKEN ?? (existsSync(tokenFile) ? readFileSync(tokenFile, 'utf8').trim() : '');
    if (!token) throw new Error(`no agent token: pass --token-file (default ${tokenFile}) or STRATUS_AGENT_TOKEN`);
    const accel = String(flags.accel ?? process.env.STRATUS_AGENT_ACCEL ?? 'auto');
    if (!['auto', 'kvm', 'tcg'].includes(accel)) throw new Error('--accel must be auto, kvm or tcg');
    const { startAgent } = await import('../agent/main.js');
    const { networkLayout } = await import('../agent/netagent.js');
    const str = (k: string) => (typeof flags[k] === 'string' ? String(flags[k]) : undefined);
    const underlayIp = str('underlay-ip') ?? null;
    const ports = (str('migration-ports') ?? '49152-49215').split('-').map(Number);
    if (ports.length !== 2 || !ports.every((p) => Number.isInteger(p) && p > 0 && p < 65536) || ports[0]! > ports[1]! - 1) {
      throw new Error('--migration-ports must be a range LOW-HIGH of at least two ports');
    }
    const consoleListen = str('console-listen') ?? process.env.STRATUS_CONSOLE_LISTEN;
    // The address is also what controllers connect to: a wildcard would not tell them where.
    if (consoleListen !== undefined && (!isIP(consoleListen) || /^(0\.0\.0\.0|::)$/.test(consoleListen))) {
      throw new Error('--console-listen must be an IP address of this host that controllers can reach (not 0.0.0.0 or ::)');
    }
    const migrationAddress = str('migration-address') ?? '127.0.0.1';
    // Sources connect to it: a wildcard would not tell them where.
    if (!isIP(migrationAddress) || /^(0\.0\.0\.0|::)$/.test(migrationAddress)) {
      throw new Error('--migration-address must be an IP address of this host that other hosts can reach (not 0.0.0.0 or ::)');
    }
    const a = await startAgent({
      migrationListen: { host: migrationAddress, ports: [ports[0]!, ports[1]!] },
      network: flags['no-network'] ? false : networkLayout({
        prefix: str('netns-prefix') ?? process.env.STRATUS_NETNS_PREFIX, providerNetns: str('provider-netns') ?? process.env.STRATUS_PROVIDER_NETNS,
        ...(underlayIp ? { underlay: { netns: str('underlay-netns') ?? 'stratus-underlay', bridge: 'br-underlay', prefixLen: 24 } } : {}),
      }),
      underlayIp,
      controllerUrl: controller, dataDir: dir, token, accel: accel as 'auto' | 'kvm' | 'tcg',
      hostName: typeof flags.host === 'string' ? flags.host : undefined,
      probeImage: typeof flags['probe-image'] === 'string' ? flags['probe-image'] : undefined,
      consoleListen,
    });
    const stop = async () => {
      await a.stop();
      process.exit(0);
    };
    process.on('SIGTERM', () => void stop());
    process.on('SIGINT', () => void stop());
  },
};

export const commands: Record<string, Command> = { up, down, status, agent, admin, 'exec-external': execExternal, ssh: sshCommand };
