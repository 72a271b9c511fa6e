// POST /servers/{id}/action, server metadata, tags and os-instance-actions.
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import type { App } from '../../core/http.js';
import { badRequest, notFound, notImplemented } from '../../core/errors.js';
import type { ServerOperations } from '../servers/operations.js';
import { atLeast } from './microversion.js';
import { allow, intParam, lastOf, type Query } from './common.js';
import { callerOf, renderServer, type ServerRouteDeps } from './servers.js';
import { updateView } from './server-views.js';
import { parseMigrateLive } from './live-migration.js';
import { legacyConsoleActions } from './consoles.js';

const IdParams = Type.Object({ id: Type.String() });
const KeyParams = Type.Object({ id: Type.String(), key: Type.String() });
const Meta = Type.Record(Type.String({ minLength: 1, maxLength: 255 }), Type.String({ maxLength: 255 }));

/** Each action: its policy rule and what it does. */
type Handler = (arg: any) => Promise<{ code: number; body?: unknown; headers?: Record<string, string> }>;

export function registerServerActionRoutes(app: App, d: ServerRouteDeps, ops: ServerOperations): void {
  // Nova's os-security-groups proxy, read-only: `openstack server add security group` finds the group here.
  const groups = async (req: FastifyRequest) => {
    const c = callerOf(req);
    allow(d, req, 'os_compute_api:os-security-groups:get', { project_id: c.projectId });
    const net = d.network?.();
    if (!net) throw notFound('The networking service is not running.');
    return net.securityGroups(c.projectId);
  };
  app.get('/os-security-groups', async (req) => ({ security_groups: await groups(req) }));
  app.get('/os-security-groups/:id', { schema: { params: IdParams } }, async (req) => {
    const g = (await groups(req)).find((x) => x.id === req.params.id || x.name === req.params.id);
    if (!g) throw notFound(`Security group ${req.params.id} not found.`);
    return { security_group: g };
  });
  app.post('/servers/:id/action', { schema: { params: IdParams, body: Type.Record(Type.String(), Type.Unknown(), { minProperties: 1, maxProperties: 1 }) } }, async (req, reply) => {
    const c = callerOf(req);
    const id = req.params.id;
    const s = await d.servers.get(c, id);
    const [[name, arg]] = Object.entries(req.body) as [[string, any]];
    const check = (rule: string) => allow(d, req, rule, { project_id: s.projectId, user_id: s.userId });
    const obj = (v: unknown): Record<string, unknown> => {
      if (v !== null && v !== undefined && (typeof v !== 'object' || Array.isArray(v))) throw badRequest(`Invalid input for field/attribute ${name}. Value must be an object or null.`);
      return (v ?? {}) as Record<string, unknown>;
    };
    const power = (rule: string, op: Parameters<ServerOperations['power']>[2]): Handler => async () => {
      check(rule); await ops.power(c, id, op); return { code: 202 };
    };
    const sg = async (a: unknown, add: boolean) => {
      check(`os_compute_api:os-security-groups:${add ? 'add' : 'remove'}`);
      const group = obj(a).name;
      if (typeof group !== 'string' || !group) throw badRequest("Invalid input for field/attribute name. 'name' is a required property");
      const net = d.network?.();
      if (!net) throw badRequest('Security groups need the networking service, which this cloud does not run.');
      await net.setSecurityGroup(s.projectId, id, group, add);
      return { code: 202 };
    };
    const handlers: Record<string, Handler> = {
      'os-start': power('os_compute_api:servers:start', 'start'),
      'os-stop': power('os_compute_api:servers:stop', 'stop'),
      pause: power('os_compute_api:os-pause-server:pause', 'pause'),
      unpause: power('os_compute_api:os-pause-server:unpause', 'unpause'),
      suspend: power('os_compute_api:os-suspend-server:suspend', 'suspend'),
      resume: power('os_compute_api:os-suspend-server:resume', 'resume'),
      reboot: async (a) => {
        check('os_compute_api:servers:reboot');
        const type = String(obj(a).type ?? '').toUpperCase();
        if (type !== 'SOFT' && type !== 'HARD') throw badRequest("Invalid input for field/attribute type. Value must be 'SOFT' or 'HARD'.");
        await ops.reboot(c, id, type); return { code: 202 };
      },
      lock: async (a) => {
        check('os_compute_api:os-lock-server:lock');
        const reason = obj(a).locked_reason;
        if (reason !== undefined && (!atLeast(req, 73) || typeof reason !== 'string' || reason.length > 255)) throw badRequest('Invalid input for field/attribute locked_reason (a string of at most 255 characters, microversion 2.73+).');
        await ops.lock(c, id, reason as string | undefined); return { code: 202 };
      },
      unlock: async () => {
        check('os_compute_api:os-lock-server:unlock');
        if (s.locked && s.lockedBy !== c.userId) check('os_compute_api:os-lock-server:unlock:unlock_override');
        await ops.unlock(c, id); return { code: 202 };
      },
      resize: async (a) => {
        check('os_compute_api:servers:resize');
        const ref = obj(a).flavorRef;
        if (typeof ref !== 'string' && typeof ref !== 'number') throw badRequest("Invalid input for field/attribute resize. 'flavorRef' is a required property");
        await ops.resize(c, id, String(ref)); return { code: 202 };
      },
      confirmResize: async () => { check('os_compute_api:servers:confirm_resize'); await ops.confirmResize(c, id); return { code: 204 }; },
      revertResize: async () => { check('os_compute_api:servers:revert_resize'); await ops.revertResize(c, id); return { code: 202 }; },
      rebuild: async (a) => {
        check('os_compute_api:servers:rebuild');
        const b = obj(a);
        if (typeof b.imageRef !== 'string' || !b.imageRef) throw badRequest("Invalid input for field/attribute rebuild. 'imageRef' is a required property");
        if (b.name !== undefined && (typeof b.name !== 'string' || !b.name.trim() || b.name.length > 255)) throw badRequest('Invalid input for field/attribute name.');
        if (b.metadata !== undefined && (typeof b.metadata !== 'object' || b.metadata === null || Object.values(b.metadata).some((v) => typeof v !== 'string'))) throw badRequest('Invalid input for field/attribute metadata.');
        const rebuilt = await ops.rebuild(c, id, b.imageRef, { name: b.name as string | undefined, metadata: b.metadata as Record<string, string> | undefined,
          description: atLeast(req, 19) ? b.description as string | null | undefined : undefined });
        return { code: 202, body: { server: updateView(req, await renderServer(d, req, rebuilt)) } };
      },
      createImage: async (a) => {
        check('os_compute_api:servers:create_image');
        const b = obj(a);
        if (typeof b.name !== 'string' || !b.name.trim() || b.name.length > 255) throw badRequest("Invalid input for field/attribute createImage. 'name' is a required property");
        const imageId = await ops.createImage(c, id, b.name, (b.metadata ?? {}) as Record<string, string>);
        const location = `${d.computeUrl().replace(/\/compute$/, '')}/image/v2/images/${imageId}`;
        return { code: 202, headers: { Location: location }, body: atLeast(req, 45) ? { image_id: imageId } : undefined };
      },
      forceDelete: async () => { check('os_compute_api:os-deferred-delete:force'); await d.servers.delete(c, id); return { code: 202 }; },
      addSecurityGroup: async (a) => sg(a, true),
      removeSecurityGroup: async (a) => sg(a, false),
      'os-getConsoleOutput': async (a) => {
        check('os_compute_api:os-console-output');
        const raw = obj(a).length;
        let lines: number | null = null;
        if (raw !== undefined && raw !== null) {
          const n = typeof raw === 'string' && /^-?\d+$/.test(raw) ? Number(raw) : raw;
          if (typeof n !== 'number' || !Number.isInteger(n) || n < -1) throw badRequest('Invalid input for field/attribute length. Value must be an integer >= -1.');
          lines = n === -1 ? null : n;
        }
        return { code: 200, body: { output: await ops.consoleOutput(c, id, lines) } };
      },
      ...legacyConsoleActions(d, req, s),
      migrate: async (a) => {
        check('os_compute_api:os-migrate-server:migrate');
        const host = obj(a).host;
        if (host !== undefined && host !== null && (!atLeast(req, 56) || typeof host !== 'string' || !host || host.length > 255)) {
          throw badRequest('Invalid input for field/attribute host (a host name, microversion 2.56+).');
        }
        await ops.migrate(c, id, (host ?? undefined) as string | undefined);
        return { code: 202 };
      },
      'os-migrateLive': async (a) => {
        check('os_compute_api:os-migrate-server:migrate_live');
        await ops.live.start(c, id, parseMigrateLive(req, a)); return { code: 202 };
      },
    };
    const h = handlers[name];
    if (!h) throw badRequest(`There is no such action: ${name}`);
    const r = await h(arg);
    if (r.headers) reply.headers(r.headers);
    reply.code(r.code);
    return r.body === undefined ? reply.send() : r.body;
  });

  // ---- metadata ----
  const server = async (req: { params: { id: string } } & Parameters<typeof callerOf>[0], rule: string) => {
    const c = callerOf(req);
    const s = await d.servers.get(c, req.params.id);
    allow(d, req, rule, { project_id: s.projectId });
    return { c, s };
  };
  app.get('/servers/:id/metadata', { schema: { params: IdParams } }, async (req) => ({ metadata: (await server(req, 'os_compute_api:server-metadata:index')).s.metadata }));
  app.post('/servers/:id/metadata', { schema: { params: IdParams, body: Type.Object({ metadata: Meta }, { additionalProperties: false }) } }, async (req) => {
    const { c } = await server(req, 'os_compute_api:server-metadata:create');
    return { metadata: await d.servers.setMetadata(c, req.params.id, req.body.metadata, false) };
  });
  app.put('/servers/:id/metadata', { schema: { params: IdParams, body: Type.Object({ metadata: Meta }, { additionalProperties: false }) } }, async (req) => {
    const { c } = await server(req, 'os_compute_api:server-metadata:update_all');
    return { metadata: await d.servers.setMetadata(c, req.params.id, req.body.metadata, true) };
  });
  app.get('/servers/:id/metadata/:key', { schema: { params: KeyParams } }, async (req) => {
    const { s } = await server(req, 'os_compute_api:server-metadata:show');
    if (!(req.params.key in s.metadata)) throw notFound(`Metadata item was not found: ${req.params.key}`);
    return { meta: { [req.params.key]: s.metadata[req.params.key] } };
  });
  app.put('/servers/:id/metadata/:key', { schema: { params: KeyParams, body: Type.Object({ meta: Meta }, { additionalProperties: false }) } }, async (req) => {
    const { c } = await server(req, 'os_compute_api:server-metadata:update');
    const entries = Object.entries(req.body.meta);
    if (entries.length !== 1 || entries[0]![0] !== req.params.key) throw badRequest('Request body and URI mismatch');
    await d.servers.setMetadata(c, req.params.id, req.body.meta, false);
    return { meta: req.body.meta };
  });
  app.delete('/servers/:id/metadata/:key', { schema: { params: KeyParams } }, async (req, reply) => {
    const { c } = await server(req, 'os_compute_api:server-metadata:delete');
    await d.servers.deleteMetadata(c, req.params.id, req.params.key);
    return reply.code(204).send();
  });

  // ---- tags (2.26+) ----
  const tagsOk = (req: { microversion?: unknown }) => {
    if (!atLeast(req as never, 26)) throw notFound('Server tags need microversion 2.26 or later.');
  };
  const TagParams = Type.Object({ id: Type.String(), tag: Type.String() });
  app.get('/servers/:id/tags', { schema: { params: IdParams } }, async (req) => {
    tagsOk(req);
    return { tags: (await server(req, 'os_compute_api:os-server-tags:index')).s.tags };
  });
  app.put('/servers/:id/tags', { schema: { params: IdParams, body: Type.Object({ tags: Type.Array(Type.String()) }, { additionalProperties: false }) } }, async (req) => {
    tagsOk(req);
    const { c } = await server(req, 'os_compute_api:os-server-tags:update_all');
    return { tags: await d.servers.setTags(c, req.params.id, req.body.tags) };
  });
  app.delete('/servers/:id/tags', { schema: { params: IdParams } }, async (req, reply) => {
    tagsOk(req);
    const { c } = await server(req, 'os_compute_api:os-server-tags:delete_all');
    await d.servers.setTags(c, req.params.id, []);
    return reply.code(204).send();
  });
  app.get('/servers/:id/tags/:tag', { schema: { params: TagParams } }, async (req, reply) => {
    tagsOk(req);
    const { s } = await server(req, 'os_compute_api:os-server-tags:show');
    if (!s.tags.includes(req.params.tag)) throw notFound(`Tag ${req.params.tag} could not be found for instance ${s.id}.`);
    return reply.code(204).send();
  });
  app.put('/servers/:id/tags/:tag', { schema: { params: TagParams } }, async (req, reply) => {
    tagsOk(req);
    const { c } = await server(req, 'os_compute_api:os-server-tags:update');
    const created = await d.servers.addTag(c, req.params.id, req.params.tag);
    if (created) reply.header('Location', `${d.computeUrl()}/v2.1/servers/${req.params.id}/tags/${req.params.tag}`);
    return reply.code(created ? 201 : 204).send();
  });
  app.delete('/servers/:id/tags/:tag', { schema: { params: TagParams } }, async (req, reply) => {
    tagsOk(req);
    const { c } = await server(req, 'os_compute_api:os-server-tags:delete');
    await d.servers.removeTag(c, req.params.id, req.params.tag);
    return reply.code(204).send();
  });

  // ---- instance actions ----
  const ReqParams = Type.Object({ id: Type.String(), req: Type.String() });
  const actionView = (a: Awaited<ReturnType<typeof d.servers.actions.list>>[number], withUpdated: boolean) => ({
    action: a.action, instance_uuid: a.serverId, request_id: a.requestId, user_id: a.userId, project_id: a.projectId,
    start_time: iso(a.startTime), message: a.message, ...(withUpdated ? { updated_at: iso(a.updatedAt) } : {}),
  });
  app.get('/servers/:id/os-instance-actions', { schema: { params: IdParams } }, async (req) => {
    const c = callerOf(req);
    // Actions stay readable after a delete (2.21+), for the project that owned the server.
    const s = await d.servers.store.get(req.params.id);
    if (!s || (!c.admin && s.projectId !== c.projectId) || (s.deleted && !atLeast(req, 21))) throw notFound(`Instance ${req.params.id} could not be found.`);
    allow(d, req, 'os_compute_api:os-instance-actions:list', { project_id: s.projectId });
    const q = req.query as Query;
    const paged = atLeast(req, 58);
    let list;
    try {
      list = await d.servers.actions.list(s.id, paged ? {
        limit: intParam('limit', lastOf(q.limit)), marker: lastOf(q.marker),
        changesSince: lastOf(q['changes-since']), changesBefore: atLeast(req, 66) ? lastOf(q['changes-before']) : undefined,
      } : {});
    } catch (e) {
      if ((e as { marker?: boolean }).marker) throw badRequest((e as Error).message);
      throw e;
    }
    return { instanceActions: list.map((a) => actionView(a, paged)) };
  });
  app.get('/servers/:id/os-instance-actions/:req', { schema: { params: ReqParams } }, async (req) => {
    const c = callerOf(req);
    const s = await d.servers.store.get(req.params.id);
    if (!s || (!c.admin && s.projectId !== c.projectId) || (s.deleted && !atLeast(req, 21))) throw notFound(`Instance ${req.params.id} could not be found.`);
    allow(d, req, 'os_compute_api:os-instance-actions:show', { project_id: s.projectId });
    const found = await d.servers.actions.byRequest(s.id, req.params.req);
    if (!found) throw notFound(`Action for request_id ${req.params.req} on instance ${s.id} not found`);
    // Events are for admins by default (Nova); from 2.51 their owners see them without hosts.
    const showEvents = c.admin || atLeast(req, 51);
    return {
      instanceAction: {
        ...actionView(found.action, atLeast(req, 58)),
        ...(showEvents ? {
          events: found.events.map((e) => ({
            event: e.event, start_time: iso(e.startTime), finish_time: e.finishTime && iso(e.finishTime), result: e.result,
            traceback: null, ...(c.admin && atLeast(req, 62) ? { host: e.host, hostId: '' } : {}),
            ...(atLeast(req, 84) ? { details: e.details } : {}),
          })),
        } : {}),
      },
    };
  });
}

const iso = (t: string) => new Date(t).toISOString().replace(/Z$/, '').replace(/\.(\d{3})$/, '.$1000');
