// /os-simple-tenant-usage: what each project's servers used over a period (hours of vCPU, RAM
// and disk), from the servers' launch and termination times — the base of billing.
import type { FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import { Type } from '@sinclair/typebox';
import type { App } from '../../core/http.js';
import { badRequest, notFound } from '../../core/errors.js';
import { rowToServer, type ServerRecord } from '../servers/store.js';
import { atLeast } from './microversion.js';
import { allow, boolParam, intParam, lastOf, novaTime, type Query, type RouteDeps } from './common.js';

const HOUR = 3600_000;

function period(req: FastifyRequest): { start: Date; end: Date } {
  const q = req.query as Query;
  const parse = (k: string, dflt: Date) => {
    const v = lastOf(q[k]);
    if (v === undefined) return dflt;
    const d = new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(v) ? v : `${v}Z`);
    if (Number.isNaN(d.getTime())) throw badRequest(`Invalid ${k}: '${v}' is not an ISO 8601 date-time.`);
    return d;
  };
  const end = parse('end', new Date());
  const start = parse('start', end);
  if (start > end) throw badRequest('Invalid start time. The start time cannot occur after the end time.');
  return { start, end };
}

function serverUsage(s: ServerRecord, start: Date, end: Date) {
  const launched = new Date(s.launchedAt ?? s.createdAt);
  const terminated = s.terminatedAt ? new Date(s.terminatedAt) : undefined;
  const from = Math.max(launched.getTime(), start.getTime());
  // A running server has used nothing beyond now, whatever end the caller asks about.
  const to = Math.min(terminated?.getTime() ?? Date.now(), end.getTime());
  const hours = Math.max(0, to - from) / HOUR;
  const state = s.deleted ? 'terminated' : s.vmState === 'error' ? 'error' : s.vmState === 'building' ? 'building' : 'active';
  return {
    hours, server: {
      instance_id: s.id, name: s.name, hours, memory_mb: s.flavor.ram, local_gb: s.flavor.disk, vcpus: s.flavor.vcpus,
      tenant_id: s.projectId, flavor: s.flavor.name, started_at: novaTime(launched.toISOString()),
      ended_at: terminated ? novaTime(terminated.toISOString()) : null, state, uptime: Math.floor(Math.max(0, (terminated ?? new Date()).getTime() - launched.getTime()) / 1000),
    },
  };
}

export function registerUsageRoutes(app: App, deps: RouteDeps, db: Kysely<any>): void {
  const usage = async (req: FastifyRequest, projectId?: string) => {
    const { start, end } = period(req);
    let q = db.selectFrom('compute_servers').selectAll()
      .where('created_at', '<=', end.toISOString())
      .where((eb) => eb.or([eb('terminated_at', 'is', null), eb('terminated_at', '>=', start.toISOString())]));
    if (projectId) q = q.where('project_id', '=', projectId);
    const servers = (await q.orderBy('created_at').orderBy('id').execute()).map((r) => rowToServer(r));
    const byProject = new Map<string, ReturnType<typeof serverUsage>['server'][]>();
    for (const s of servers) {
      const u = serverUsage(s, start, end).server;
      byProject.set(s.projectId, [...(byProject.get(s.projectId) ?? []), u]);
    }
    const detailed = projectId !== undefined || boolParam('detailed', lastOf((req.query as Query).detailed)) === true;
    return [...byProject.entries()].map(([tenant, list]) => ({
      tenant_id: tenant, start: novaTime(start.toISOString()), stop: novaTime(end.toISOString()),
      total_hours: list.reduce((a, u) => a + u.hours, 0),
      total_vcpus_usage: list.reduce((a, u) => a + u.hours * u.vcpus, 0),
      total_memory_mb_usage: list.reduce((a, u) => a + u.hours * u.memory_mb, 0),
      total_local_gb_usage: list.reduce((a, u) => a + u.hours * u.local_gb, 0),
      ...(detailed ? { server_usages: list } : {}),
    }));
  };

  app.get('/os-simple-tenant-usage', async (req) => {
    allow(deps, req, 'os_compute_api:os-simple-tenant-usage:list');
    // `/os-simple-tenant-usage/` is a show of an empty project id (Nova: 404), not the list.
    if (req.url.split('?')[0]!.endsWith('/')) throw notFound('Project id missing.');
    const all = await usage(req);
    const limit = atLeast(req, 40) ? intParam('limit', lastOf((req.query as Query).limit), 1) : undefined;
    return { tenant_usages: limit !== undefined ? all.slice(0, limit) : all };
  });
  app.get('/os-simple-tenant-usage/:project', { schema: { params: Type.Object({ project: Type.String() }) } }, async (req) => {
    allow(deps, req, 'os_compute_api:os-simple-tenant-usage:show', { project_id: req.params.project });
    const [u] = await usage(req, req.params.project);
    return { tenant_usage: u ?? {} };
  });
}
