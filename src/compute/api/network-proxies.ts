// Nova's deprecated network proxies, served before 2.36 as Nova does with Neutron:
// /os-tenant-networks (the caller's project's usable networks) and /os-networks (admins: all).
// Read-only: networks are made through the network API.
import type { FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { App } from '../../core/http.js';
import { notFound } from '../../core/errors.js';
import type { ServerNetworking } from '../servers/networking.js';
import { atLeast } from './microversion.js';
import { allow, caller, type RouteDeps } from './common.js';

const IdParams = Type.Object({ id: Type.String({ maxLength: 64 }) });

export function registerNetworkProxyRoutes(app: App, deps: RouteDeps, network: () => ServerNetworking | undefined): void {
  const nets = async (req: FastifyRequest, rule: string, all: boolean) => {
    if (atLeast(req, 36)) throw notFound('The network proxy APIs are gone from microversion 2.36: use the network API.');
    allow(deps, req, rule);
    const net = network();
    return net ? net.networks(all ? undefined : caller(req).projectId ?? '') : [];
  };
  const one = async (req: FastifyRequest, id: string, rule: string, all: boolean) => {
    const n = (await nets(req, rule, all)).find((x) => x.id === id);
    if (!n) throw notFound(`Network ${id} could not be found.`);
    return { network: n };
  };
  app.get('/os-tenant-networks', async (req) => ({ networks: await nets(req, 'os_compute_api:os-tenant-networks:list', false) }));
  app.get('/os-tenant-networks/:id', { schema: { params: IdParams } }, (req) => one(req, req.params.id, 'os_compute_api:os-tenant-networks:show', false));
  app.get('/os-networks', async (req) => ({ networks: await nets(req, 'os_compute_api:os-networks:list', true) }));
  app.get('/os-networks/:id', { schema: { params: IdParams } }, (req) => one(req, req.params.id, 'os_compute_api:os-networks:view', true));
}
