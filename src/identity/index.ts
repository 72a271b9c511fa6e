// Identity (Keystone v3): the module the server composes, and the interface other services call.
import type { FastifyRequest } from 'fastify';
import type { AuthContext, TokenValidator } from '../core/auth.js';
import { badRequest, keystoneError, unauthorized } from '../core/errors.js';
import { useErrorStyle, type App } from '../core/http.js';
import type { CatalogEntry, ServiceContext, ServiceModule } from '../core/service.js';
import { authRoutes } from './api/auth.js';
import type { Deps } from './api/common.js';
import { registerResourceRoutes } from './api/routes.js';
import { bootstrap } from './bootstrap.js';
import { KeyRing } from './keys.js';
import * as limits from './limits.js';
import { identityMigrations } from './migrations.js';
import { IDENTITY_RULES } from './policy.js';
import { IdentityCore } from './service.js';
import { bool, fromJson } from './store.js';
import { ec2Id } from './api/creds.js';

export interface BootstrapOptions {
  catalog: CatalogEntry[];
  baseUrl: string;
  regionId: string;
}

export interface BootstrapResult {
  /** Generated passwords, only on the start that created the users. */
  adminPassword?: string;
  demoPassword?: string;
}

export interface LimitQuery {
  projectId: string;
  serviceType: string;    // 'image', 'compute', 'network', ...
  resourceName: string;   // 'image_count_total', 'instances', ...
  regionId?: string;
}

export interface ProjectInfo {
  id: string;
  name: string;
  domainId: string;
  enabled: boolean;
  parentId: string | null;
}

/** What the server and other services may call on identity (in-process; an HTTP client later). */
export interface IdentityModule extends ServiceModule, TokenValidator {
  /** Idempotent: creates the default domain, roles, admin/demo, region and catalog; refreshes endpoint URLs. */
  bootstrap(opts: BootstrapOptions): Promise<BootstrapResult>;
  /** Unified limits: the project's limit, else the registered default; undefined when none is registered. */
  getLimit(q: LimitQuery): Promise<number | undefined>;
  /** Creates or updates the project's limit (os-quota-sets and Neutron quotas write through this). */
  setProjectLimit(q: LimitQuery & { value: number }): Promise<void>;
  /** Projects with a limit of their own on `serviceType` (whatever its value). */
  projectsWithLimits(serviceType: string): Promise<string[]>;
  /** Registers a default limit if none exists yet (services call this at start for their resources). */
  ensureRegisteredLimit(q: Omit<LimitQuery, 'projectId'> & { defaultLimit: number; description?: string }): Promise<void>;
  /** Changes a registered (default) limit, registering it if needed. */
  setRegisteredLimit(q: Omit<LimitQuery, 'projectId'> & { value: number }): Promise<void>;
  getProject(id: string): Promise<ProjectInfo | undefined>;
  /** An EC2 credential by access key (the S3 API verifies request signatures with its secret). */
  getEc2Credential(access: string): Promise<Ec2Credential | undefined>;
  /** The caller a signed (non-token) request stands for; 401 when the user or its roles are gone. */
  authContextFor(userId: string, projectId: string): Promise<AuthContext>;
  /** A project by name in a domain (default: 'default'); services use it to find the bootstrap projects. */
  findProject(name: string, domainId?: string): Promise<ProjectInfo | undefined>;
}

export interface Ec2Credential {
  access: string;
  secret: string;
  userId: string;
  projectId: string;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Routes that need no token (version discovery, POST /v3/auth/tokens). */
    public?: boolean;
  }
}

const V3_VERSION = 'v3.14';

function versionDoc(baseUrl: string) {
  return {
    id: V3_VERSION, status: 'stable', updated: '2020-04-07T00:00:00Z',
    links: [{ rel: 'self', href: `${baseUrl}/identity/v3/` }],
    'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.identity-v3+json' }],
  };
}

