// /v3/domains and /v3/projects (hierarchy via parent_id, tags).
import type { FastifyRequest } from 'fastify';
import type { App } from '../../core/http.js';
import { badRequest, forbidden, notFound } from '../../core/errors.js';
import { hexId, nowIso } from '../../core/ids.js';
import { toDbBool } from '../../core/db.js';
import { deleteDomain, deleteProject } from '../admin.js';
import { bool, fromJson, uniquely, type DomainRow, type ProjectRow } from '../store.js';
import { allow, boolQuery, extraOf, listBody, q, type Deps } from './common.js';
import { renderDomain, renderProject } from './render.js';
import { DomainCreate, DomainUpdate, ProjectCreate, ProjectUpdate, TagsBody } from './schemas.js';
import { IdParams } from './schemas.js';

type P = { id: string };
const DOMAIN_FIELDS = ['name', 'description', 'enabled', 'tags', 'explicit_domain_id', 'options'];
const PROJECT_FIELDS = ['name', 'domain_id', 'parent_id', 'description', 'enabled', 'is_domain', 'tags', 'options'];

export async function mustDomain(d: Deps, id: string): Promise<DomainRow> {
  const r = await d.core.domain(id);
  if (!r) throw notFound(`Could not find domain: ${id}.`);
  return r;
}

export async function mustProject(d: Deps, id: string): Promise<ProjectRow> {
  const r = await d.core.project(id);
  if (!r) throw notFound(`Could not find project: ${id}.`);
  return r;
}

/** The domain a new entity goes to when the request names none: the caller's. */
export function defaultDomainOf(req: FastifyRequest): string {
  const a = req.auth!;
  return a.domainId ?? a.projectDomainId ?? a.userDomainId ?? 'default';
}

const uniqueTags = (t: string[] | undefined) => (t ? [...new Set(t)] : undefined);

