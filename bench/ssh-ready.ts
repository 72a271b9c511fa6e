// bench/ssh-ready: from `openstack server create` to the guest answering SSH on its floating IP,
// against QEMU started by hand with the same image on a tap, timed to the same check; the aim is
// a ratio <= 1.1 (a devstack-style OpenStack on this machine: 2.2).
//   node dist/bench/ssh-ready.js [--rounds N]
// The cloud runs as users run it (`./bin/stratus up --detach`, fresh temporary data dir, its own
// namespace prefix and port). Untimed set-up on both sides: the cloud side gets a tenant network,
// a router on `public`, an SSH rule and a port with a floating IP (the server is created on that
// port); the by-hand side gets a namespace with a tap, an address and dnsmasq answering DHCP for
// the guest's MAC, plus a config drive with the same key (it has no metadata service).
// Timed: cloud, from running `openstack server create --port P --key-name K` (python start-up,
// token, lookups, POST, scheduling, ports, agent, QEMU, DHCP, metadata, dropbear) to the first
// SSH banner from the floating IP, seen from the provider namespace (where `stratus ssh` runs);
// by hand, from spawning qemu-system-x86_64 with the agent's own arguments for that guest (read
// from its spec.json) to the first banner from the guest's address, seen from the tap's namespace.
// Both checks are bench/lib/ssh-probe.js, started before the clock; a real login (`stratus ssh
// ... -- true`, `ssh ... true`) then confirms each guest, untimed. Rounds alternate which side
// goes first. TCG guests on 2 shared cores are slow and noisy: the load average is printed.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { guestPaths, qemuArgs, type Accelerator } from '../src/agent/hypervisor/qemu/cmdline.js';
import type { InstanceSpec } from '../src/agent/hypervisor/driver.js';
import { buildConfigDrive } from '../src/agent/hypervisor/qemu/configdrive.js';
import { argvOf, guestPids, load, rootRoutes, secs, sh, startAio, until, type Aio } from './lib/aio.js';

const AIM = 1.1;
const { values } = parseArgs({ options: { rounds: { type: 'string', default: '2' } } });
const ROUNDS = Number(values.rounds);
const PROBE = join(process.cwd(), 'dist', 'bench', 'lib', 'ssh-probe.js');
const HAND_IP = '10.78.0.10';
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };

const started: ChildProcess[] = [];
function track(c: ChildProcess): ChildProcess { started.push(c); return c; }