function hasNul(v: unknown, depth = 0): boolean {
  if (typeof v === 'string') return v.includes('\u0000');
  if (!v || typeof v !== 'object' || depth > 32) return false;
  return Object.entries(v).some(([k, x]) => k.includes('\u0000') || hasNul(x, depth + 1));
}

export function createIdentity(ctx: ServiceContext): IdentityModule {
  ctx.policy.registerDefaults(IDENTITY_RULES);
  const ring = new KeyRing(ctx.cfg.dataDir);
  const core = new IdentityCore(ctx, ring);
  const deps: Deps = { ctx, core };

  const module: IdentityModule = {
    name: 'identity',
    prefix: '/identity',
    migrations: { ...identityMigrations, '0002_seal_credential_blobs': core.blobs.migration() },
    catalog: [{ type: 'identity', name: 'keystone', description: 'Identity (Keystone v3)', path: '/identity/v3' }],

    async routes(app: App) {
      useErrorStyle(app, keystoneError);
      app.get('/', { config: { public: true } }, async (_req, reply) => {
        reply.code(300);
        return { versions: { values: [versionDoc(ctx.baseUrl())] } };
      });
      await app.register(async (v3) => {
        v3.addHook('onRequest', async (req: FastifyRequest) => {
          if (req.routeOptions.config?.public) return;
          const token = req.headers['x-auth-token'];
          req.auth = await module.validateToken(typeof token === 'string' ? token : '');
        });
        // PostgreSQL cannot store NUL in text: refuse it up front (a clean 400, not a 500).
        v3.addHook('preValidation', async (req: FastifyRequest) => {
          if (hasNul(req.params) || hasNul(req.query) || hasNul(req.body)) {
            throw badRequest('Invalid input: NUL characters are not allowed.');
          }
        });
        v3.get('/', { config: { public: true } }, async () => ({ version: versionDoc(ctx.baseUrl()) }));
        await authRoutes(v3, deps);
        await registerResourceRoutes(v3, deps);
      }, { prefix: '/v3' });
    },

    async bootstrap(opts) {
      return bootstrap(core.db, opts);
    },

    async validateToken(token: string, opts?: { allowExpired?: boolean }): Promise<AuthContext> {
      if (!token) throw unauthorized();
      return core.authContext(await core.validate(token, { allowExpired: opts?.allowExpired }));
    },

    getLimit: (q) => limits.getLimit(core.db, q),
    setProjectLimit: (q) => limits.setProjectLimit(core.db, q),
    ensureRegisteredLimit: (q) => limits.ensureRegisteredLimit(core.db, q),
    setRegisteredLimit: (q) => limits.setRegisteredLimit(core.db, q),
    projectsWithLimits: (t) => limits.projectsWithLimits(core.db, t),

    async getEc2Credential(access) {
      const r = await core.db.selectFrom('identity_credentials').selectAll()
        .where('id', '=', ec2Id(access)).where('type', '=', 'ec2').executeTakeFirst();
      if (!r || !r.project_id) return undefined;
      const blob = fromJson<{ access?: string; secret?: string }>(core.blobs.open(r.blob), {});
      if (blob.access !== access || typeof blob.secret !== 'string') return undefined;
      return { access, secret: blob.secret, userId: r.user_id, projectId: r.project_id };
    },

    authContextFor: (userId, projectId) => core.contextFor(userId, projectId),

    async getProject(id) {
      const p = await core.project(id);
      if (!p) return undefined;
      return { id: p.id, name: p.name, domainId: p.domain_id, enabled: bool(p.enabled), parentId: p.parent_id };
    },

    async findProject(name, domainId = 'default') {
      const r = await core.db.selectFrom('identity_projects').select('id')
        .where('domain_id', '=', domainId).where('name', '=', name).executeTakeFirst();
      return r ? module.getProject(r.id) : undefined;
    },
  };
  return module;
}