export async function projectRoutes(app: App, d: Deps): Promise<void> {
  // ---------- domains ----------
  app.post('/domains', { schema: { body: DomainCreate } }, async (req, reply) => {
    allow(d, req, 'identity:create_domain');
    const b = req.body.domain;
    const row: DomainRow = {
      id: b.explicit_domain_id ?? hexId(), name: b.name, description: b.description ?? '', enabled: toDbBool(b.enabled ?? true),
      tags: JSON.stringify(uniqueTags(b.tags) ?? []), extra: extraOf(b, DOMAIN_FIELDS), created_at: nowIso(),
    };
    await uniquely(`domain '${b.name}'`, () => d.core.db.insertInto('identity_domains').values(row).execute());
    reply.code(201);
    return { domain: renderDomain(d, row) };
  });

  app.get('/domains', async (req) => {
    allow(d, req, 'identity:list_domains');
    const f = q(req);
    let qb = d.core.db.selectFrom('identity_domains').selectAll().orderBy('name');
    if (f.name !== undefined) qb = qb.where('name', '=', f.name);
    const enabled = boolQuery(f.enabled, 'enabled');
    if (enabled !== undefined) qb = qb.where('enabled', '=', toDbBool(enabled));
    return listBody(d, req, 'domains', (await qb.execute()).map((r) => renderDomain(d, r)));
  });

  app.get<{ Params: P }>('/domains/:id', async (req) => {
    const r = await mustDomain(d, req.params.id);
    allow(d, req, 'identity:get_domain', { domain_id: r.id });
    return { domain: renderDomain(d, r) };
  });

  app.patch('/domains/:id', { schema: { params: IdParams, body: DomainUpdate } }, async (req) => {
    allow(d, req, 'identity:update_domain');
    const r = await mustDomain(d, req.params.id);
    const b = req.body.domain;
    const next: DomainRow = {
      ...r, name: b.name ?? r.name, description: b.description === undefined ? r.description : (b.description ?? ''),
      enabled: b.enabled === undefined ? r.enabled : toDbBool(b.enabled),
      tags: b.tags ? JSON.stringify(uniqueTags(b.tags)) : r.tags, extra: extraOf(b, DOMAIN_FIELDS, r.extra),
    };
    await uniquely(`domain '${next.name}'`, () => d.core.db.updateTable('identity_domains').set(next).where('id', '=', r.id).execute());
    if (bool(r.enabled) && !bool(next.enabled)) await d.core.revoke({ domain_id: r.id });
    return { domain: renderDomain(d, next) };
  });

  app.delete<{ Params: P }>('/domains/:id', async (req, reply) => {
    allow(d, req, 'identity:delete_domain');
    const r = await mustDomain(d, req.params.id);
    if (r.id === 'default') throw forbidden('The default domain cannot be deleted.');
    if (bool(r.enabled)) throw forbidden('Cannot delete a domain that is enabled, please disable it first.');
    await deleteDomain(d.core, r.id);
    reply.code(204);
  });

  // ---------- projects ----------
  app.post('/projects', { schema: { body: ProjectCreate } }, async (req, reply) => {
    allow(d, req, 'identity:create_project');
    const b = req.body.project;
    if (b.is_domain) throw badRequest('Projects acting as domains are not supported: create a domain instead.');
    let domainId = b.domain_id ?? undefined;
    let parentId: string | null = null;
    if (b.parent_id) {
      const parentDomain = await d.core.domain(b.parent_id);
      if (parentDomain) {
        domainId ??= parentDomain.id;
        if (domainId !== parentDomain.id) throw badRequest('The parent domain and domain_id differ.');
      } else {
        const parent = await d.core.project(b.parent_id);
        if (!parent) throw notFound(`Could not find project: ${b.parent_id}.`);
        domainId ??= parent.domain_id;
        if (domainId !== parent.domain_id) throw badRequest('A project must be in the same domain as its parent.');
        parentId = parent.id;
      }
    }
    domainId ??= defaultDomainOf(req);
    await mustDomain(d, domainId).catch(() => { throw badRequest(`Could not find domain: ${domainId}.`); });
    const row: ProjectRow = {
      id: hexId(), name: b.name, domain_id: domainId, parent_id: parentId, description: b.description ?? '',
      enabled: toDbBool(b.enabled ?? true), tags: JSON.stringify(uniqueTags(b.tags) ?? []),
      extra: extraOf(b, PROJECT_FIELDS), created_at: nowIso(),
    };
    await uniquely(`project '${b.name}' in domain ${domainId}`, () => d.core.db.insertInto('identity_projects').values(row).execute());
    reply.code(201);
    return { project: renderProject(d, row) };
  });

  app.get('/projects', async (req) => {
    const f = q(req);
    allow(d, req, 'identity:list_projects', { domain_id: f.domain_id });
    let qb = d.core.db.selectFrom('identity_projects').selectAll().orderBy('name');
    if (f.name !== undefined) qb = qb.where('name', '=', f.name);
    if (f.domain_id !== undefined) qb = qb.where('domain_id', '=', f.domain_id);
    if (f.parent_id !== undefined) {
      const isDomain = await d.core.domain(f.parent_id);
      qb = isDomain ? qb.where('domain_id', '=', f.parent_id).where('parent_id', 'is', null) : qb.where('parent_id', '=', f.parent_id);
    }
    const enabled = boolQuery(f.enabled, 'enabled');
    if (enabled !== undefined) qb = qb.where('enabled', '=', toDbBool(enabled));
    if (boolQuery(f.is_domain, 'is_domain')) return listBody(d, req, 'projects', []);
    let rows = await qb.execute();
    // Domain readers see their domain only.
    const a = req.auth!;
    if (!d.ctx.policy.check('cloud_reader', a)) rows = rows.filter((r) => r.domain_id === a.domainId);
    rows = rows.filter(tagFilter(f));
    return listBody(d, req, 'projects', rows.map((r) => renderProject(d, r)));
  });

  app.get<{ Params: P }>('/projects/:id', async (req) => {
    const r = await mustProject(d, req.params.id);
    allow(d, req, 'identity:get_project', { project_id: r.id, domain_id: r.domain_id });
    return { project: renderProject(d, r) };
  });

  app.patch('/projects/:id', { schema: { params: IdParams, body: ProjectUpdate } }, async (req) => {
    allow(d, req, 'identity:update_project');
    const r = await mustProject(d, req.params.id);
    const b = req.body.project;
    if (b.domain_id !== undefined && b.domain_id !== r.domain_id) throw badRequest('Cannot change the domain of a project.');
    if (b.parent_id !== undefined && b.parent_id !== (r.parent_id ?? r.domain_id)) throw forbidden('Cannot change the parent of a project.');
    if (b.is_domain) throw badRequest('Cannot make a project act as a domain.');
    const next: ProjectRow = {
      ...r, name: b.name ?? r.name, description: b.description === undefined ? r.description : (b.description ?? ''),
      enabled: b.enabled === undefined ? r.enabled : toDbBool(b.enabled),
      tags: b.tags ? JSON.stringify(uniqueTags(b.tags)) : r.tags, extra: extraOf(b, PROJECT_FIELDS, r.extra),
    };
    await uniquely(`project '${next.name}'`, () => d.core.db.updateTable('identity_projects').set(next).where('id', '=', r.id).execute());
    if (bool(r.enabled) && !bool(next.enabled)) await d.core.revoke({ project_id: r.id });
    return { project: renderProject(d, next) };
  });

  app.delete<{ Params: P }>('/projects/:id', async (req, reply) => {
    allow(d, req, 'identity:delete_project');
    const r = await mustProject(d, req.params.id);
    const child = await d.core.db.selectFrom('identity_projects').select('id').where('parent_id', '=', r.id).executeTakeFirst();
    if (child) throw forbidden(`Cannot delete project ${r.id}: it has child projects.`);
    await deleteProject(d.core, r.id);
    reply.code(204);
  });

  // ---------- project tags ----------
  const tagsOf = (r: ProjectRow) => fromJson<string[]>(r.tags, []);
  const saveTags = (id: string, tags: string[]) =>
    d.core.db.updateTable('identity_projects').set({ tags: JSON.stringify(tags) }).where('id', '=', id).execute();

  app.get<{ Params: P }>('/projects/:id/tags', async (req) => {
    const r = await mustProject(d, req.params.id);
    allow(d, req, 'identity:project_tags', { project_id: r.id, domain_id: r.domain_id });
    return { tags: tagsOf(r) };
  });
  app.put('/projects/:id/tags', { schema: { params: IdParams, body: TagsBody } }, async (req) => {
    allow(d, req, 'identity:update_project_tags');
    const r = await mustProject(d, req.params.id);
    const tags = uniqueTags(req.body.tags)!;
    await saveTags(r.id, tags);
    return { tags };
  });
  app.delete<{ Params: P }>('/projects/:id/tags', async (req, reply) => {
    allow(d, req, 'identity:update_project_tags');
    const r = await mustProject(d, req.params.id);
    await saveTags(r.id, []);
    reply.code(204);
  });
  app.get<{ Params: P & { tag: string } }>('/projects/:id/tags/:tag', async (req, reply) => {
    const r = await mustProject(d, req.params.id);
    allow(d, req, 'identity:project_tags', { project_id: r.id, domain_id: r.domain_id });
    if (!tagsOf(r).includes(req.params.tag)) throw notFound(`Tag ${req.params.tag} not found on project ${r.id}.`);
    reply.code(204);
  });
  app.put<{ Params: P & { tag: string } }>('/projects/:id/tags/:tag', async (req, reply) => {
    allow(d, req, 'identity:update_project_tags');
    const r = await mustProject(d, req.params.id);
    const tag = req.params.tag;
    if (!tag || tag.length > 255 || /[,/]/.test(tag)) throw badRequest(`Invalid tag '${tag}'.`);
    const tags = tagsOf(r);
    if (!tags.includes(tag)) {
      if (tags.length >= 80) throw badRequest('A project has at most 80 tags.');
      await saveTags(r.id, [...tags, tag]);
    }
    reply.code(201).header('Location', `${req.url}`);
  });
  app.delete<{ Params: P & { tag: string } }>('/projects/:id/tags/:tag', async (req, reply) => {
    allow(d, req, 'identity:update_project_tags');
    const r = await mustProject(d, req.params.id);
    const tags = tagsOf(r);
    if (!tags.includes(req.params.tag)) throw notFound(`Tag ${req.params.tag} not found on project ${r.id}.`);
    await saveTags(r.id, tags.filter((t) => t !== req.params.tag));
    reply.code(204);
  });
}

function tagFilter(f: Record<string, string | undefined>) {
  const list = (v?: string) => (v ? v.split(',').filter(Boolean) : undefined);
  const all = list(f.tags), any = list(f['tags-any']), notAll = list(f['not-tags']), notAny = list(f['not-tags-any']);
  return (r: ProjectRow) => {
    const t = fromJson<string[]>(r.tags, []);
    if (all && !all.every((x) => t.includes(x))) return false;
    if (any && !any.some((x) => t.includes(x))) return false;
    if (notAll && notAll.every((x) => t.includes(x))) return false;
    if (notAny && notAny.some((x) => t.includes(x))) return false;
    return true;
  };
}
