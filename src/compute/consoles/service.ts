// Remote consoles (Nova's os-remote-consoles + consoleauth): a console URL carries a random
// token, stored only as its sha256, bound to one instance and valid for a TTL. The console proxy
// (proxy.ts) looks tokens up and bridges the browser's WebSocket to the guest's VNC server.
import { createHash } from 'node:crypto';
import type { ExpressionBuilder, Kysely } from 'kysely';
import { conflict } from '../../core/errors.js';
import { nowIso, secret } from '../../core/ids.js';
import type { Logger } from '../../core/log.js';
import { statusOf, taskStateOf, vmStateOf } from '../api/server-views.js';
import type { InstanceLike } from '../servers/ports.js';
import type { ServerService } from '../servers/service.js';

/** Where a guest's VNC server listens, as its host agent reports it. */
export type VncAddress = { unixSocket: string } | { host: string; port: number };

export interface ConsoleConfig {
  /** Seconds a console URL stays valid (Nova's [consoleauth] token_ttl). */
  tokenTtlSec: number;
  /** Public base URL of the console proxy; default `<public URL>/compute/console`. */
  proxyBaseUrl?: string;
  /** Where the noVNC web client is installed (Debian's `novnc` package). */
  novncDir: string;
  /** Extra WebSocket origins (host or host:port) allowed besides the proxy's own host. */
  allowedOrigins: string[];
}

export const DEFAULT_CONSOLE: ConsoleConfig = { tokenTtlSec: 600, novncDir: '/usr/share/novnc', allowedOrigins: [] };

/** `compute.console` in stratus.yaml, over the defaults; bad values fall back to them. */
export function consoleConfig(compute: unknown): ConsoleConfig {
  const c = (compute as { console?: Partial<ConsoleConfig> } | undefined)?.console ?? {};
  const ttl = Number(c.tokenTtlSec);
  return {
    tokenTtlSec: Number.isFinite(ttl) && ttl > 0 ? ttl : DEFAULT_CONSOLE.tokenTtlSec,
    proxyBaseUrl: typeof c.proxyBaseUrl === 'string' && c.proxyBaseUrl ? c.proxyBaseUrl.replace(/\/+$/, '') : undefined,
    novncDir: typeof c.novncDir === 'string' && c.novncDir ? c.novncDir : DEFAULT_CONSOLE.novncDir,
    allowedOrigins: Array.isArray(c.allowedOrigins) ? c.allowedOrigins.map(String) : [],
  };
}

/** What a valid token opens. */
export interface ConsoleTarget {
  instanceId: string;
  projectId: string;
  consoleType: string;
  host: string;
  port: number | null;
  internalAccessPath: string | null;
  expiresAt: string;
}

export interface ConsoleInstances {
  getInstance(id: string): Promise<InstanceLike | undefined>;
  vncAddress(id: string): Promise<VncAddress | undefined>;
}

const hash = (token: string) => createHash('sha256').update(token).digest('hex');

export class ConsoleService {
  private sweep: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Kysely<any>,
    private readonly d: { servers: ServerService; instances: ConsoleInstances; log: Logger },
    readonly cfg: ConsoleConfig,
    private readonly baseUrl: () => string,
  ) {}

  /** The proxy's public base URL (the noVNC pages and the WebSocket live under it). */
  proxyBase(): string {
    return this.cfg.proxyBaseUrl ?? `${this.baseUrl()}/compute/console`;
  }

  /**
   * A console URL for the caller's server (already authorized by the route): the server must be
   * ACTIVE and its host must report a VNC server. Returns the noVNC page URL with the token.
   */
  async create(c: { admin: boolean; projectId: string }, serverId: string, consoleType: 'novnc'): Promise<{ url: string; token: string }> {
    const s = await this.d.servers.get(c, serverId);
    const inst = await this.d.instances.getInstance(serverId);
    const status = statusOf(vmStateOf(s, inst), taskStateOf(s, inst));
    if (status !== 'ACTIVE' || !s.host) throw conflict(`Instance ${serverId} is not ready: a console needs an ACTIVE server, it is ${status}.`);
    const addr = await this.d.instances.vncAddress(serverId);
    if (!addr) throw conflict(`Instance ${serverId} is not ready: its host reports no VNC server for it.`);
    const token = secret(32);
    const now = new Date();
    await this.db.insertInto('compute_console_tokens').values({
      token_hash: hash(token), instance_id: serverId, project_id: s.projectId, console_type: consoleType,
      host: 'unixSocket' in addr ? s.host : addr.host,
      port: 'unixSocket' in addr ? null : addr.port,
      internal_access_path: 'unixSocket' in addr ? addr.unixSocket : null,
      created_at: now.toISOString(), expires_at: new Date(now.getTime() + this.cfg.tokenTtlSec * 1000).toISOString(),
    }).execute();
    return { url: this.urlFor(token), token };
  }

  /** noVNC's vnc_lite.html takes the WebSocket path (relative to the host root) in `path`. */
  urlFor(token: string): string {
    const base = this.proxyBase();
    const wsPath = `${new URL(base).pathname.replace(/^\/+|\/+$/g, '')}/websockify?token=${token}`;
    return `${base}/vnc_lite.html?path=${encodeURIComponent(wsPath.replace(/^\/+/, ''))}`;
  }

  /** What `token` opens; undefined when unknown, expired, or its server is deleted or being deleted. */
  async validate(token: string): Promise<ConsoleTarget | undefined> {
    if (!token || token.length > 256) return undefined;
    const row = await this.db.selectFrom('compute_console_tokens').selectAll()
      .where('token_hash', '=', hash(token)).where('expires_at', '>', nowIso()).executeTakeFirst();
    if (!row) return undefined;
    const s = await this.d.servers.store.get(row.instance_id as string);
    if (!s || s.deleted || s.task?.type === 'delete' || s.taskState === 'deleting') return undefined;
    return {
      instanceId: row.instance_id, projectId: row.project_id, consoleType: row.console_type, host: row.host,
      port: row.port === null ? null : Number(row.port), internalAccessPath: row.internal_access_path, expiresAt: row.expires_at,
    };
  }

  /** Where the instance's VNC server is now (asked of its host agent at connect time). */
  vncAddress(instanceId: string): Promise<VncAddress | undefined> {
    return this.d.instances.vncAddress(instanceId);
  }

  /** Drops expired tokens and those of deleted servers. */
  async purge(): Promise<number> {
    const a = await this.db.deleteFrom('compute_console_tokens').where('expires_at', '<=', nowIso()).executeTakeFirst();
    const b = await this.db.deleteFrom('compute_console_tokens')
      .where('instance_id', 'in', (q: ExpressionBuilder<any, any>) => q.selectFrom('compute_servers').select('id').where('deleted', '=', 1)).executeTakeFirst();
    return Number(a.numDeletedRows) + Number(b.numDeletedRows);
  }

  start(intervalMs = 60_000): void {
    this.sweep = setInterval(() => {
      this.purge().catch((e) => this.d.log.warn({ err: e }, 'console token purge failed'));
    }, intervalMs);
    this.sweep.unref();
  }

  stop(): void {
    if (this.sweep) clearInterval(this.sweep);
    this.sweep = undefined;
  }
}
