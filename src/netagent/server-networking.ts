// Compute's view of networking (compute/servers/networking.ts) backed by the network service:
// `networks` of a server create resolved to NICs, ports created or claimed and bound to the
// build's host, released at delete, and the server's addresses as Nova shows them.
import { badRequest } from '../core/errors.js';
import { tapNameFor } from '../agent/dataplane/model.js';
import type { RequestedNic, ServerNetworking, ServerNic } from '../compute/servers/networking.js';
import type { NetworkModule } from '../network/index.js';
import { projectCaller } from '../network/service.js';
import type { Doc } from '../network/store.js';
import { networkDataOf } from './network-data.js';

export function serverNetworking(network: NetworkModule): ServerNetworking {
  const svc = network.service;
  const store = svc.core.store;

  // Nova's `addresses` for many servers in a fixed number of queries (ports, networks, floating IPs).
  const addressesOf = async (serverIds: string[]): Promise<Map<string, Record<string, unknown[]>>> => {
    const out = new Map<string, Record<string, unknown[]>>();
    const own = await serverPorts(serverIds);
    if (!own.length) return out;
    const nets = new Map((await store.find('network', { id: [...new Set(own.map((p) => p.network_id as string))] })).map((n) => [n.id, n]));
    const fips = new Map<string, Doc[]>();
    for (let i = 0; i < own.length; i += 500) {
      for (const f of await store.find('floatingip', { port_id: own.slice(i, i + 500).map((p) => p.id) })) {
        fips.set(f.port_id as string, [...(fips.get(f.port_id as string) ?? []), f]);
      }
    }
    for (const p of own) {
      const server = String(p.device_id);
      const byNet = out.get(server) ?? {};
      out.set(server, byNet);
      const list = (byNet[String(nets.get(p.network_id)?.name || p.network_id)] ??= []);
      for (const f of p.fixed_ips as { ip_address: string }[]) {
        list.push({ addr: f.ip_address, version: f.ip_address.includes(':') ? 6 : 4, 'OS-EXT-IPS:type': 'fixed', 'OS-EXT-IPS-MAC:mac_addr': p.mac_address });
        for (const fip of fips.get(p.id) ?? []) {
          if (fip.fixed_ip_address === f.ip_address) {
            list.push({ addr: fip.floating_ip_address, version: 4, 'OS-EXT-IPS:type': 'floating', 'OS-EXT-IPS-MAC:mac_addr': p.mac_address });
          }
        }
      }
    }
    return out;
  };

  // The servers' own ports (compute:*), in chunks of 500 ids.
  const serverPorts = async (serverIds: string[]): Promise<Doc[]> => {
    const ports: Doc[] = [];
    for (let i = 0; i < serverIds.length; i += 500) ports.push(...await store.find('port', { device_id: serverIds.slice(i, i + 500) }));
    return ports.filter((p) => String(p.device_owner).startsWith('compute:'));
  };

  const securityGroupsOf = async (serverIds: string[]): Promise<Map<string, string[]>> => {
    const own = await serverPorts(serverIds);
    const ids = [...new Set(own.flatMap((p) => (p.security_groups as string[] | undefined) ?? []))];
    const names = new Map((ids.length ? await store.find('security_group', { id: ids }) : []).map((g) => [g.id, String(g.name)]));
    const out = new Map<string, Set<string>>();
    for (const p of own) {
      const set = out.get(String(p.device_id)) ?? new Set<string>();
      for (const g of (p.security_groups as string[] | undefined) ?? []) set.add(names.get(g) ?? g);
      out.set(String(p.device_id), set);
    }
    return new Map([...out].map(([id, set]) => [id, [...set].sort()]));
  };

  return {
    securityGroupsOf,
    networkData: (serverId) => networkDataOf(network, serverId),
    async resolve(projectId, networks, securityGroups) {
      for (const g of securityGroups ?? []) await svc.resolveSecurityGroup(projectId, g).catch(() => { throw badRequest(`Security group ${g} not found for project ${projectId}.`); });
      if (networks === 'none') return [];
      if (networks === 'auto') {
        // The one network the project can use (its own or shared, not external); none: no NIC.
        const usable = (await svc.list('network', projectCaller(projectId)))
          .filter((n) => !n['router:external'] && (n.project_id === projectId || n.shared));
        if (usable.length > 1) throw badRequest('Multiple possible networks found, use a Network ID to be more specific.');
        return usable.map((n) => ({ networkId: n.id }));
      }
      const out: RequestedNic[] = [];
      for (const raw of networks as { uuid?: string; port?: string; fixed_ip?: string }[]) {
        if (raw.port) {
          const p = await store.get('port', raw.port);
          if (!p || p.project_id !== projectId) throw badRequest(`Port ${raw.port} could not be found.`);
          if (p.device_id) throw badRequest(`Port ${raw.port} is still in use.`);
          out.push({ portId: p.id });
          continue;
        }
        if (!raw.uuid) throw badRequest('Bad networks format: each entry needs a network uuid or a port.');
        try { await svc.get('network', projectCaller(projectId), raw.uuid); } catch {
          throw badRequest(`Network ${raw.uuid} could not be found.`);
        }
        out.push({ networkId: raw.uuid, ...(raw.fixed_ip ? { fixedIp: raw.fixed_ip } : {}) });
      }
      return out;
    },

    async plug(s) {
      const existing = await svc.serverPorts(s.id);
      const az = s.availabilityZone ?? undefined;
      const nics: ServerNic[] = [];
      for (const [i, want] of s.nics.entries()) {
        // Idempotent: a port made for this NIC earlier (a retried build) is found by its tag.
        const tag = `nic-${i}`;
        let port = want.portId ? existing.find((p) => p.id === want.portId) : existing.find((p) => (p.tags as string[] | undefined)?.includes(tag));
        if (!port && want.portId) port = await svc.claimPort(want.portId, { projectId: s.projectId, serverId: s.id, availabilityZone: az });
        if (!port) {
          port = await svc.createServerPort({ projectId: s.projectId, serverId: s.id, networkId: want.networkId!, fixedIp: want.fixedIp,
            securityGroups: s.securityGroups, hostId: s.host, availabilityZone: az });
          port.tags = [...(port.tags ?? []), tag];
          await store.update('port', port);
        }
        if (port['binding:host_id'] !== s.host) port = await svc.bindPort(port.id, s.host);
        const net = await store.get('network', port.network_id);
        nics.push({ id: port.id, mac: port.mac_address, tap: tapNameFor(port.id), ...(net?.mtu ? { mtu: Number(net.mtu) } : {}) });
      }
      return nics;
    },

    async attach(srv, want) {
      const existing = await svc.serverPorts(srv.id);
      const az = srv.availabilityZone ?? undefined;
      let port;
      if (want.portId) {
        const p = await store.get('port', want.portId);
        if (!p || p.project_id !== srv.projectId) throw badRequest(`Port ${want.portId} could not be found.`);
        if (p.device_id && p.device_id !== srv.id) throw badRequest(`Port ${want.portId} is still in use.`);
        port = await svc.claimPort(p.id, { projectId: srv.projectId, serverId: srv.id, availabilityZone: az });
      } else {
        if (!want.networkId) throw badRequest('Specify a net_id or a port_id.');
        try { await svc.get('network', projectCaller(srv.projectId), want.networkId); } catch { throw badRequest(`Network ${want.networkId} could not be found.`); }
        // A tag past the create-time NICs marks the port as compute's (deleted on detach).
        const n = existing.length + 100;
        port = await svc.createServerPort({ projectId: srv.projectId, serverId: srv.id, networkId: want.networkId, fixedIp: want.fixedIp,
          hostId: srv.host, availabilityZone: az });
        port.tags = [...(port.tags ?? []), `nic-${n}`];
        await store.update('port', port);
      }
      if (port['binding:host_id'] !== srv.host) port = await svc.bindPort(port.id, srv.host);
      const net = await store.get('network', port.network_id);
      return { id: port.id, mac: port.mac_address, tap: tapNameFor(port.id), ...(net?.mtu ? { mtu: Number(net.mtu) } : {}) };
    },

    async detach(serverId, portId) {
      const p = (await svc.serverPorts(serverId)).find((x) => x.id === portId);
      if (!p) return;
      if ((p.tags as string[] | undefined)?.some((t) => /^nic-\d+$/.test(t))) await svc.deleteServerPort(p.id);
      else await svc.detachPort(p.id);
    },

    async interfaces(serverId) {
      return (await svc.serverPorts(serverId)).filter((p) => String(p.device_owner).startsWith('compute:')).map((p) => ({
        port_id: p.id, net_id: p.network_id, mac_addr: p.mac_address, port_state: String(p.status),
        fixed_ips: (p.fixed_ips as { subnet_id: string; ip_address: string }[]).map((f) => ({ subnet_id: f.subnet_id, ip_address: f.ip_address })),
      }));
    },

    async migrating(serverId, dest) {
      await svc.markMigrating(serverId, dest);
    },

    async bind(serverId, host) {
      for (const p of await svc.serverPorts(serverId)) if (p['binding:host_id'] !== host || p._migrating_to) await svc.bindPort(p.id, host);
    },

    async release(serverId) {
      for (const p of await svc.serverPorts(serverId)) {
        const made = (p.tags as string[] | undefined)?.some((t) => /^nic-\d+$/.test(t));
        if (made) await svc.deleteServerPort(p.id);
        else await svc.detachPort(p.id);
      }
    },

    async setSecurityGroup(projectId, serverId, group, add) {
      const id = await svc.resolveSecurityGroup(projectId, group).catch(() => { throw badRequest(`Security group ${group} not found for project ${projectId}.`); });
      const ports = (await svc.serverPorts(serverId)).filter((p) => String(p.device_owner).startsWith('compute:'));
      if (!add && !ports.some((p) => (p.security_groups as string[]).includes(id))) throw badRequest(`Security group ${group} not assigned to the instance ${serverId}.`);
      for (const p of ports) {
        const cur = p.security_groups as string[];
        const next = add ? [...new Set([...cur, id])] : cur.filter((g) => g !== id);
        if (next.length !== cur.length || next.some((g, i) => g !== cur[i])) await svc.setPortSecurityGroups(projectId, p.id, next);
      }
    },

    async securityGroups(projectId) {
      await svc.resolveSecurityGroup(projectId, 'default').catch(() => undefined); // makes the default group
      return (await store.find('security_group')).filter((g) => g.project_id === projectId)
        .map((g) => ({ id: g.id, name: String(g.name), description: String(g.description ?? ''), tenant_id: g.project_id, rules: [] }));
    },

    async networks(projectId) {
      const nets = projectId === undefined ? await store.find('network') : await svc.list('network', projectCaller(projectId));
      const subnets = nets.length ? await store.find('subnet', { network_id: nets.map((n) => n.id) }) : [];
      return nets.map((n) => ({ id: n.id, label: String(n.name ?? ''),
        cidr: (subnets.find((x) => x.network_id === n.id)?.cidr as string | undefined) ?? null }));
    },

    async usage(projectId, resources) {
      const out: Record<string, number> = {};
      for (const r of resources) out[r] = await svc.core.usage(projectId, r);
      return out;
    },

    async addresses(serverId) {
      return (await addressesOf([serverId])).get(serverId) ?? {};
    },

    addressesOf,
  };
}
