// bench/footprint: what the whole all-in-one control plane uses when idle, against the aim of
// <= 300 MiB (a devstack-style OpenStack on this machine size: 6.9 GB).
//   node dist/bench/footprint.js [--idle SECONDS] [--no-guest]
// Starts the cloud as users do (`./bin/stratus up --detach`, fresh temporary data dir, its own
// namespace prefix and port), waits until idle, and reports RSS and PSS (/proc/PID/smaps_rollup)
// of every process of the control plane: the controller, the agent it supervises, and whatever
// those started (dnsmasq, metadata proxies), found by walking the process tree of the controller
// and the processes inside the cloud's namespaces. Then again with one idle test guest booted
// through the public API (network, subnet, router, `openstack server create --wait`): the guest's
// QEMU is the workload and is reported apart. RSS counts pages shared between processes (the node
// binary) once per process; PSS splits them, so the PSS total is what the control plane really
// costs the machine. Tears everything down (`stratus down --purge`, then checks) even on failure.
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { parseGuestMarkers } from '../src/agent/guest-image/markers.js';
import {
  argvOf, cpuTicks, guestPids, load, memOf, mib, netnsWithPrefix, pidsInNetns, processTree, reportCleanup, secs, sleep, startAio, until,
  type Aio,
} from './lib/aio.js';

const AIM_MIB = 300;
const { values } = parseArgs({ options: { idle: { type: 'string', default: '30' }, 'no-guest': { type: 'boolean', default: false } } });
const IDLE_MS = Number(values.idle) * 1000;

function role(aio: Aio, pid: number): string {
  const argv = argvOf(pid);
  if (pid === aio.controllerPid()) return 'controller (stratus up)';
  if (argv.some((a) => a.endsWith('bin/stratus')) && argv.includes('agent')) return 'agent (stratus agent)';
  if (argv.some((a) => a.endsWith('metadata-proxy.js'))) return 'metadata proxy (node)';
  return basename(argv[0] ?? `pid ${pid}`);
}

interface Row { pid: number; role: string; rssMib: number; pssMib?: number; cpuPct?: number }

/** The control plane's processes (tree of the controller + those in its namespaces), guests apart. */
async function snapshot(aio: Aio, cpuWindowMs: number): Promise<{ plane: Row[]; guests: Row[] }> {
  const guests = new Set(guestPids(aio.dataDir));
  const pids = [...new Set([...processTree(aio.controllerPid()), ...(await pidsInNetns(await netnsWithPrefix(aio.prefix)))])];
  const all = [...pids, ...[...guests].filter((g) => !pids.includes(g))];
  const t0 = new Map(all.map((p) => [p, cpuTicks(p)]));
  await sleep(cpuWindowMs);
  const rows: Row[] = [];
  for (const pid of all) {
    const m = memOf(pid);
    if (!m) continue; // exited meanwhile (a short-lived `ip` of a converge)
    const dt = cpuTicks(pid) - t0.get(pid)!;
    rows.push({ pid, role: guests.has(pid) ? 'guest QEMU' : role(aio, pid), rssMib: mib(m.rssKb), pssMib: m.pssKb === undefined ? undefined : mib(m.pssKb),
      cpuPct: Number.isFinite(dt) ? (dt / 100) / (cpuWindowMs / 1000) * 100 : undefined });
  }
  return { plane: rows.filter((r) => !guests.has(r.pid)), guests: rows.filter((r) => guests.has(r.pid)) };
}