/** Starts the banner probe inside NS; resolves once it probes, with a promise of the READY time (epoch ms). */
async function probe(ns: string, host: string): Promise<{ ready: Promise<number> }> {
  const c = track(spawn('ip', ['netns', 'exec', ns, process.execPath, PROBE, host, '22', '900'], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  c.stdout!.on('data', (d) => { out += String(d); });
  c.stderr!.on('data', (d) => { out += String(d); });
  await until('the SSH probe to start', () => out.includes('PROBING') || c.exitCode !== null, 60_000, 20);
  // Wrapped: an async function returning a bare promise would wait for it.
  return { ready: new Promise<number>((resolve, reject) => c.once('exit', (code) => {
    const m = /READY (\d+)/.exec(out);
    if (code === 0 && m) resolve(Number(m[1])); else reject(new Error(`probe of ${host} in ${ns} failed: ${out}`));
  })) };
}

interface CloudRound { ms: number; cliMs: number; qemuMs: number; spec: InstanceSpec; accel: Accelerator }

async function viaCloud(aio: Aio, round: number, fip: string, key: string): Promise<CloudRound> {
  const { ready } = await probe(aio.providerNetns, fip);
  const name = `ssh-bench-${round}`;
  const t0 = Date.now();
  const cli = aio.openstackJson<{ id: string }>(['server', 'create', '--image', 'stratus-test', '--flavor', 'm1.nano', '--port', 'bench-port', '--key-name', 'k', name], 'demo');
  const created = await cli;
  const cliMs = Date.now() - t0;
  const dir = join(aio.dataDir, 'agent', 'instances', created.id);
  let qemuMs = 0;
  const watch = setInterval(() => { if (!qemuMs && existsSync(join(dir, 'qemu.pid'))) qemuMs = Date.now() - t0; }, 20);
  const at = await ready;
  clearInterval(watch);
  const ms = at - t0;
  const login = await aio.stratus(['ssh', '--data-dir', aio.dataDir, '-i', key, name, '--', 'true'], 120_000);
  if (login.code !== 0) throw new Error(`stratus ssh ${name} -- true failed: ${login.stderr}`);
  const spec = JSON.parse(readFileSync(join(dir, 'spec.json'), 'utf8')) as InstanceSpec;
  const pid = guestPids(aio.dataDir)[0];
  const accel: Accelerator = pid && argvOf(pid).includes('kvm') ? 'KVM' : 'TCG';
  const del = await aio.openstack(['server', 'delete', '--wait', name], 'demo');
  if (del.code !== 0) throw new Error(`server delete: ${del.stderr}`);
  return { ms, cliMs, qemuMs, spec, accel };
}

async function byHand(aio: Aio, ns: string, spec: InstanceSpec, accel: Accelerator, key: string): Promise<number> {
  const dir = join(aio.dataDir, 'by-hand');
  rmSync(dir, { recursive: true, force: true });
  const p = guestPaths(dir, spec.id);
  mkdirSync(p.dir, { recursive: true });
  // The agent's cached copy of the image (the same bytes as build/guest/stratus-test.qcow2).
  const imagesDir = join(aio.dataDir, 'agent', 'images');
  const meta = readdirSync(imagesDir).find((f) => f.endsWith('.json'))!;
  const base = (JSON.parse(readFileSync(join(imagesDir, meta), 'utf8')) as { path: string }).path;
  const img = await sh('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, p.disk, `${Math.max(spec.diskGb, 1)}G`]);
  if (img.code !== 0) throw new Error(`qemu-img: ${img.stderr}`);
  const pub = readFileSync(`${key}.pub`, 'utf8').trim();
  await buildConfigDrive({ metaData: { uuid: spec.id, name: spec.name, hostname: spec.name, public_keys: { k: pub } } }, p.configDrive);
  const hand: InstanceSpec = { ...spec, nics: spec.nics.map((n) => ({ ...n, tap: 'rawtap0' })) };
  const args = qemuArgs(hand, p, { accel, hasConfigDrive: true, foreground: true });
  const { ready } = await probe(ns, HAND_IP);
  const t0 = Date.now();
  const q = track(spawn('ip', ['netns', 'exec', ns, 'qemu-system-x86_64', ...args], { stdio: 'ignore' }));
  const at = await ready;
  const ms = at - t0;
  const login = await sh('ip', ['netns', 'exec', ns, 'ssh', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
    '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', '-i', key, `stratus@${HAND_IP}`, 'true'], { timeoutMs: 120_000 });
  if (login.code !== 0) throw new Error(`ssh to the hand-started guest failed: ${login.stderr}`);
  q.kill('SIGKILL');
  await new Promise((r) => (q.exitCode !== null || q.signalCode !== null ? r(undefined) : q.once('exit', r)));
  return ms;
}

/** The by-hand network: a namespace with a tap, its address and dnsmasq (a reservation for the guest's MAC). */
async function handNetwork(ns: string, mac: string, dataDir: string): Promise<ChildProcess> {
  for (const argv of [['netns', 'add', ns], ['-n', ns, 'link', 'set', 'lo', 'up'], ['-n', ns, 'tuntap', 'add', 'dev', 'rawtap0', 'mode', 'tap'],
    ['-n', ns, 'addr', 'add', '10.78.0.1/24', 'dev', 'rawtap0'], ['-n', ns, 'link', 'set', 'rawtap0', 'up']]) {
    const r = await sh('ip', argv);
    if (r.code !== 0) throw new Error(`ip ${argv.join(' ')}: ${r.stderr}`);
  }
  const d = track(spawn('ip', ['netns', 'exec', ns, 'dnsmasq', '--no-hosts', '--no-resolv', '--port=0', '--keep-in-foreground', '--conf-file=/dev/null',
    '--interface=rawtap0', '--bind-interfaces', '--dhcp-range=10.78.0.0,static,255.255.255.0,86400s', `--dhcp-host=${mac},${HAND_IP}`,
    `--dhcp-leasefile=${join(dataDir, 'hand.leases')}`, '--dhcp-authoritative', `--pid-file=${join(dataDir, 'hand-dnsmasq.pid')}`], { stdio: 'ignore' }));
  return d;
}

async function main(): Promise<number> {
  const routesBefore = await rootRoutes();
  console.log(`ssh-ready: ${ROUNDS} rounds; machine load average ${load()} (TCG guests on shared cores: noisy)`);
  const aio = await startAio({ tag: 'ssh' });
  const handNs = `${aio.prefix.replace(/-$/, '')}x-hand`;
  let failed = false;
  try {
    await aio.untilAgentLog('network converged', 120_000);
    const key = join(aio.dataDir, 'id_bench');
    await sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    const os = async (args: string[]) => { const r = await aio.openstack(args, 'demo'); if (r.code !== 0) throw new Error(`openstack ${args.join(' ')}: ${r.stderr}`); };
    await os(['keypair', 'create', '--public-key', `${key}.pub`, 'k']);
    await os(['network', 'create', 'bench-net']);
    await os(['subnet', 'create', '--network', 'bench-net', '--subnet-range', '10.79.0.0/24', 'bench-sub']);
    await os(['router', 'create', 'bench-router']);
    await os(['router', 'set', '--external-gateway', 'public', 'bench-router']);
    await os(['router', 'add', 'subnet', 'bench-router', 'bench-sub']);
    await os(['security', 'group', 'rule', 'create', '--protocol', 'tcp', '--dst-port', '22', 'default']);
    const port = await aio.openstackJson<{ id: string; mac_address: string }>(['port', 'create', '--network', 'bench-net', 'bench-port'], 'demo');
    const fip = (await aio.openstackJson<{ floating_ip_address: string }>(['floating', 'ip', 'create', '--port', port.id, 'public'], 'demo')).floating_ip_address;
    await handNetwork(handNs, port.mac_address, aio.dataDir);
    console.log(`set-up (untimed): stratus up ${secs(aio.upMs)}; network, router, SSH rule, port ${port.id.slice(0, 8)} with floating IP ${fip}; hand namespace ${handNs}`);

    const rows: { round: number; cloud: number; hand: number; cli: number; qemu: number; load: string }[] = [];
    let last: CloudRound | undefined;
    for (let round = 1; round <= ROUNDS; round++) {
      let cloud: CloudRound; let hand: number;
      // The by-hand guest needs the agent's arguments: the first round goes through the cloud first.
      if (round % 2 === 1 || !last) {
        cloud = await viaCloud(aio, round, fip, key);
        hand = await byHand(aio, handNs, cloud.spec, cloud.accel, key);
      } else {
        hand = await byHand(aio, handNs, last.spec, last.accel, key);
        cloud = await viaCloud(aio, round, fip, key);
      }
      last = cloud;
      const r = { round, cloud: cloud.ms, hand, cli: cloud.cliMs, qemu: cloud.qemuMs, load: load() };
      rows.push(r);
      console.log(`round ${round}: cloud ${secs(r.cloud)} (CLI returned ${secs(r.cli)}, QEMU running ${secs(r.qemu)}), by hand ${secs(r.hand)}, ` +
        `ratio ${(r.cloud / r.hand).toFixed(2)}${round === 1 ? ' (cloud: cold image cache)' : ''}; load ${r.load}`);
    }
    const warm = rows.length > 1 ? rows.slice(1) : rows;
    const c = median(warm.map((r) => r.cloud)); const h = median(warm.map((r) => r.hand));
    const ratio = c / h;
    console.log(`median of ${warm.length} warm round(s): cloud ${secs(c)} (CLI ${secs(median(warm.map((r) => r.cli)))}, QEMU running ${secs(median(warm.map((r) => r.qemu)))}), ` +
      `by hand ${secs(h)}: ratio ${ratio.toFixed(2)} — aim <= ${AIM}: ${ratio <= AIM ? 'met' : 'MISSED'}; overhead ${secs(c - h)}`);
  } catch (e) {
    failed = true;
    console.error(`ssh-ready failed: ${(e as Error).stack ?? e}`);
  } finally {
    for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.all(started.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
    const left = await aio.down();
    await sh('ip', ['netns', 'del', handNs]);
    if ((await sh('ip', ['netns', 'list'])).stdout.includes(handNs)) left.push(`namespace ${handNs} left`);
    const routesAfter = await rootRoutes();
    if (routesAfter !== routesBefore) left.push(`root namespace routes changed:\n${routesBefore}---\n${routesAfter}`);
    console.log(left.length ? `cleanup: ${left.join('; ')}` : 'cleanup: nothing left (processes, namespaces, data dir; root routes unchanged)');
    if (left.length) failed = true;
  }
  return failed ? 1 : 0;
}

process.exit(await main());
