// /os-keypairs: import or generate SSH key pairs (the private key is shown once).
import type { FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { App } from '../../core/http.js';
import { badRequest } from '../../core/errors.js';
import type { Keypair, KeypairService } from '../keypairs.js';
import { atLeast } from './microversion.js';
import { allow, intParam, lastOf, nextLink, type Query, type RouteDeps } from './common.js';

const KeypairCreate = Type.Object({
  keypair: Type.Object({
    name: Type.String({ minLength: 1, maxLength: 255 }),
    public_key: Type.Optional(Type.String({ minLength: 1, maxLength: 65535 })),
    type: Type.Optional(Type.String()),
    user_id: Type.Optional(Type.String({ minLength: 1 })),
  }, { additionalProperties: false }),
}, { additionalProperties: false });

const NameParams = Type.Object({ name: Type.String() });

function brief(req: FastifyRequest, k: Keypair) {
  return { name: k.name, public_key: k.publicKey, fingerprint: k.fingerprint, ...(atLeast(req, 2) ? { type: k.type } : {}) };
}

/** The user whose keys a request is about: the caller, or (2.10+, admin) `user_id`. */
function targetUser(deps: RouteDeps, req: FastifyRequest, rule: string, given?: string): string {
  if (given !== undefined && !atLeast(req, 10)) throw badRequest('user_id requires microversion 2.10 or later.');
  const c = allow(deps, req, rule, { user_id: given ?? req.auth?.userId, project_id: req.auth?.projectId });
  return given ?? c.userId;
}

export function registerKeypairRoutes(app: App, deps: RouteDeps, keypairs: KeypairService): void {
  app.get('/os-keypairs', async (req) => {
    const q = req.query as Query;
    const userId = targetUser(deps, req, 'os_compute_api:os-keypairs:index', lastOf(q.user_id));
    const paged = atLeast(req, 35);
    const limit = paged ? intParam('limit', lastOf(q.limit)) : undefined;
    const list = await keypairs.list(userId, { limit, marker: paged ? lastOf(q.marker) : undefined });
    const more = limit !== undefined && list.length === limit ? list[list.length - 1]!.name : undefined;
    const next = nextLink(deps, 'os-keypairs', { limit, user_id: lastOf(q.user_id) }, more);
    return { keypairs: list.map((k) => ({ keypair: brief(req, k) })), ...(next ? { keypairs_links: next } : {}) };
  });

  app.get('/os-keypairs/:name', { schema: { params: NameParams } }, async (req) => {
    const userId = targetUser(deps, req, 'os_compute_api:os-keypairs:show', lastOf((req.query as Query).user_id));
    const k = await keypairs.get(userId, req.params.name);
    return {
      keypair: {
        ...brief(req, k), user_id: k.userId, id: k.id, created_at: k.createdAt,
        deleted: false, deleted_at: null, updated_at: null,
      },
    };
  });

  app.post('/os-keypairs', { schema: { body: KeypairCreate } }, async (req, reply) => {
    const b = req.body.keypair;
    if (b.type !== undefined && !atLeast(req, 2)) throw badRequest('The key pair type requires microversion 2.2 or later.');
    if (b.public_key === undefined && atLeast(req, 92)) {
      throw badRequest('Keypair generation is not supported at microversion 2.92 or later; import a public_key.');
    }
    const userId = targetUser(deps, req, 'os_compute_api:os-keypairs:create', b.user_id);
    const k = await keypairs.create({
      userId, projectId: req.auth!.projectId ?? '', name: b.name, type: b.type, publicKey: b.public_key,
      extendedNames: atLeast(req, 92),
    });
    reply.code(atLeast(req, 2) ? 201 : 200);
    return {
      keypair: { ...brief(req, k), user_id: k.userId, ...(k.privateKey ? { private_key: k.privateKey } : {}) },
    };
  });

  app.delete('/os-keypairs/:name', { schema: { params: NameParams } }, async (req, reply) => {
    const userId = targetUser(deps, req, 'os_compute_api:os-keypairs:delete', lastOf((req.query as Query).user_id));
    await keypairs.delete(userId, req.params.name);
    return reply.code(atLeast(req, 2) ? 204 : 202).send();
  });
}
