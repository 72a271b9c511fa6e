// os-interface: a server's NICs (its ports). Attach makes (or claims) a port bound to the server's
// host and adds the NIC to the instance (the agent hot-plugs it over QMP, and the data plane plugs
// its tap); detach removes the NIC, then releases the port.
import { Type } from '@sinclair/typebox';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { App } from '../../core/http.js';
import { badRequest, conflict, notFound } from '../../core/errors.js';
import type { InstanceApi } from '../servers/ports.js';
import { allow } from './common.js';
import { callerOf, type ServerRouteDeps } from './servers.js';

const Params = Type.Object({ id: Type.String({ maxLength: 64 }) });
const PortParams = Type.Object({ id: Type.String({ maxLength: 64 }), port: Type.String({ maxLength: 64 }) });
const Body = Type.Object({
  interfaceAttachment: Type.Object({
    net_id: Type.Optional(Type.String({ maxLength: 64 })),
    port_id: Type.Optional(Type.String({ maxLength: 64 })),
    fixed_ips: Type.Optional(Type.Array(Type.Object({ ip_address: Type.String({ maxLength: 64 }) }), { maxItems: 1 })),
    tag: Type.Optional(Type.String({ maxLength: 60 })),
  }),
});

export function registerInterfaceRoutes(plain: App, d: ServerRouteDeps, instances: InstanceApi): void {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>();
  const ctx = async (req: Parameters<typeof callerOf>[0] & { params: { id: string } }, rule: string) => {
    const c = callerOf(req);
    const s = await d.servers.get(c, req.params.id);
    allow(d, req, `os_compute_api:os-attach-interfaces:${rule}`, { project_id: s.projectId });
    const net = d.network?.();
    if (!net) throw badRequest('Interfaces need the networking service, which this cloud does not run.');
    return { c, s, net };
  };

  app.get('/servers/:id/os-interface', { schema: { params: Params } }, async (req) => {
    const { s, net } = await ctx(req, 'list');
    return { interfaceAttachments: await net.interfaces(s.id) };
  });

  app.get('/servers/:id/os-interface/:port', { schema: { params: PortParams } }, async (req) => {
    const { s, net } = await ctx(req, 'show');
    const a = (await net.interfaces(s.id)).find((x) => x.port_id === req.params.port);
    if (!a) throw notFound(`Port ${req.params.port} is not attached`);
    return { interfaceAttachment: a };
  });

  app.post('/servers/:id/os-interface', { schema: { params: Params, body: Body } }, async (req) => {
    const { c, s, net } = await ctx(req, 'create');
    d.servers.checkLock(c, s);
    const b = req.body.interfaceAttachment;
    if (!b.net_id && !b.port_id) throw badRequest('Specify a net_id or a port_id.');
    if (b.net_id && b.port_id) throw badRequest('net_id and port_id are mutually exclusive.');
    const inst = await instances.getInstance(s.id) as (Awaited<ReturnType<InstanceApi['getInstance']>> & { nics?: { id: string; mac: string; tap: string; mtu?: number }[] }) | undefined;
    if (!s.host || !inst || s.vmState !== 'active' || !instances.setNics) throw conflict(`Cannot 'attach_interface' instance ${s.id} while it is in vm_state ${s.vmState}`);
    const nic = await net.attach({ id: s.id, projectId: s.projectId, host: s.host, availabilityZone: s.availabilityZone },
      { networkId: b.net_id, portId: b.port_id, fixedIp: b.fixed_ips?.[0]?.ip_address });
    await instances.setNics(s.id, [...(inst.nics ?? []).filter((n) => n.id !== nic.id), nic]);
    const a = (await net.interfaces(s.id)).find((x) => x.port_id === nic.id)!;
    return { interfaceAttachment: a };
  });

  app.delete('/servers/:id/os-interface/:port', { schema: { params: PortParams } }, async (req, reply) => {
    const { c, s, net } = await ctx(req, 'delete');
    d.servers.checkLock(c, s);
    if (!(await net.interfaces(s.id)).some((x) => x.port_id === req.params.port)) throw notFound(`Port ${req.params.port} is not attached`);
    const inst = await instances.getInstance(s.id) as { nics?: { id: string; mac: string; tap: string; mtu?: number }[] } | undefined;
    if (inst && instances.setNics) await instances.setNics(s.id, (inst.nics ?? []).filter((n) => n.id !== req.params.port));
    await net.detach(s.id, req.params.port);
    reply.code(202);
  });
}
