// The controller's metadata API: what a guest reads from 169.254.169.254 (OpenStack and EC2
// paths). A request arrives from a proxy in a router (or DHCP) namespace, relayed by the agent;
// verifyRequester() checks the proxy's HMAC over (router or network, source IP), then the
// requester resolves to exactly one port: the compute port holding that fixed IP on a subnet the
// router has an interface on (or on that network). Its device_id is the instance.
import { verifyRequester, type MetadataRequester } from '../agent/dataplane/metadata-contract.js';
import { toDesired } from '../compute/service.js';
import type { ComputeModule } from '../compute/index.js';
import type { NetworkModule } from '../network/index.js';
import type { Doc } from '../network/service.js';
import { networkDataOf } from './network-data.js';

export interface MetadataAnswer {
  status: number;
  contentType: string;
  body: string;
}

const text = (body: string, status = 200): MetadataAnswer => ({ status, contentType: 'text/plain; charset=utf-8', body });
const json = (v: unknown): MetadataAnswer => ({ status: 200, contentType: 'application/json', body: JSON.stringify(v) });
const NOT_FOUND = text('Not Found\n', 404);

const OPENSTACK_VERSIONS = ['2012-08-10', '2013-04-04', '2013-10-17', '2015-10-15', '2016-06-30', '2016-10-06', '2017-02-22', '2018-08-27', '2020-10-14', 'latest'];
const EC2_VERSIONS = ['1.0', '2007-01-19', '2007-03-01', '2007-08-29', '2008-02-01', '2009-04-04', 'latest'];

export class MetadataApi {
  constructor(private readonly network: NetworkModule, private readonly compute: ComputeModule, private readonly secret: () => string) {}

  /** Answers one relayed request; `path` is the guest's request path (with query). */
  async answer(headers: Record<string, string | string[] | undefined>, path: string): Promise<MetadataAnswer> {
    const who = verifyRequester(headers, this.secret());
    if (!who) return text('Forbidden: the request was not signed by a Stratus metadata proxy\n', 403);
    const port = await this.portOf(who);
    if (!port) return text('Not Found: no instance has this address here\n', 404);
    const inst = await this.compute.service.getInstance(port.device_id);
    if (!inst || inst.deleted) return text('Not Found: no instance has this address here\n', 404);
    const desired = toDesired(inst);
    const md = desired.configDrive.metaData as Record<string, any>;
    const userData = desired.configDrive.userData;
    const p = path.split('?')[0]!.replace(/\/{2,}/g, '/');
    const parts = p.split('/').filter(Boolean);

    if (parts[0] === 'openstack') {
      if (parts.length === 1) return text(OPENSTACK_VERSIONS.join('\n'));
      if (!OPENSTACK_VERSIONS.includes(parts[1]!)) return NOT_FOUND;
      const file = parts.slice(2).join('/');
      switch (file) {
        case '': return text(['meta_data.json', 'network_data.json', 'vendor_data.json', 'vendor_data2.json', ...(userData !== undefined ? ['user_data'] : [])].join('\n'));
        case 'meta_data.json': return json(md);
        case 'user_data': return userData !== undefined ? text(userData) : NOT_FOUND;
        case 'network_data.json': return json(await networkDataOf(this.network, inst.id));
        case 'vendor_data.json': case 'vendor_data2.json': return json({});
        default: return NOT_FOUND;
      }
    }
    if (parts.length === 0) return text(EC2_VERSIONS.join('\n'));
    if (!EC2_VERSIONS.includes(parts[0]!)) return NOT_FOUND;
    if (parts[1] === 'user-data' && parts.length === 2) return userData !== undefined ? text(userData) : NOT_FOUND;
    if (parts.length === 1) return text(['meta-data/', ...(userData !== undefined ? ['user-data'] : [])].join('\n'));
    if (parts[1] !== 'meta-data') return NOT_FOUND;
    const keys = (md.keys ?? []) as { name: string; data: string }[];
    const fip = (await this.network.service.core.store.find('floatingip', { port_id: port.id }))[0];
    const tree: Record<string, string | Record<string, unknown>> = {
      'ami-id': String(inst.imageId), 'ami-launch-index': '0', hostname: String(md.hostname), 'instance-id': inst.id,
      'instance-type': `${inst.vcpus}vcpu-${inst.ramMb}mb`, 'local-hostname': String(md.hostname),
      'local-ipv4': who.ip, 'public-hostname': String(md.hostname), 'public-ipv4': fip?.floating_ip_address ?? '',
      placement: { 'availability-zone': String(md.availability_zone ?? 'nova') },
      'public-keys': Object.fromEntries(keys.map((k, i) => [String(i), { 'openssh-key': k.data }])),
    };
    // EC2 lists keys as "0=name" and reads them as 0/openssh-key.
    const rest = parts.slice(2);
    if (rest[0] === 'public-keys' && rest.length === 1) return text(keys.map((k, i) => `${i}=${k.name}`).join('\n'));
    let node: string | Record<string, unknown> = tree;
    for (const seg of rest) {
      if (typeof node === 'string' || !(seg in node)) return NOT_FOUND;
      node = node[seg] as string | Record<string, unknown>;
    }
    if (typeof node === 'string') return text(node);
    return text(Object.entries(node).map(([k, v]) => (typeof v === 'string' ? k : `${k}/`)).join('\n'));
  }

  /** The compute port the verified requester speaks for, or undefined. */
  async portOf(who: MetadataRequester): Promise<Doc | undefined> {
    const store = this.network.service.core.store;
    let subnetIds: string[];
    if (who.routerId) {
      const legs = await store.find('port', { device_id: who.routerId, device_owner: 'network:router_interface' });
      subnetIds = legs.flatMap((l) => (l.fixed_ips as { subnet_id: string }[]).map((f) => f.subnet_id));
    } else {
      subnetIds = (await store.find('subnet', { network_id: who.networkId! })).map((s) => s.id);
    }
    if (!subnetIds.length) return undefined;
    const subnets = await store.find('subnet', { id: subnetIds });
    const candidates = await store.find('port', { network_id: [...new Set(subnets.map((s) => s.network_id as string))] });
    const hits = candidates.filter((p) => String(p.device_owner).startsWith('compute:') && p.device_id &&
      (p.fixed_ips as { subnet_id: string; ip_address: string }[]).some((f) => f.ip_address === who.ip && subnetIds.includes(f.subnet_id)));
    // Two ports with one address on one router's subnets cannot both be answered for.
    return hits.length === 1 ? hits[0] : undefined;
  }
}
