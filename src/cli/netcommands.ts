// `stratus exec-external` and `stratus ssh`: reach floating IPs from the host without giving the
// root namespace a route (commands run inside the provider namespace), and `down --purge`'s
// data-plane cleanup. They read the layout the local agent recorded (DATA_DIR/agent/network.json).
import { spawn } from 'node:child_process';
import { isIP } from 'node:net';
import { defaultDataDir } from '../core/config.js';
import { PUBLIC_PHYSNET, dataplaneFor, readLayout } from '../agent/netagent.js';
import { adminApi } from './adminapi.js';
import type { Command } from './commands.js';

type Flags = Record<string, string | boolean | undefined>;
const dataDirOf = (f: Flags) => String(f['data-dir'] ?? process.env.STRATUS_DATA_DIR ?? defaultDataDir());

function needRoot(what: string): void {
  if (process.getuid?.() !== 0) throw new Error(`${what} enters a network namespace: run it as root (sudo)`);
}

/** The provider namespace of the `public` network, created (with its bridge and 203.0.113.1/24) if needed. */
export async function providerNamespace(dataDir: string): Promise<string> {
  return dataplaneFor(readLayout(dataDir)).ensurePhysicalNetwork(PUBLIC_PHYSNET);
}

export async function purgeNetwork(dataDir: string): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const r = await dataplaneFor(readLayout(dataDir)).purge();
  if (r.changes) console.log(`removed the data plane (${r.changes} changes)`);
  // What could not be removed stays recorded in the state dir for the next purge: say what it is.
  for (const e of r.errors) console.error(`could not remove: ${e}`);
}

function runIn(ns: string, argv: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const c = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: 'inherit' });
    c.on('error', reject);
    c.on('exit', (code, signal) => resolve(code ?? (signal ? 128 + 15 : 1)));
  });
}

export const execExternal: Command = {
  summary: 'run a command inside the provider namespace (reaches floating IPs): exec-external [--data-dir DIR] -- CMD ARGS...',
  options: { 'data-dir': { type: 'string' } },
  async run(flags, args) {
    if (!args.length) {
      console.error('usage: stratus exec-external [--data-dir DIR] -- CMD ARGS...');
      return 2;
    }
    needRoot('exec-external');
    return runIn(await providerNamespace(dataDirOf(flags)), args);
  },
};

export const sshCommand: Command = {
  summary: "ssh to a server's floating IP from the provider namespace: ssh [--data-dir DIR] [-i KEYFILE] [USER@]SERVER [-- CMD...]",
  options: { 'data-dir': { type: 'string' }, identity: { type: 'string', short: 'i' } },
  async run(flags, args) {
    const [target, ...cmd] = args;
    if (!target) {
      console.error('usage: stratus ssh [--data-dir DIR] [-i KEYFILE] [USER@]SERVER [-- CMD...]');
      return 2;
    }
    needRoot('ssh');
    const dir = dataDirOf(flags);
    const at = target.lastIndexOf('@');
    const user = at >= 0 ? target.slice(0, at) : 'stratus';
    const server = at >= 0 ? target.slice(at + 1) : target;
    const ip = isIP(server) ? server : await floatingIpOf(dir, server);
    const ns = await providerNamespace(dir);
    const argv = ['ssh', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
      '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10',
      ...(typeof flags.identity === 'string' ? ['-i', flags.identity] : []), `${user}@${ip}`, ...cmd];
    return runIn(ns, argv);
  },
};

/** The floating IP of a server (name or id), found through the APIs as the admin of DATA_DIR's clouds.yaml. */
export async function floatingIpOf(dataDir: string, server: string): Promise<string> {
  const { endpoint, get } = await adminApi(dataDir);
  const net = endpoint('network');
  if (!net) throw new Error('no network endpoint in the catalog');
  // A server name resolves through the compute API (when it serves servers); else it is an id.
  let ids = [server];
  const compute = endpoint('compute');
  if (compute) {
    const list = await get(`${compute}/servers?all_tenants=1&name=${encodeURIComponent(`^${server.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`)}`);
    const found = (list?.servers ?? []).map((s: { id: string }) => s.id);
    if (found.length > 1) throw new Error(`more than one server is named ${server}: use its id`);
    if (found.length) ids = found;
  }
  const ports = (await get(`${net}/v2.0/ports?device_id=${encodeURIComponent(ids[0]!)}`))?.ports ?? [];
  for (const p of ports) {
    const fips = (await get(`${net}/v2.0/floatingips?port_id=${encodeURIComponent(p.id)}`))?.floatingips ?? [];
    if (fips[0]?.floating_ip_address) return fips[0].floating_ip_address as string;
  }
  throw new Error(`server ${server} has no floating IP (openstack server add floating ip ${server} IP)`);
}
