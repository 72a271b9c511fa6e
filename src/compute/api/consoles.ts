// Remote consoles: POST /servers/{id}/remote-consoles (2.6+), the legacy os-get*Console server
// actions (2.1-2.5), and GET /os-console-auth-tokens/{token} (admins). Only VNC through noVNC is
// served; the other protocols Nova knows answer 400 "Unavailable console type", as a Nova with
// them disabled does.
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { ApiError, badRequest, notFound } from '../../core/errors.js';
import type { App } from '../../core/http.js';
import type { ConsoleService } from '../consoles/service.js';
import type { ServerRecord } from '../servers/store.js';
import { allow } from './common.js';
import { atLeast } from './microversion.js';
import { callerOf, type ServerRouteDeps } from './servers.js';

const RULE = 'os_compute_api:os-remote-consoles';
const PROTOCOL_TYPES: Record<string, string[]> = {
  vnc: ['novnc', 'xvpvnc'], spice: ['spice-html5'], rdp: ['rdp-html5'], serial: ['serial'], mks: ['webmks'],
};

const RemoteConsole = Type.Object({
  remote_console: Type.Object({ protocol: Type.String(), type: Type.String() }, { additionalProperties: false }),
}, { additionalProperties: false });

/** Nova's schema for the request at this microversion, then what Stratus serves (vnc/novnc). */
function checkRequest(req: FastifyRequest, protocol: string, type: string): void {
  const protocols = ['vnc', 'spice', 'rdp', 'serial', ...(atLeast(req, 8) ? ['mks'] : [])];
  const types = protocols.flatMap((p) => PROTOCOL_TYPES[p]!);
  if (!protocols.includes(protocol)) throw badRequest(`Invalid input for field/attribute protocol. Value: ${protocol}. '${protocol}' is not one of ${JSON.stringify(protocols)}`);
  if (!types.includes(type)) throw badRequest(`Invalid input for field/attribute type. Value: ${type}. '${type}' is not one of ${JSON.stringify(types)}`);
  if (!PROTOCOL_TYPES[protocol]!.includes(type)) throw badRequest(`Invalid console type ${type} for protocol ${protocol}.`);
}

/** Stratus serves VNC through noVNC only. */
function servable(type: string): 'novnc' {
  if (type !== 'novnc') throw badRequest(`Unavailable console type ${type}.`);
  return type;
}

export function registerConsoleRoutes(app: App, d: ServerRouteDeps & { consoles: ConsoleService }): void {
  const IdParams = Type.Object({ id: Type.String() });
  app.post('/servers/:id/remote-consoles', { schema: { params: IdParams, body: RemoteConsole } }, async (req) => {
    if (!atLeast(req, 6)) throw notFound('The resource could not be found.');
    const { protocol, type } = req.body.remote_console;
    checkRequest(req, protocol, type);
    const c = callerOf(req);
    const s = await d.servers.get(c, req.params.id);
    allow(d, req, RULE, { project_id: s.projectId, user_id: s.userId });
    const { url } = await d.consoles.create(c, s.id, servable(type));
    return { remote_console: { protocol, type, url } };
  });

  app.get('/os-console-auth-tokens/:token', { schema: { params: Type.Object({ token: Type.String() }) } }, async (req) => {
    allow(d, req, 'os_compute_api:os-console-auth-tokens');
    const t = await d.consoles.validate(req.params.token);
    if (!t) throw notFound('Token not found');
    // Before 2.31 Nova showed only RDP consoles' details here.
    if (!atLeast(req, 31) && t.consoleType !== 'rdp-html5') throw new ApiError(401, 'The requested console type details are not accessible');
    return { console: { instance_uuid: t.instanceId, host: t.host, port: t.port, internal_access_path: t.internalAccessPath } };
  });
}

type Result = { code: number; body?: unknown };

/** The legacy console actions (2.1-2.5) for POST /servers/{id}/action. */
export function legacyConsoleActions(d: ServerRouteDeps, req: FastifyRequest, s: ServerRecord): Record<string, (arg: unknown) => Promise<Result>> {
  const action = (name: string, protocol: string) => async (arg: unknown): Promise<Result> => {
    if (atLeast(req, 6)) throw notFound(`The ${name} action is not available from microversion 2.6: use POST /servers/${s.id}/remote-consoles.`);
    const type = arg && typeof arg === 'object' && !Array.isArray(arg) ? (arg as { type?: unknown }).type : undefined;
    const allowed = PROTOCOL_TYPES[protocol]!;
    if (typeof type !== 'string' || !allowed.includes(type)) {
      throw badRequest(`Invalid input for field/attribute type. Value: ${String(type)}. '${String(type)}' is not one of ${JSON.stringify(allowed)}`);
    }
    allow(d, req, RULE, { project_id: s.projectId, user_id: s.userId });
    if (!d.consoles) throw badRequest(`Unavailable console type ${type}.`);
    const { url } = await d.consoles.create(callerOf(req), s.id, servable(type));
    return { code: 200, body: { console: { type, url } } };
  };
  return {
    'os-getVNCConsole': action('os-getVNCConsole', 'vnc'),
    'os-getSPICEConsole': action('os-getSPICEConsole', 'spice'),
    'os-getRDPConsole': action('os-getRDPConsole', 'rdp'),
    'os-getSerialConsole': action('os-getSerialConsole', 'serial'),
  };
}
