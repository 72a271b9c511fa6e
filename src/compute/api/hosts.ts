// /os-services (one nova-compute service per host agent) and /os-hypervisors.
import type { FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { App } from '../../core/http.js';
import { badRequest, notFound } from '../../core/errors.js';
import type { AggregateService } from '../aggregates.js';
import type { ComputeNode, HostDirectory } from '../hosts.js';
import { atLeast } from './microversion.js';
import { allow, boolParam, lastOf, novaTime, type Query, type RouteDeps } from './common.js';

const Legacy = Type.Object({
  host: Type.String({ minLength: 1, maxLength: 255 }),
  binary: Type.String({ minLength: 1, maxLength: 255 }),
  disabled_reason: Type.Optional(Type.String({ maxLength: 255 })),
  forced_down: Type.Optional(Type.Boolean()),
}, { additionalProperties: false });
const ServiceUpdate = Type.Object({
  status: Type.Optional(Type.Union([Type.Literal('enabled'), Type.Literal('disabled')])),
  disabled_reason: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  forced_down: Type.Optional(Type.Boolean()),
}, { additionalProperties: false });
const IdParams = Type.Object({ id: Type.String() });

const idOf = (req: FastifyRequest, n: ComputeNode) => (atLeast(req, 53) ? n.uuid : n.seq);

export function registerHostRoutes(app: App, deps: RouteDeps, hosts: HostDirectory, aggregates: AggregateService): void {
  const serviceView = async (req: FastifyRequest, nodes: ComputeNode[]) => {
    const zones = await aggregates.zoneMap(nodes.map((n) => n.name));
    return nodes.map((n) => ({
      id: idOf(req, n), binary: 'nova-compute', host: n.name, zone: zones.get(n.name),
      status: n.disabled ? 'disabled' : 'enabled', state: n.up ? 'up' : 'down',
      updated_at: novaTime(n.heartbeatAt), disabled_reason: n.disabledReason,
      ...(atLeast(req, 11) ? { forced_down: n.forcedDown } : {}),
    }));
  };

  app.get('/os-services', async (req) => {
    allow(deps, req, 'os_compute_api:os-services:list');
    const q = req.query as Query;
    // openstacksdk 0.101 sends unset filters as the string 'None'.
    const given = (v: string | undefined) => (v === undefined || v === 'None' || v === '' ? undefined : v);
    const host = given(lastOf(q.host));
    const binary = given(lastOf(q.binary));
    let nodes = await hosts.list();
    if (host) nodes = nodes.filter((n) => n.name === host);
    if (binary && binary !== 'nova-compute') nodes = [];
    return { services: await serviceView(req, nodes) };
  });

  // Before 2.53: PUT /os-services/{enable,disable,disable-log-reason,force-down} with host + binary.
  app.put('/os-services/:action', { schema: { params: Type.Object({ action: Type.String() }) } }, async (req) => {
    allow(deps, req, 'os_compute_api:os-services:update');
    const action = req.params.action;
    if (atLeast(req, 53) && !['enable', 'disable', 'disable-log-reason', 'force-down'].includes(action)) {
      return updateById(req, action);
    }
    if (atLeast(req, 53)) throw notFound(`The resource could not be found: PUT /os-services/${action} (use the service id at 2.53+).`);
    const b = (req.body ?? {}) as Record<string, unknown>;
    if (!Value.Check(Legacy, b)) throw badRequest('Invalid input for field/attribute body. Expected {"host", "binary"[, "disabled_reason" | "forced_down"]}.');
    const body = b as { host: string; binary: string; disabled_reason?: string; forced_down?: boolean };
    if (body.binary !== 'nova-compute') throw notFound(`Service ${body.binary} on host ${body.host} could not be found.`);
    let n: ComputeNode;
    switch (action) {
      case 'enable': n = await hosts.setSwitch(body.host, { disabled: false }); break;
      case 'disable': n = await hosts.setSwitch(body.host, { disabled: true }); break;
      case 'disable-log-reason':
        if (!body.disabled_reason) throw badRequest('Missing disabled reason field');
        n = await hosts.setSwitch(body.host, { disabled: true, disabledReason: body.disabled_reason }); break;
      case 'force-down':
        if (!atLeast(req, 11)) throw notFound('force-down requires microversion 2.11 or later.');
        n = await hosts.setSwitch(body.host, { forcedDown: body.forced_down ?? true }); break;
      default: throw notFound(`Unknown service action '${action}'.`);
    }
    const service: Record<string, unknown> = { host: n.name, binary: 'nova-compute', status: n.disabled ? 'disabled' : 'enabled' };
    if (action === 'disable-log-reason') service.disabled_reason = n.disabledReason;
    if (action === 'force-down') { delete service.status; service.forced_down = n.forcedDown; }
    return { service };
  });

  async function updateById(req: FastifyRequest, id: string) {
    const node = await hosts.find(id);
    if (!node || node.uuid !== id) throw notFound(`Service ${id} could not be found.`);
    const b = (req.body ?? {}) as { status?: 'enabled' | 'disabled'; disabled_reason?: string; forced_down?: boolean };
    if (!Value.Check(ServiceUpdate, b)) throw badRequest("Invalid input for field/attribute body. Allowed: 'status', 'disabled_reason', 'forced_down'.");
    if (b.disabled_reason && b.status !== 'disabled') throw badRequest("Specifying 'disabled_reason' with status 'enabled' is invalid.");
    const n = await hosts.setSwitch(node.name, {
      ...(b.status ? { disabled: b.status === 'disabled' } : {}),
      ...(b.disabled_reason !== undefined ? { disabledReason: b.disabled_reason } : {}),
      ...(b.forced_down !== undefined ? { forcedDown: b.forced_down } : {}),
    });
    return { service: (await serviceView(req, [n]))[0] };
  }

  // ---- hypervisors ----
  const brief = (req: FastifyRequest, n: ComputeNode) => ({
    id: idOf(req, n), hypervisor_hostname: n.name, state: n.up ? 'up' : 'down', status: n.disabled ? 'disabled' : 'enabled',
  });
  const detail = async (req: FastifyRequest, n: ComputeNode) => {
    const u = await hosts.usage(n.name);
    const base: Record<string, unknown> = {
      ...brief(req, n), hypervisor_type: n.hypervisorType, hypervisor_version: versionNumber(n.hypervisorVersion),
      host_ip: '127.0.0.1', service: { host: n.name, id: idOf(req, n), disabled_reason: n.disabledReason },
    };
    if (!atLeast(req, 88)) {
      Object.assign(base, {
        vcpus: n.vcpus, memory_mb: n.memoryMb, local_gb: n.diskGb,
        vcpus_used: u.vcpus, memory_mb_used: u.ramMb, local_gb_used: u.diskGb,
        free_ram_mb: n.memoryMb - u.ramMb, free_disk_gb: n.diskGb - u.diskGb,
        current_workload: 0, running_vms: u.instances.length, disk_available_least: n.diskGb - u.diskGb,
        // A JSON string before 2.28, an object from 2.28 on.
        cpu_info: atLeast(req, 28) ? { model: n.cpuModel, accelerator: n.accelerator } : JSON.stringify({ model: n.cpuModel, accelerator: n.accelerator }),
      });
    } else {
      base.uptime = uptimeText(n.registeredAt);
    }
    return base;
  };
  const withServers = async (n: ComputeNode) =>
    (await hosts.usage(n.name)).instances.filter((i) => !i.deleted).map((i) => ({ uuid: i.id, name: i.name }));

  const listHypervisors = async (req: FastifyRequest, detailed: boolean) => {
    const q = req.query as Query;
    let nodes = await hosts.list();
    const pattern = lastOf(q.hypervisor_hostname_pattern);
    if (pattern) nodes = nodes.filter((n) => n.name.includes(pattern));
    const ws = atLeast(req, 53) ? boolParam('with_servers', lastOf(q.with_servers)) : false;
    return Promise.all(nodes.map(async (n) => ({
      ...(detailed ? await detail(req, n) : brief(req, n)),
      ...(ws ? { servers: await withServers(n) } : {}),
    })));
  };
  app.get('/os-hypervisors', async (req) => {
    allow(deps, req, 'os_compute_api:os-hypervisors:list');
    return { hypervisors: await listHypervisors(req, false) };
  });
  app.get('/os-hypervisors/detail', async (req) => {
    allow(deps, req, 'os_compute_api:os-hypervisors:list-detail');
    return { hypervisors: await listHypervisors(req, true) };
  });
  app.get('/os-hypervisors/statistics', async (req) => {
    allow(deps, req, 'os_compute_api:os-hypervisors:statistics');
    if (atLeast(req, 88)) throw notFound('The hypervisor statistics API was removed in microversion 2.88.');
    const nodes = await hosts.list();
    const s = { count: nodes.length, vcpus: 0, memory_mb: 0, local_gb: 0, vcpus_used: 0, memory_mb_used: 0, local_gb_used: 0,
      free_ram_mb: 0, free_disk_gb: 0, current_workload: 0, running_vms: 0, disk_available_least: 0 };
    for (const n of nodes) {
      const u = await hosts.usage(n.name);
      s.vcpus += n.vcpus; s.memory_mb += n.memoryMb; s.local_gb += n.diskGb;
      s.vcpus_used += u.vcpus; s.memory_mb_used += u.ramMb; s.local_gb_used += u.diskGb;
      s.free_ram_mb += n.memoryMb - u.ramMb; s.free_disk_gb += n.diskGb - u.diskGb;
      s.running_vms += u.instances.length; s.disk_available_least += n.diskGb - u.diskGb;
    }
    return { hypervisor_statistics: s };
  });
  app.get('/os-hypervisors/:id', { schema: { params: IdParams } }, async (req) => {
    allow(deps, req, 'os_compute_api:os-hypervisors:show');
    const n = await hosts.find(req.params.id);
    if (!n || (atLeast(req, 53) ? n.uuid : String(n.seq)) !== req.params.id) throw notFound(`Hypervisor with ID ${req.params.id} could not be found.`);
    const ws = atLeast(req, 53) && boolParam('with_servers', lastOf((req.query as Query).with_servers));
    return { hypervisor: { ...(await detail(req, n)), ...(ws ? { servers: await withServers(n) } : {}) } };
  });
  // Before 2.88: uptime of the hypervisor; Stratus reports how long the host's agent has been registered.
  app.get('/os-hypervisors/:id/uptime', { schema: { params: IdParams } }, async (req) => {
    allow(deps, req, 'os_compute_api:os-hypervisors:uptime');
    if (atLeast(req, 88)) throw notFound('The hypervisor uptime API was removed in microversion 2.88; uptime is in the hypervisor itself.');
    const n = await hosts.find(req.params.id);
    if (!n || (atLeast(req, 53) ? n.uuid : String(n.seq)) !== req.params.id) throw notFound(`Hypervisor with ID ${req.params.id} could not be found.`);
    return { hypervisor: { ...brief(req, n), uptime: uptimeText(n.registeredAt) } };
  });
  // Before 2.53: search by host name pattern, and the servers on matching hosts.
  const byPattern = async (req: FastifyRequest, pattern: string, servers: boolean) => {
    if (atLeast(req, 53)) throw notFound('Use GET /os-hypervisors?hypervisor_hostname_pattern=... at microversion 2.53 or later.');
    const nodes = (await hosts.list()).filter((n) => n.name.includes(pattern));
    if (!nodes.length) throw notFound(`No hypervisor matching '${pattern}' could be found.`);
    return { hypervisors: await Promise.all(nodes.map(async (n) => ({ ...brief(req, n), ...(servers ? { servers: await withServers(n) } : {}) }))) };
  };
  app.get('/os-hypervisors/:id/search', { schema: { params: IdParams } }, async (req) => {
    allow(deps, req, 'os_compute_api:os-hypervisors:search');
    return byPattern(req, req.params.id, false);
  });
  app.get('/os-hypervisors/:id/servers', { schema: { params: IdParams } }, async (req) => {
    allow(deps, req, 'os_compute_api:os-hypervisors:servers');
    return byPattern(req, req.params.id, true);
  });
}

/** `uptime`-style text: " 14:02:11 up 3 days,  2:05". */
function uptimeText(since: string): string {
  const secs = Math.max(0, Math.floor((Date.now() - Date.parse(since)) / 1000));
  const days = Math.floor(secs / 86400);
  const h = Math.floor((secs % 86400) / 3600);
  const m = Math.floor((secs % 3600) / 60);
  const now = new Date().toISOString().slice(11, 19);
  return ` ${now} up ${days} day${days === 1 ? '' : 's'}, ${String(h).padStart(2, ' ')}:${String(m).padStart(2, '0')}`;
}

/** Nova reports versions as integers: QEMU 7.2.0 → 7002000. */
function versionNumber(v: string): number {
  const m = /(\d+)\.(\d+)(?:\.(\d+))?/.exec(v);
  return m ? Number(m[1]) * 1_000_000 + Number(m[2]) * 1000 + Number(m[3] ?? 0) : 0;
}
