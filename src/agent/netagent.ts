// The agent's networking loop: long-polls its host's desired data plane from the controller
// (/network/agent/v1, see netagent/protocol.ts), hands it to LinuxDataplane.converge(), reports
// the ports' status, and relays the guests' metadata requests: the metadata proxies in router and
// DHCP namespaces forward to a unix socket this agent owns (DATA_DIR/agent/metadata.sock, 0600),
// and the agent passes each request, with the proxy's signed headers, to the controller with the
// agent token. Nothing of it leaves the host but the agent's own connection to the controller.
import { chmodSync, mkdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { DEFAULT_PROVIDER_NS, LinuxDataplane } from './dataplane/driver.js';
import type { PhysicalNetworkMapping, UnderlayMapping } from './dataplane/shared.js';
import type { HostNetworkState } from './dataplane/model.js';
import { H_FORWARDED_FOR, H_NETWORK_ID, H_ROUTER_ID, H_SIGNATURE } from './dataplane/metadata-contract.js';
import type { HostNetworkDesired, MetadataSecret } from '../netagent/protocol.js';
import { METADATA_RELAY_PATH } from '../netagent/protocol.js';
import { claimOwnership } from '../core/process.js';

/** Where the agent records how its data plane is laid out, for `stratus exec-external|ssh|down --purge`. */
export interface NetworkLayout {
  prefix: string;
  stateDir: string;
  providerNetns: string;
  physicalNetworks: Record<string, PhysicalNetworkMapping>;
  underlay?: UnderlayMapping;
}

export const PUBLIC_PHYSNET = 'physnet-public';

/** The layout of an agent: the safe all-in-one defaults, or test overrides (another prefix and provider namespace). */
export function networkLayout(o: { prefix?: string; providerNetns?: string; underlay?: UnderlayMapping }): NetworkLayout {
  const prefix = o.prefix ?? 'stratus-';
  const providerNetns = o.providerNetns ?? DEFAULT_PROVIDER_NS;
  const pub: PhysicalNetworkMapping = { netns: providerNetns, bridge: 'br-public', addresses: ['203.0.113.1/24'] };
  // The network service names the physical network of `public` "physnet-public"; "public" is
  // the data plane's own default name for the same segment.
  return {
    prefix, providerNetns, stateDir: `/run/stratus/dataplane-${prefix.replace(/-$/, '')}`,
    physicalNetworks: { [PUBLIC_PHYSNET]: pub, public: pub }, ...(o.underlay ? { underlay: o.underlay } : {}),
  };
}

export const layoutFile = (dataDir: string) => join(dataDir, 'agent', 'network.json');

export function readLayout(dataDir: string): NetworkLayout {
  try { return JSON.parse(readFileSync(layoutFile(dataDir), 'utf8')) as NetworkLayout; } catch { return networkLayout({}); }
}

export function dataplaneFor(layout: NetworkLayout, metadata?: { socketPath: string; secret: string }): LinuxDataplane {
  return new LinuxDataplane({ prefix: layout.prefix, stateDir: layout.stateDir, physicalNetworks: layout.physicalNetworks,
    ...(layout.underlay ? { underlay: layout.underlay } : {}), ...(metadata ? { metadata } : {}) });
}

export interface NetAgentOptions {
  controllerUrl: string;
  token: string;
  host: string;
  dataDir: string;
  log: Logger;
  layout: NetworkLayout;
  /** This host's VXLAN endpoint on the underlay (null: single host, no VXLAN). */
  underlayIp: string | null;
  /** Converge at least this often (taps of restarted guests, drift). */
  resyncMs?: number;
  /**
   * A state poll (the controller answers within 25 s) unanswered this long is given up and asked
   * again: a controller that vanished without closing the connection must not stall the agent.
   */
  watchTimeoutMs?: number;
}

/** Other calls to the controller: given up after this long (then retried by their loop). */
const CALL_TIMEOUT_MS = 30_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class NetAgent {
  private readonly base: string;
  readonly socketPath: string;
  private dp!: LinuxDataplane;
  private relay?: Server;
  private stopping = false;
  private readonly abort = new AbortController();
  private state?: HostNetworkState;
  private revision = '';
  private kicked = false;
  private wake?: () => void;
  private lastReport = '';
  /** Port → status as the last converge found it (ACTIVE: its tap is plugged, with its rules). */
  private portStatus: Record<string, string> = {};
  private loops: Promise<void>[] = [];
  private readonly releases: (() => void)[] = [];
  /** Number of converges done (tests). */
  converged = 0;

  constructor(private readonly o: NetAgentOptions) {
    this.base = `${o.controllerUrl.replace(/\/+$/, '')}/network/agent/v1`;
    this.socketPath = join(o.dataDir, 'agent', 'metadata.sock');
  }

  async start(): Promise<void> {
    const { log } = this.o;
    const secret = await this.retry(async () => (await (await this.call('GET', '/metadata-secret')).json() as MetadataSecret).secret);
    if (this.stopping) return;
    this.claimLayout();
    mkdirSync(join(this.o.dataDir, 'agent'), { recursive: true, mode: 0o700 });
    writeFileSync(layoutFile(this.o.dataDir), JSON.stringify(this.o.layout, null, 2));
    this.dp = dataplaneFor(this.o.layout, { socketPath: this.socketPath, secret });
    await this.startRelay();
    await this.retry(() => this.call('PUT', `/hosts/${encodeURIComponent(this.o.host)}`, { underlayIp: this.o.underlayIp }));
    log.info({ underlayIp: this.o.underlayIp, prefix: this.o.layout.prefix }, 'network agent registered');
    this.loops.push(this.watchLoop(), this.convergeLoop());
  }

  /**
   * Two agents on one prefix (or one provider namespace) would each remove the other's namespaces
   * as strays: the second one refuses to start, saying which options tell them apart.
   */
  private claimLayout(): void {
    const { prefix, providerNetns } = this.o.layout;
    const mine = `data dir ${this.o.dataDir}`;
    const clash = (what: string) => (pid: number, owner: string) =>
      `another Stratus agent (pid ${pid}, ${owner || 'unknown data dir'}) already uses ${what}: ` +
      'give this agent its own --netns-prefix and --provider-netns';
    this.releases.push(
      claimOwnership(`/run/stratus/netns-prefix-${prefix.replace(/-$/, '')}.owner`, 'agent', clash(`the network namespace prefix '${prefix}'`), mine),
      claimOwnership(`/run/stratus/provider-netns-${providerNetns}.owner`, 'agent', clash(`the provider namespace '${providerNetns}'`), mine),
    );
  }

  /** Converge soon (a guest just started or got a NIC: its tap waits in the root namespace). */
  kick(): void {
    this.kicked = true;
    this.wake?.();
  }

  /**
   * Resolves once a converge that started after this call found these ports' taps plugged (bridge,
   * security groups, anti-spoofing): a live migration's destination says it is prepared only then.
   */
  async waitPlugged(portIds: string[], timeoutMs: number): Promise<void> {
    const from = this.converged;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.converged >= from + 2 && portIds.every((id) => this.portStatus[id] === 'ACTIVE')) return;
      if (this.stopping) throw new Error('the network agent is stopping');
      if (Date.now() > deadline) {
        const missing = portIds.filter((id) => this.portStatus[id] !== 'ACTIVE');
        throw new Error(`the data plane did not plug port(s) ${missing.join(', ')} within ${Math.round(timeoutMs / 1000)} s`);
      }
      this.kick();
      await sleep(300);
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.abort.abort();
    this.wake?.();
    await Promise.all(this.loops);
    await new Promise<void>((r) => (this.relay ? this.relay.close(() => r()) : r()));
    this.relay?.closeAllConnections?.();
    rmSync(this.socketPath, { force: true });
    for (const release of this.releases.splice(0)) release();
  }

  private async watchLoop(): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      try {
        const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.o.watchTimeoutMs ?? 60_000)]);
        const r = await this.call('GET', `/hosts/${encodeURIComponent(this.o.host)}/state?since=${encodeURIComponent(this.revision)}&wait=25`, undefined, signal);
        const d = await r.json() as HostNetworkDesired;
        failures = 0;
        if (d.revision !== this.revision) {
          this.revision = d.revision;
          this.state = d.state;
          // Report the ports' status again after a change: a port rebound here (live migration)
          // looks the same to this host, but only now does its report count.
          this.lastReport = '';
          this.kick();
        }
      } catch (e) {
        if (this.stopping) break;
        failures++;
        if (failures === 1 || failures % 30 === 0) this.o.log.warn({ err: (e as Error).message }, 'network watch failed; retrying');
        await sleep(Math.min(5000, 250 * failures));
      }
    }
  }

  private async convergeLoop(): Promise<void> {
    const every = this.o.resyncMs ?? 10_000;
    while (!this.stopping) {
      this.kicked = false;
      if (this.state) {
        await this.convergeOnce().catch((e) => { if (!this.stopping) this.o.log.error({ err: (e as Error).message }, 'network converge failed'); });
      }
      if (this.kicked || this.stopping) continue;
      await new Promise<void>((r) => {
        const t = setTimeout(r, every);
        this.wake = () => { clearTimeout(t); r(); };
      });
      this.wake = undefined;
    }
  }

  private async convergeOnce(): Promise<void> {
    const started = Date.now();
    const report = await this.dp.converge(this.state!);
    this.converged++;
    this.portStatus = { ...report.ports };
    if (report.changes) this.o.log.info({ changes: report.changes, ms: Date.now() - started, actions: report.actions?.slice(0, 50) }, 'network converged');
    for (const e of report.errors) this.o.log.warn({ err: e }, 'network converge: item not applied');
    const fp = JSON.stringify(report.ports);
    if (fp !== this.lastReport && Object.keys(report.ports).length) {
      await this.call('POST', `/hosts/${encodeURIComponent(this.o.host)}/ports`, { ports: report.ports });
      this.lastReport = fp;
    }
  }

  /** The metadata socket: only GET/HEAD, only the proxy's identifying headers pass on. */
  private async startRelay(): Promise<void> {
    rmSync(this.socketPath, { force: true });
    this.relay = createServer((req, res) => {
      if (req.method !== 'GET' && req.method !== 'HEAD') { res.writeHead(405).end(); return; }
      const headers: Record<string, string> = { Authorization: `Bearer ${this.o.token}` };
      for (const h of [H_FORWARDED_FOR, H_ROUTER_ID, H_NETWORK_ID, H_SIGNATURE]) {
        const v = req.headers[h];
        if (typeof v === 'string') headers[h] = v;
      }
      const url = `${this.o.controllerUrl.replace(/\/+$/, '')}${METADATA_RELAY_PATH}${req.url?.startsWith('/') ? req.url : '/'}`;
      fetch(url, { method: req.method, headers, signal: AbortSignal.timeout(20_000) }).then(async (r) => {
        const body = Buffer.from(await r.arrayBuffer());
        res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'text/plain', 'content-length': String(body.length) });
        res.end(req.method === 'HEAD' ? undefined : body);
      }).catch((e: Error) => {
        this.o.log.warn({ err: e.message }, 'metadata relay: controller unreachable');
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
        res.end('metadata service unavailable\n');
      });
    });
    await new Promise<void>((resolve, reject) => { this.relay!.once('error', reject); this.relay!.listen(this.socketPath, () => resolve()); });
    chmodSync(this.socketPath, 0o600);
  }

  private async retry<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try { return await fn(); } catch (e) {
        if (this.stopping) throw e;
        if (attempt === 1 || attempt % 30 === 0) this.o.log.warn({ err: (e as Error).message }, 'controller (network) not reachable yet');
        await sleep(Math.min(5000, 200 * attempt));
      }
    }
  }

  private async call(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.o.token}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(`${this.base}${path}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      signal: signal ?? AbortSignal.any([this.abort.signal, AbortSignal.timeout(CALL_TIMEOUT_MS)]),
    });
    if (!r.ok) throw new Error(`${method} ${path}: HTTP ${r.status} ${(await r.text().catch(() => '')).slice(0, 300)}`);
    return r;
  }
}