function print(title: string, s: { plane: Row[]; guests: Row[] }, windowMs: number): { rss: number; pss: number } {
  const f = (n: number | undefined) => (n === undefined ? '   n/a' : n.toFixed(1).padStart(6));
  console.log(`\n${title} (load average ${load()})`);
  console.log(`  ${'pid'.padStart(7)}  ${'RSS MiB'.padStart(7)}  ${'PSS MiB'.padStart(7)}  ${'CPU %'.padStart(6)}  process`);
  const line = (r: Row) => console.log(`  ${String(r.pid).padStart(7)}  ${f(r.rssMib).padStart(7)}  ${f(r.pssMib).padStart(7)}  ${f(r.cpuPct)}  ${r.role}`);
  s.plane.forEach(line);
  const rss = s.plane.reduce((a, r) => a + r.rssMib, 0);
  const pss = s.plane.reduce((a, r) => a + (r.pssMib ?? r.rssMib), 0);
  const cpu = s.plane.reduce((a, r) => a + (r.cpuPct ?? 0), 0);
  console.log(`  control plane: ${s.plane.length} processes, RSS ${rss.toFixed(1)} MiB, PSS ${pss.toFixed(1)} MiB, CPU ${cpu.toFixed(1)} % of a core over ${secs(windowMs)}` +
    ` — aim <= ${AIM_MIB} MiB: ${pss <= AIM_MIB ? 'met' : 'MISSED'} (PSS), ${rss <= AIM_MIB ? 'met' : 'missed'} even counting shared pages per process (RSS)`);
  if (s.guests.length) {
    console.log('  the workload (not the control plane):');
    s.guests.forEach(line);
  }
  return { rss, pss };
}

async function main(): Promise<number> {
  console.log(`footprint: machine load average ${load()} (other work shares these cores: CPU figures are noisy)`);
  const aio = await startAio({ tag: 'footprint' });
  let failed = false;
  try {
    const t0 = Date.now();
    console.log(`stratus up --detach: ${secs(aio.upMs)} to a healthy API (data dir ${aio.dataDir}, netns prefix ${aio.prefix})`);
    // Idle = the agent has registered and converged its data plane once (provider namespace), then IDLE_MS of nothing.
    await aio.untilAgentLog('network converged', 120_000);
    const cpuWindow = Math.min(10_000, IDLE_MS);
    await sleep(Math.max(0, IDLE_MS - cpuWindow - (Date.now() - t0)));
    print(`idle, no servers (${secs(Date.now() - t0 + cpuWindow)} after up)`, await snapshot(aio, cpuWindow), cpuWindow);

    if (!values['no-guest']) {
      // One guest the way a user makes it: a tenant network behind a router on `public`.
      const tb = Date.now();
      await aio.openstackJson(['network', 'create', 'fp-net'], 'demo');
      await aio.openstackJson(['subnet', 'create', '--network', 'fp-net', '--subnet-range', '10.77.0.0/24', 'fp-sub'], 'demo');
      await aio.openstackJson(['router', 'create', 'fp-router'], 'demo');
      for (const args of [['router', 'set', '--external-gateway', 'public', 'fp-router'], ['router', 'add', 'subnet', 'fp-router', 'fp-sub']]) {
        const r = await aio.openstack(args, 'demo');
        if (r.code !== 0) throw new Error(`openstack ${args.join(' ')}: ${r.stderr}`);
      }
      const server = await aio.openstackJson<{ id: string; status: string }>(['server', 'create', '--image', 'stratus-test', '--flavor', 'm1.nano',
        '--network', 'fp-net', '--wait', 'fp-guest'], 'demo');
      if (server.status !== 'ACTIVE') throw new Error(`server ${server.id} is ${server.status}`);
      await until('the guest to finish booting (console marker "ready")', () => parseGuestMarkers(aio.console(server.id)).ready, 600_000);
      console.log(`\none guest: network, subnet, router and server ACTIVE and booted in ${secs(Date.now() - tb)}; idling ${secs(IDLE_MS)}`);
      await sleep(Math.max(0, IDLE_MS - cpuWindow));
      print('idle, one idle test guest (m1.nano) on a tenant network with a router', await snapshot(aio, cpuWindow), cpuWindow);
    }
  } catch (e) {
    failed = true;
    console.error(`footprint failed: ${(e as Error).stack ?? e}`);
  } finally {
    const left = await aio.down();
    if (!reportCleanup(left)) failed = true;
  }
  return failed ? 1 : 0;
}

process.exit(await main());
