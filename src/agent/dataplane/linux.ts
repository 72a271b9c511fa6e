// Reading and changing namespaces, links and addresses with iproute2 (JSON output).
import { readFileSync } from 'node:fs';
import { ChangeLog, run, runIn } from './exec.js';

export interface Link {
  name: string;
  /** "bridge", "veth", "vxlan", "tun", "vlan", ... ('' for lo and plain devices). */
  kind: string;
  master: string | null;
  mtu: number;
  up: boolean;
  mac: string;
  /** vlan id for vlan devices; VNI for vxlan devices. */
  id: number | null;
  /** vxlan: local address. */
  local: string | null;
}

const ipArgs = (ns: string | null) => (ns ? ['-n', ns] : []);

export async function listNetns(): Promise<string[]> {
  const out = await run('ip', ['-j', 'netns', 'list']);
  const list = out.trim() ? (JSON.parse(out) as { name: string }[]) : [];
  return list.map((n) => n.name);
}

export async function ensureNetns(ns: string, log: ChangeLog): Promise<boolean> {
  if ((await listNetns()).includes(ns)) return false;
  try {
    await log.change('ip', ['netns', 'add', ns]);
  } catch (e) {
    // Another agent of this machine may have just made a shared namespace.
    if (!(await listNetns()).includes(ns)) throw e;
  }
  await log.change('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  return true;
}

/** Pids of the processes inside a namespace. */
export async function netnsPids(ns: string): Promise<number[]> {
  const out = await run('ip', ['netns', 'pids', ns]).catch(() => '');
  return out.split(/\s+/).filter(Boolean).map(Number);
}

/**
 * Deletes a namespace this agent owns, first ending the processes inside it (dnsmasq, metadata
 * proxy): they are ours by construction, since only Stratus starts processes in its namespaces.
 */
export async function deleteNetns(ns: string, log: ChangeLog): Promise<void> {
  for (const pid of await netnsPids(ns)) killPid(pid);
  for (let i = 0; i < 50 && (await netnsPids(ns)).length; i++) await sleep(20);
  for (const pid of await netnsPids(ns)) killPid(pid, 'SIGKILL');
  await log.change('ip', ['netns', 'del', ns]);
}

export function killPid(pid: number, sig: NodeJS.Signals = 'SIGTERM'): void {
  try { process.kill(pid, sig); } catch { /* already gone */ }
}

export function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

/** The command line of a live process ('' if gone): used to check a pid file still names our process. */
export function cmdlineOf(pid: number): string {
  try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' '); } catch { return ''; }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function links(ns: string | null): Promise<Map<string, Link>> {
  const out = await run('ip', [...ipArgs(ns), '-j', '-d', 'link', 'show']);
  const res = new Map<string, Link>();
  for (const l of JSON.parse(out) as any[]) {
    const info = l.linkinfo ?? {};
    const data = info.info_data ?? {};
    res.set(l.ifname, {
      name: l.ifname, kind: info.info_kind ?? '', master: l.master ?? null, mtu: l.mtu,
      up: (l.flags as string[]).includes('UP'), mac: l.address ?? '',
      id: info.info_kind === 'vlan' ? data.id ?? null : info.info_kind === 'vxlan' ? data.id ?? null : null,
      local: data.local ?? null,
    });
  }
  return res;
}

/** Interface → its addresses as "ip/prefix" (global and link scope, IPv4 and IPv6). */
export async function addresses(ns: string): Promise<Map<string, string[]>> {
  const out = await run('ip', ['-n', ns, '-j', 'addr', 'show']);
  const res = new Map<string, string[]>();
  for (const l of JSON.parse(out) as any[]) {
    res.set(l.ifname, (l.addr_info ?? []).filter((a: any) => a.scope !== 'link' || a.family === 'inet')
      .map((a: any) => `${a.local}/${a.prefixlen}`));
  }
  return res;
}

/** Makes a link's addresses exactly `want` (IPv6 link-local ones are left alone). */
export async function syncAddresses(ns: string, dev: string, have: string[], want: string[], log: ChangeLog): Promise<void> {
  for (const a of have) if (!want.includes(a)) await log.change('ip', ['-n', ns, 'addr', 'del', a, 'dev', dev]);
  for (const a of want) if (!have.includes(a)) await log.change('ip', ['-n', ns, 'addr', 'add', a, 'dev', dev]);
}

/** Sets link attributes that differ (mtu, master, up, mac). */
export async function fixLink(ns: string, have: Link, want: { mtu?: number; master?: string | null; up?: boolean; mac?: string },
  log: ChangeLog): Promise<void> {
  const set = ['-n', ns, 'link', 'set', 'dev', have.name];
  if (want.mac !== undefined && have.mac.toLowerCase() !== want.mac.toLowerCase()) await log.change('ip', [...set, 'address', want.mac]);
  if (want.mtu !== undefined && have.mtu !== want.mtu) await log.change('ip', [...set, 'mtu', String(want.mtu)]);
  if (want.master !== undefined && have.master !== want.master) {
    await log.change('ip', [...set, ...(want.master ? ['master', want.master] : ['nomaster'])]);
  }
  if (want.up !== undefined && have.up !== want.up) await log.change('ip', [...set, want.up ? 'up' : 'down']);
}

/** Reads and sets sysctls inside a namespace (keys with dots; values as strings). */
export async function syncSysctls(ns: string, want: Record<string, string>, log: ChangeLog): Promise<void> {
  const keys = Object.keys(want);
  const out = await runIn(ns, 'sysctl', ['-n', ...keys]).catch(() => '');
  const have = out.split('\n');
  const diff = keys.filter((k, i) => (have[i] ?? '').trim() !== want[k]);
  if (diff.length) await log.change('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', ...diff.map((k) => `${k}=${want[k]}`)]);
}

/** The routes of a namespace's main table, as comparable strings "dst via gw dev" (kernel/link routes excluded). */
export async function staticRoutes(ns: string): Promise<{ dst: string; gateway: string | null; dev: string }[]> {
  const out = await run('ip', ['-n', ns, '-j', '-4', 'route', 'show', 'table', 'main']);
  return (JSON.parse(out) as any[]).filter((r) => r.protocol !== 'kernel')
    .map((r) => ({ dst: r.dst === 'default' ? '0.0.0.0/0' : r.dst.includes('/') ? r.dst : `${r.dst}/32`, gateway: r.gateway ?? null, dev: r.dev }));
}
