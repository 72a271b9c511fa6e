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
import { parseGuestMarkers } from '../src/agent/guest-image/markers.js';
import { argvOf, cpuTicks, guestPids, treeCpu, load, reportCleanup, secs, sh, startAio, until, type Aio } from './lib/aio.js';

const AIM = 1.1;
const { values } = parseArgs({ options: { rounds: { type: 'string', default: '2' } } });
const ROUNDS = Number(values.rounds);
const PROBE = join(process.cwd(), 'dist', 'bench', 'lib', 'ssh-probe.js');
const HAND_IP = '10.78.0.10';
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };

// BENCH_VERBOSE=1: the login also prints the guest's boot log (markers and udhcpc with the guest's uptime).
const LOGIN_CMD = process.env.BENCH_VERBOSE ? 'cat /var/log/boot.log' : 'true';
const verbose = (what: string, text: string) => { if (process.env.BENCH_VERBOSE) console.log(`--- ${what}:\n${text.trim()}\n---`); };

const started: ChildProcess[] = [];
function track(c: ChildProcess): ChildProcess { started.push(c); return c; }

/** Starts the banner probe inside NS; resolves once it probes, with a promise of the READY time (epoch ms). */
async function probe(ns: string, host: string): Promise<{ ready: Promise<number> }> {
  const c = track(spawn('ip', ['netns', 'exec', ns, process.execPath, PROBE, host, '22', '900'], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  c.stdout!.on('data', (d) => { out += String(d); });
  c.stderr!.on('data', (d) => { out += String(d); });
  await until('the SSH probe to start', () => out.includes('PROBING') || c.exitCode !== null, 60_000);
  // Wrapped: an async function returning a bare promise would wait for it.
  return { ready: new Promise<number>((resolve, reject) => c.once('exit', (code) => {
    const m = /READY (\d+)/.exec(out);
    if (code === 0 && m) resolve(Number(m[1])); else reject(new Error(`probe of ${host} in ${ns} failed: ${out}`));
  })) };
}

interface CloudRound { ms: number; cpuS: number; qemuCpuS: number; requestMs: number; qemuMs: number; marks: Record<string, number>; spec: InstanceSpec; accel: Accelerator }

/** When each console marker (init, net, metadata, ssh, ...) first appeared, in ms since t0 (polled every 50 ms). */
function watchMarkers(file: () => string | undefined, t0: number): { stop(): Record<string, number> } {
  const seen: Record<string, number> = {};
  const t = setInterval(() => {
    const f = file();
    if (!f) return;
    let text = '';
    try { text = readFileSync(f, 'utf8'); } catch { return; }
    for (const line of parseGuestMarkers(text).lines) seen[line.split(' ')[0]!] ??= Date.now() - t0;
  }, 50);
  return { stop: () => { clearInterval(t); return seen; } };
}
const timeline = (m: Record<string, number>) => ['init', 'net', 'metadata', 'ssh'].filter((k) => m[k] !== undefined).map((k) => `${k} ${secs(m[k]!)}`).join(', ');

interface Ids { image: string; flavor: string; port: string }

/** One server through the cloud: `openstack server create` (mode cli) or a raw POST /servers (mode api). */
async function viaCloud(aio: Aio, name: string, mode: 'cli' | 'api', fip: string, key: string, ids: Ids): Promise<CloudRound> {
  const { ready } = await probe(aio.providerNetns, fip);
  const instances = join(aio.dataDir, 'agent', 'instances');
  const list = () => (existsSync(instances) ? readdirSync(instances) : []);
  const before = new Set(list());
  const cpu = treeCpu(aio.controllerPid());
  const t0 = Date.now();
  let id: string | undefined;
  let qemuMs = 0;
  const marks = watchMarkers(() => (id ? join(instances, id, 'console.log') : undefined), t0);
  const watch = setInterval(() => {
    id ??= list().find((d) => !before.has(d));
    if (id && !qemuMs && existsSync(join(instances, id, 'qemu.pid'))) qemuMs = Date.now() - t0;
  }, 20);
  if (mode === 'cli') {
    await aio.openstackJson(['server', 'create', '--image', 'stratus-test', '--flavor', 'm1.nano', '--port', 'bench-port', '--key-name', 'k', name], 'demo');
  } else {
    const r = await aio.api('POST', '/compute/v2.1/servers', { server: { name, imageRef: ids.image, flavorRef: ids.flavor, key_name: 'k', networks: [{ port: ids.port }] } });
    if (r.status !== 202) throw new Error(`POST /servers: ${r.status} ${JSON.stringify(r.json)}`);
  }
  const requestMs = Date.now() - t0;
  const ms = (await ready) - t0;
  const cpuS = cpu.stop();
  const qemuCpuS = cpuTicks(guestPids(aio.dataDir)[0] ?? 0) / 100;
  clearInterval(watch);
  const login = await aio.stratus(['ssh', '--data-dir', aio.dataDir, '-i', key, name, '--', LOGIN_CMD], 120_000);
  if (login.code !== 0) throw new Error(`stratus ssh ${name} -- true failed: ${login.stderr}`);
  verbose(`${mode} guest's boot log`, login.stdout);
  const m = marks.stop();
  const spec = JSON.parse(readFileSync(join(instances, id!, 'spec.json'), 'utf8')) as InstanceSpec;
  const pid = guestPids(aio.dataDir)[0];
  const accel: Accelerator = pid && argvOf(pid).includes('kvm') ? 'KVM' : 'TCG';
  const del = await aio.openstack(['server', 'delete', '--wait', name], 'demo');
  if (del.code !== 0) throw new Error(`server delete: ${del.stderr}`);
  return { ms, cpuS, qemuCpuS, requestMs, qemuMs, marks: m, spec, accel };
}

async function byHand(aio: Aio, ns: string, spec: InstanceSpec, accel: Accelerator, key: string): Promise<{ ms: number; qemuCpuS: number; marks: Record<string, number> }> {
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
  const marks = watchMarkers(() => p.console, t0);
  const q = track(spawn('ip', ['netns', 'exec', ns, 'qemu-system-x86_64', ...args], { stdio: 'ignore' }));
  const at = await ready;
  const ms = at - t0;
  const qemuCpuS = cpuTicks(q.pid ?? 0) / 100;
  const login = await sh('ip', ['netns', 'exec', ns, 'ssh', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
    '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', '-i', key, `stratus@${HAND_IP}`, LOGIN_CMD], { timeoutMs: 120_000 });
  if (login.code !== 0) throw new Error(`ssh to the hand-started guest failed: ${login.stderr}`);
  verbose('hand-started guest\'s boot log', login.stdout);
  q.kill('SIGKILL');
  await new Promise((r) => (q.exitCode !== null || q.signalCode !== null ? r(undefined) : q.once('exit', r)));
  return { ms, qemuCpuS, marks: marks.stop() };
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

    const ids: Ids = {
      image: (await aio.openstackJson<{ id: string }>(['image', 'show', 'stratus-test'], 'demo')).id,
      flavor: (await aio.openstackJson<{ id: string }>(['flavor', 'show', 'm1.nano'], 'demo')).id,
      port: port.id,
    };
    interface Row { cli: CloudRound; api: CloudRound; hand: { ms: number; qemuCpuS: number; marks: Record<string, number> }; load: string }
    const rows: Row[] = [];
    let last: CloudRound | undefined;
    for (let round = 1; round <= ROUNDS; round++) {
      // Alternate the order; the by-hand guest needs the agent's arguments, so round 1 starts with the cloud.
      const r: Partial<Row> = {};
      const cli = async () => { r.cli = last = await viaCloud(aio, `ssh-bench-${round}-cli`, 'cli', fip, key, ids); };
      const api = async () => { r.api = last = await viaCloud(aio, `ssh-bench-${round}-api`, 'api', fip, key, ids); };
      const hand = async () => { r.hand = await byHand(aio, handNs, last!.spec, last!.accel, key); };
      for (const step of round % 2 === 1 ? [cli, api, hand] : [hand, api, cli]) await step();
      r.load = load();
      const row = r as Row;
      rows.push(row);
      console.log(`round ${round}${round === 1 ? ' (first boot: cold image cache)' : ''}; load ${row.load}`);
      for (const [what, c] of [['openstack server create', row.cli], ['POST /servers', row.api]] as const) {
        console.log(`  ${what}: SSH banner at ${secs(c.ms)} (request returned ${secs(c.requestMs)}, QEMU running ${secs(c.qemuMs)}; console ${timeline(c.marks)}; control plane CPU ${c.cpuS.toFixed(1)} s, guest QEMU CPU ${c.qemuCpuS.toFixed(1)} s), ratio ${(c.ms / row.hand.ms).toFixed(2)}`);
      }
      console.log(`  QEMU by hand: SSH banner at ${secs(row.hand.ms)} (console ${timeline(row.hand.marks)}; QEMU CPU ${row.hand.qemuCpuS.toFixed(1)} s)`);
    }
    const warm = rows.length > 1 ? rows.slice(1) : rows;
    const h = median(warm.map((r) => r.hand.ms));
    console.log(`median of ${warm.length} round(s)${rows.length > 1 ? ' after the first' : ''}: QEMU by hand ${secs(h)}`);
    for (const [what, pick] of [['openstack server create', (r: Row) => r.cli], ['POST /servers', (r: Row) => r.api]] as const) {
      const c = median(warm.map((r) => pick(r).ms));
      const ratio = c / h;
      console.log(`  ${what}: ${secs(c)}, ratio ${ratio.toFixed(2)} — aim <= ${AIM}: ${ratio <= AIM ? 'met' : 'MISSED'} (${secs(c - h)} more than by hand; the request itself returned after ${secs(median(warm.map((r) => pick(r).requestMs)))})`);
    }
  } catch (e) {
    failed = true;
    console.error(`ssh-ready failed: ${(e as Error).stack ?? e}`);
  } finally {
    for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.all(started.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
    const left = await aio.down();
    await sh('ip', ['netns', 'del', handNs]);
    if ((await sh('ip', ['netns', 'list'])).stdout.includes(handNs)) left.push(`namespace ${handNs} left`);
    if (!reportCleanup(left)) failed = true;
  }
  return failed ? 1 : 0;
}

process.exit(await main());
