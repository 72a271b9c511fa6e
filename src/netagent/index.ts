// The network side of the host agents (/network/agent/v1): each agent long-polls the desired
// state of its host's data plane (computed by the network service), reports its ports'
// status, registers its VXLAN endpoint, and relays its guests' metadata requests here.
// Authenticated by the agent token (DATA_DIR/agent-token), as /compute/agent/v1.
import { timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { neutronError, notFound, unauthorized } from '../core/errors.js';
import { useErrorStyle } from '../core/http.js';
import { secret as newSecret } from '../core/ids.js';
import type { ServiceContext, ServiceModule } from '../core/service.js';
import type { ComputeModule } from '../compute/index.js';
import type { NetworkModule } from '../network/index.js';
import { MetadataApi } from './metadata.js';
import type { HostNetworkDesired } from './protocol.js';
import { HostStateCache } from './revision.js';

export interface NetAgentModule extends ServiceModule {
  metadata: MetadataApi;
  /** The desired data plane of one host, with its revision. */
  desired(host: string): Promise<HostNetworkDesired>;
  /** Host states computed since start (measurements, tests). */
  readonly computedStates: number;
}

/** Reads DATA_DIR/metadata-secret, creating it (mode 0600) on the first start. */
export function ensureMetadataSecret(dataDir: string): string {
  const file = join(dataDir, 'metadata-secret');
  if (!existsSync(file)) {
    try { writeFileSync(file, `${newSecret(32)}\n`, { mode: 0o600, flag: 'wx' }); } catch { /* another copy made it */ }
  }
  return readFileSync(file, 'utf8').trim();
}

const HostParams = Type.Object({ host: Type.String({ minLength: 1, maxLength: 255, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' }) });
const IPV4 = '^(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}$';

export function createNetAgent(ctx: ServiceContext, deps: { network: NetworkModule; compute: ComputeModule }): NetAgentModule {
  let secretValue: string | undefined;
  const secret = () => (secretValue ??= ensureMetadataSecret(ctx.cfg.dataDir));
  const metadata = new MetadataApi(deps.network, deps.compute, secret);
  const cache = new HostStateCache(deps.network.service);
  // An agent's state polls are its heartbeat (Neutron's agents `alive`); written at most every
  // 20 s per host, so the polls stay cheap.
  const beats = new Map<string, number>();
  const heartbeat = async (host: string) => {
    if (Date.now() - (beats.get(host) ?? 0) < 20_000) return;
    beats.set(host, Date.now());
    await deps.network.service.agentHeartbeat(host);
  };
  const desired = async (host: string): Promise<HostNetworkDesired> => {
    const { revision, state } = await cache.desired(host);
    return { revision, state };
  };
  const requireAgent = async (req: FastifyRequest): Promise<void> => {
    const h = req.headers.authorization;
    const given = Buffer.from(typeof h === 'string' && h.startsWith('Bearer ') ? h.slice(7) : '');
    const want = Buffer.from(deps.compute.agentToken());
    if (given.length !== want.length || !timingSafeEqual(given, want)) throw unauthorized('A valid agent token is required.');
  };
  let stopping = false;

  return {
    name: 'netagent',
    prefix: '/network/agent/v1',
    migrations: {},
    catalog: [],
    metadata,
    desired,
    get computedStates() { return cache.computed; },
    async routes(app) {
      useErrorStyle(app, neutronError);
      const scope = app.withTypeProvider<TypeBoxTypeProvider>();
      scope.addHook('preHandler', requireAgent);

      scope.put('/hosts/:host', {
        schema: { params: HostParams, body: Type.Object({ underlayIp: Type.Union([Type.Null(), Type.String({ pattern: IPV4 })]) }, { additionalProperties: false }) },
      }, async (req) => {
        await deps.network.service.registerHost(req.params.host, req.body.underlayIp);
        return { host: req.params.host, underlayIp: req.body.underlayIp };
      });

      // Long poll until the state's revision differs from `since` or the wait is over. The state is
      // recomputed only when the network revision moved (HostStateCache): an unchanged state
      // costs one primary-key read, whichever controller copy the agent asks.
      scope.get('/hosts/:host/state', {
        schema: {
          params: HostParams,
          querystring: Type.Object({
            since: Type.Optional(Type.String({ maxLength: 64 })),
            wait: Type.Optional(Type.Integer({ minimum: 0, maximum: 60 })),
          }),
        },
      }, async (req, reply) => {
        await heartbeat(req.params.host);
        const deadline = Date.now() + (req.query.wait ?? 0) * 1000;
        let gone = false;
        // The response's 'close' before we answered: the agent hung up (restart, shutdown).
        const closed = new Promise<void>((r) => reply.raw.once('close', () => { gone = true; r(); }));
        for (;;) {
          const d = await cache.desired(req.params.host);
          if (d.revision !== req.query.since || Date.now() >= deadline || stopping || gone) {
            return { revision: d.revision, state: d.state } satisfies HostNetworkDesired;
          }
          await Promise.race([cache.wait(d.networkRevision, deadline - Date.now()), closed]);
        }
      });

      scope.post('/hosts/:host/ports', {
        schema: {
          params: HostParams,
          body: Type.Object({ ports: Type.Record(Type.String({ maxLength: 64 }), Type.Union([Type.Literal('ACTIVE'), Type.Literal('DOWN')])) },
            { additionalProperties: false }),
        },
      }, async (req) => {
        const changed = await deps.network.service.reportPortStatus(req.params.host, req.body.ports);
        return { changed };
      });

      scope.get('/metadata-secret', async () => ({ secret: secret() }));

      // The guests' metadata requests, relayed by the agent with the proxy's signed headers.
      scope.all('/metadata/*', async (req, reply) => {
        const path = req.url.slice(req.url.indexOf('/metadata') + '/metadata'.length) || '/';
        const a = await metadata.answer(req.headers, path);
        reply.code(a.status).header('content-type', a.contentType);
        return a.body;
      });
      scope.all('/metadata', async () => { throw notFound('use /metadata/<path>'); });
    },
    async start() { secret(); },
    async stop() { stopping = true; cache.close(); },
  };
}
