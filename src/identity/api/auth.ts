// /v3/auth/*: issue, validate, check and revoke tokens; what the token's user may scope to.
import { Type } from '@sinclair/typebox';
import type { App } from '../../core/http.js';
import { authOf } from '../../core/auth.js';
import { badRequest, forbidden } from '../../core/errors.js';
import { bool } from '../store.js';
import { SYSTEM_TARGET, groupIdsOf } from '../roles.js';
import { allow, boolQuery, listBody, q, withLinks, type Deps } from './common.js';
import { renderDomain, renderProject } from './render.js';

const AuthBody = Type.Object({
  auth: Type.Object({
    identity: Type.Object({ methods: Type.Array(Type.String(), { minItems: 1 }) }),
    scope: Type.Optional(Type.Union([Type.Object({}), Type.String()])),
  }),
});

export async function authRoutes(app: App, d: Deps): Promise<void> {
  app.post('/auth/tokens', { schema: { body: AuthBody }, config: { public: true } }, async (req, reply) => {
    const data = await d.core.authenticate(req.body.auth);
    const nocatalog = boolQuery(q(req).nocatalog, 'nocatalog') ?? false;
    reply.code(201).header('X-Subject-Token', data.token);
    return d.core.tokenBody(data, !nocatalog);
  });

  const subjectOf = (headers: Record<string, unknown>): string => {
    const t = headers['x-subject-token'];
    if (typeof t !== 'string' || !t) throw badRequest('Expecting to find X-Subject-Token in the request headers.');
    return t;
  };

  app.get('/auth/tokens', async (req, reply) => {
    const subject = subjectOf(req.headers);
    const allowExpired = boolQuery(q(req).allow_expired, 'allow_expired') ?? false;
    const data = await d.core.validate(subject, { subject: true, allowExpired });
    allow(d, req, req.method === 'HEAD' ? 'identity:check_token' : 'identity:validate_token', { token: { user_id: data.user.id } });
    reply.header('X-Subject-Token', subject);
    const nocatalog = boolQuery(q(req).nocatalog, 'nocatalog') ?? false;
    return d.core.tokenBody(data, !nocatalog);
  });

  app.delete('/auth/tokens', async (req, reply) => {
    const subject = subjectOf(req.headers);
    const data = await d.core.validate(subject, { subject: true });
    allow(d, req, 'identity:revoke_token', { token: { user_id: data.user.id } });
    await d.core.revoke({ audit_id: data.payload.auditIds[0] });
    reply.code(204);
  });

  app.get('/auth/catalog', async (req) => {
    allow(d, req, 'identity:get_auth_catalog');
    const auth = authOf(req);
    if (!auth.projectId && !auth.domainId && !auth.system) {
      throw forbidden('A scoped token is required to read the catalog.');
    }
    return { catalog: await d.core.catalog(), links: { self: `${d.ctx.baseUrl()}${req.url}`, previous: null, next: null } };
  });

  app.get('/auth/projects', async (req) => {
    const auth = allow(d, req, 'identity:get_auth_projects');
    const ids = await accessibleTargets(d, auth.userId, ['UserProject', 'GroupProject']);
    const domainIds = await accessibleTargets(d, auth.userId, ['UserDomain', 'GroupDomain'], true);
    let rows = ids.length ? await d.core.db.selectFrom('identity_projects').selectAll().where('id', 'in', ids).execute() : [];
    if (domainIds.length) {
      const more = await d.core.db.selectFrom('identity_projects').selectAll().where('domain_id', 'in', domainIds).execute();
      rows = [...rows, ...more.filter((m) => !rows.some((r) => r.id === m.id))];
    }
    rows = rows.filter((r) => bool(r.enabled)).sort((a, b) => a.name.localeCompare(b.name));
    return listBody(d, req, 'projects', rows.map((r) => renderProject(d, r)));
  });

  app.get('/auth/domains', async (req) => {
    const auth = allow(d, req, 'identity:get_auth_domains');
    const ids = await accessibleTargets(d, auth.userId, ['UserDomain', 'GroupDomain']);
    const rows = ids.length ? await d.core.db.selectFrom('identity_domains').selectAll().where('id', 'in', ids).orderBy('name').execute() : [];
    return listBody(d, req, 'domains', rows.filter((r) => bool(r.enabled)).map((r) => renderDomain(d, r)));
  });

  app.get('/auth/system', async (req) => {
    const auth = allow(d, req, 'identity:get_auth_system');
    const ids = await accessibleTargets(d, auth.userId, ['UserSystem', 'GroupSystem']);
    return { system: ids.includes(SYSTEM_TARGET) ? [{ all: true }] : [], links: withLinks(d, 'auth', 'system', {}).links };
  });
}

/** Targets the user (directly or through groups) has any role on. */
async function accessibleTargets(d: Deps, userId: string, types: string[], inheritedOnly = false): Promise<string[]> {
  const actors = [userId, ...(await groupIdsOf(d.core.db, userId))];
  let qb = d.core.db.selectFrom('identity_assignments').select('target_id').distinct()
    .where('type', 'in', types).where('actor_id', 'in', actors);
  if (inheritedOnly) qb = qb.where('inherited', '=', 1);
  return (await qb.execute()).map((r) => r.target_id);
}
