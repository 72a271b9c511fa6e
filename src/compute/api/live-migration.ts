// Live migration API: the os-migrateLive action's body, per microversion, aborting a live
// migration in progress (DELETE /servers/{id}/migrations/{mid}, 2.24+) and forcing it to complete
// (POST /servers/{id}/migrations/{mid}/action {"force_complete": null}, 2.22+).
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { badRequest, notFound } from '../../core/errors.js';
import type { App } from '../../core/http.js';
import type { LiveMigrateRequest, LiveMigrationOps } from '../servers/live-migration.js';
import { allow, type RouteDeps } from './common.js';
import { atLeast } from './microversion.js';
import { callerOf } from './servers.js';

/**
 * Nova's schema: `host` (null = the scheduler picks) and `block_migration` always; `disk_over_commit`
 * up to 2.24; `block_migration: "auto"` from 2.25; `force` from 2.30 to 2.67. Nothing else.
 */
export function parseMigrateLive(req: FastifyRequest, arg: unknown): LiveMigrateRequest {
  const bad = (why: string) => badRequest(`Invalid input for field/attribute os-migrateLive. ${why}`);
  if (typeof arg !== 'object' || arg === null || Array.isArray(arg)) throw bad('Value must be an object.');
  const b = arg as Record<string, unknown>;
  const allowed = new Set(['host', 'block_migration', ...(atLeast(req, 25) ? [] : ['disk_over_commit']),
    ...(atLeast(req, 30) && !atLeast(req, 68) ? ['force'] : [])]);
  for (const k of Object.keys(b)) if (!allowed.has(k)) throw bad(`Additional properties are not allowed ('${k}' was unexpected).`);
  if (!('host' in b)) throw bad("'host' is a required property");
  if (!('block_migration' in b)) throw bad("'block_migration' is a required property");
  if (b.host !== null && (typeof b.host !== 'string' || !b.host || b.host.length > 255)) throw bad('host must be a host name or null.');
  const asBool = (v: unknown) => (typeof v === 'boolean' ? v : typeof v === 'string' && /^(true|false)$/i.test(v) ? /^true$/i.test(v) : undefined);
  let block: boolean | 'auto' | undefined = b.block_migration === 'auto' && atLeast(req, 25) ? 'auto' : asBool(b.block_migration);
  if (block === undefined) throw bad(`block_migration must be a boolean${atLeast(req, 25) ? " or 'auto'" : ''}.`);
  if (!atLeast(req, 25)) {
    if (!('disk_over_commit' in b)) throw bad("'disk_over_commit' is a required property");
    if (asBool(b.disk_over_commit) === undefined) throw bad('disk_over_commit must be a boolean.');
  }
  let force: boolean | undefined;
  if ('force' in b) {
    force = asBool(b.force);
    if (force === undefined) throw bad('force must be a boolean.');
  }
  return { host: b.host as string | null, blockMigration: block, ...(force !== undefined ? { force } : {}) };
}

export function registerLiveMigrationRoutes(app: App, d: RouteDeps, live: LiveMigrationOps): void {
  const MigParams = Type.Object({ id: Type.String(), mid: Type.String() });
  app.delete('/servers/:id/migrations/:mid', { schema: { params: MigParams } }, async (req, reply) => {
    if (!atLeast(req, 24)) throw notFound('Aborting a live migration needs microversion 2.24 or later.');
    allow(d, req, 'os_compute_api:servers:migrations:delete');
    await live.abort(callerOf(req), req.params.id, req.params.mid);
    reply.code(202);
    return reply.send();
  });
  app.post('/servers/:id/migrations/:mid/action', {
    schema: { params: MigParams, body: Type.Object({ force_complete: Type.Null() }, { additionalProperties: false }) },
  }, async (req, reply) => {
    if (!atLeast(req, 22)) throw notFound('Forcing a live migration to complete needs microversion 2.22 or later.');
    allow(d, req, 'os_compute_api:servers:migrations:force_complete');
    await live.forceComplete(callerOf(req), req.params.id, req.params.mid);
    reply.code(202);
    return reply.send();
  });
}
