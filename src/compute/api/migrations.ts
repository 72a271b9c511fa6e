// Migrations, read side: GET /os-migrations (admins: every move of every server, with Nova's
// filters and, from 2.59, paging) and GET /servers/{id}/migrations[/{mid}] (2.23+: the server's
// live migrations in progress, with their progress in bytes).
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { badRequest, notFound } from '../../core/errors.js';
import type { App } from '../../core/http.js';
import type { MigrationRecord, MigrationService, MigrationType } from '../migrations/service.js';
import type { ServerService } from '../servers/service.js';
import { allow, intParam, lastOf, nextLink, novaTime, oneOf, type Query, type RouteDeps } from './common.js';
import { atLeast } from './microversion.js';

const TYPES: readonly MigrationType[] = ['migration', 'resize', 'live-migration', 'evacuation'];
/** Nova's osapi_max_limit. */
const MAX_LIMIT = 1000;

export interface MigrationRouteDeps extends RouteDeps {
  migrations: MigrationService;
  servers: ServerService;
}

function isoParam(name: string, v: string | undefined): string | undefined {
  if (v !== undefined && Number.isNaN(Date.parse(v))) throw badRequest(`Invalid input for query parameters ${name}. '${v}' is not a valid ISO 8601 date-time.`);
  return v;
}

export function registerMigrationRoutes(app: App, d: MigrationRouteDeps): void {
  const owner = (req: FastifyRequest, m: MigrationRecord) => (atLeast(req, 80) ? { user_id: m.userId, project_id: m.projectId } : {});
  const live = (m: MigrationRecord) => m.migrationType === 'live-migration'
    && !['completed', 'failed', 'cancelled', 'error', 'done', 'accepted'].includes(m.status);

  const view = (req: FastifyRequest, m: MigrationRecord) => ({
    id: m.id, instance_uuid: m.instanceUuid, status: m.status,
    source_compute: m.sourceCompute, source_node: m.sourceNode,
    dest_compute: m.destCompute, dest_node: m.destNode, dest_host: m.destHost,
    old_instance_type_id: m.oldFlavorId, new_instance_type_id: m.newFlavorId,
    created_at: novaTime(m.createdAt), updated_at: novaTime(m.updatedAt),
    ...(atLeast(req, 23) ? {
      migration_type: m.migrationType,
      // Nova links only live migrations in progress (to /servers/{id}/migrations/{mid}).
      ...(live(m) ? {
        links: [
          { rel: 'self', href: `${d.computeUrl()}/v2.1/servers/${m.instanceUuid}/migrations/${m.id}` },
          { rel: 'bookmark', href: `${d.computeUrl()}/servers/${m.instanceUuid}/migrations/${m.id}` },
        ],
      } : {}),
    } : {}),
    ...(atLeast(req, 59) ? { uuid: m.uuid } : {}),
    ...owner(req, m),
  });

  app.get('/os-migrations', async (req) => {
    allow(d, req, 'os_compute_api:os-migrations:index');
    const q = req.query as Query;
    const paged = atLeast(req, 59);
    const limit = paged ? intParam('limit', lastOf(q.limit)) : undefined;
    const list = await d.migrations.list({
      host: lastOf(q.host), status: lastOf(q.status), instanceUuid: lastOf(q.instance_uuid),
      migrationType: oneOf('migration_type', lastOf(q.migration_type), TYPES), sourceCompute: lastOf(q.source_compute),
      ...(paged ? {
        changesSince: isoParam('changes-since', lastOf(q['changes-since'])),
        marker: lastOf(q.marker), limit: Math.min(limit ?? MAX_LIMIT, MAX_LIMIT),
      } : {}),
      ...(atLeast(req, 66) ? { changesBefore: isoParam('changes-before', lastOf(q['changes-before'])) } : {}),
      ...(atLeast(req, 80) ? { userId: lastOf(q.user_id), projectId: lastOf(q.project_id) } : {}),
    });
    const full = paged && list.length > 0 && list.length === Math.min(limit ?? MAX_LIMIT, MAX_LIMIT);
    const next = full ? nextLink(d, 'os-migrations', Object.fromEntries(Object.entries(q).map(([k, v]) => [k, lastOf(v)])), list[list.length - 1]!.uuid) : undefined;
    return { migrations: list.map((m) => view(req, m)), ...(next ? { migrations_links: next } : {}) };
  });

  const IdParams = Type.Object({ id: Type.String() });
  const MigParams = Type.Object({ id: Type.String(), mid: Type.String() });
  const serverView = (req: FastifyRequest, m: MigrationRecord) => ({
    id: m.id, server_uuid: m.instanceUuid, status: m.status,
    source_compute: m.sourceCompute, source_node: m.sourceNode,
    dest_compute: m.destCompute, dest_node: m.destNode, dest_host: m.destHost,
    memory_total_bytes: m.memoryTotalBytes, memory_processed_bytes: m.memoryProcessedBytes, memory_remaining_bytes: m.memoryRemainingBytes,
    disk_total_bytes: m.diskTotalBytes, disk_processed_bytes: m.diskProcessedBytes, disk_remaining_bytes: m.diskRemainingBytes,
    created_at: novaTime(m.createdAt), updated_at: novaTime(m.updatedAt),
    ...(atLeast(req, 59) ? { uuid: m.uuid } : {}),
    ...owner(req, m),
  });
  const server = async (req: FastifyRequest, id: string, rule: string) => {
    if (!atLeast(req, 23)) throw notFound('Server migrations need microversion 2.23 or later.');
    const c = allow(d, req, rule);
    return d.servers.get({ admin: c.admin, projectId: c.projectId ?? '' }, id);
  };

  app.get('/servers/:id/migrations', { schema: { params: IdParams } }, async (req) => {
    const s = await server(req, req.params.id, 'os_compute_api:servers:migrations:index');
    const list = await d.migrations.list({ instanceUuid: s.id, migrationType: 'live-migration', inProgress: true });
    return { migrations: list.map((m) => serverView(req, m)) };
  });

  app.get('/servers/:id/migrations/:mid', { schema: { params: MigParams } }, async (req) => {
    const s = await server(req, req.params.id, 'os_compute_api:servers:migrations:show');
    const mid = req.params.mid;
    const m = /^\d+$/.test(mid) ? await d.migrations.get(Number(mid)) : undefined;
    if (!m || m.instanceUuid !== s.id || !live(m)) {
      throw notFound(`In-progress live migration ${mid} is not found for server ${s.id}.`);
    }
    return { migration: serverView(req, m) };
  });
}
