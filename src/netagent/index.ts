// The network side of the host agents (/network/agent/v1): each agent long-polls the desired
// state of its host's data plane (computed by the network service), reports its ports'
// status, registers its VXLAN endpoint, and relays its guests' metadata requests here.
// Authenticated by the agent token (DATA_DIR/agent-token), as /compute/agent/v1.
import { createHash, timingSafeEqual } from 'node:crypto';
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

export interface NetAgentModule extends ServiceModule {
  metadata: MetadataApi;
  /** The desired data plane of one host, with its revision. */
  desired(host: string): Promise<HostNetworkDesired>;
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
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createNetAgent(ctx: ServiceContext, deps: { network: NetworkModule; compute: ComputeModule }): NetAgentModule {
  let secretValue: string | undefined;
  const secret = () => (secretValue ??= ensureMetadataSecret(ctx.cfg.dataDir));
  const metadata = new MetadataApi(deps.network, deps.compute, secret);
  const desired = async (host: string): Promise<HostNetworkDesired> => {
    const state = await deps.network.service.hostNetworkState(host);
    const revision = createHash('sha256').update(JSON.stringify(state)).digest('hex').slice(0, 24);
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

      // Long poll: recomputed every second (another controller copy may have made the change)
      // until its revision differs from `since` or the wait is over.
      scope.get('/hosts/:host/state', {
        schema: {
          params: HostParams,
          querystring: Type.Object({
            since: Type.Optional(Type.String({ maxLength: 64 })),
            wait: Type.Optional(Type.Integer({ minimum: 0, maximum: 60 })),
          }),
        },
      }, async (req) => {
        const deadline = Date.now() + (req.query.wait ?? 0) * 1000;
        for (;;) {
          const d = await desired(req.params.host);
          if (d.revision !== req.query.since || Date.now() >= deadline || stopping || req.raw.destroyed) return d;
          await sleep(Math.min(1000, Math.max(0, deadline - Date.now())));
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
    async stop() { stopping = true; },
  };
}
