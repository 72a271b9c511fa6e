// How a server is rendered at a microversion: status from the server record (lifecycle) and
// its instance (what the host agent observes), admin-only attributes, embedded flavor (2.47+).
import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { ServerRecord } from '../servers/store.js';
import type { InstanceLike } from '../servers/ports.js';
import { atLeast } from './microversion.js';
import { links, novaTime, type RouteDeps } from './common.js';

const POWER: Record<string, number> = { running: 1, paused: 3, shutdown: 4, crashed: 6, suspended: 7 };

export function vmStateOf(s: Pick<ServerRecord, 'deleted' | 'vmState'>, inst: Pick<InstanceLike, 'powerState'> | undefined): string {
  if (s.deleted) return 'deleted';
  if (s.vmState !== 'active') return s.vmState;
  switch (inst?.powerState) {
    case 'shutdown': case 'crashed': return 'stopped';
    case 'paused': return 'paused';
    case 'suspended': return 'suspended';
    default: return 'active';
  }
}

export function taskStateOf(s: Pick<ServerRecord, 'vmState' | 'taskState'>, inst: Pick<InstanceLike, 'taskState'> | undefined): string | null {
  if (s.taskState) return s.taskState;
  if (s.vmState !== 'active' || !inst) return null;
  return inst.taskState ? inst.taskState.replace(/-/g, '_') : null;
}

/** What a server's view needs of its instance (list views read only these columns). */
export type ServerRuntime = Pick<InstanceLike, 'powerState' | 'taskState'>;

/** Nova's status from vm_state and task_state. */
export function statusOf(vm: string, task: string | null): string {
  if (task === 'rebooting' || task === 'reboot_pending' || task === 'reboot_started') return 'REBOOT';
  if (task === 'rebooting_hard') return 'HARD_REBOOT';
  if (task?.startsWith('rebuild')) return 'REBUILD';
  if (task === 'resize_reverting') return 'REVERT_RESIZE';
  if (task?.startsWith('resize')) return 'RESIZE';
  if (task === 'migrating') return 'MIGRATING';
  switch (vm) {
    case 'building': return 'BUILD';
    case 'active': return 'ACTIVE';
    case 'stopped': return 'SHUTOFF';
    case 'paused': return 'PAUSED';
    case 'suspended': return 'SUSPENDED';
    case 'resized': return 'VERIFY_RESIZE';
    case 'error': return 'ERROR';
    case 'deleted': return 'DELETED';
    default: return 'UNKNOWN';
  }
}

/** Nova's hostId: a project-specific hash of the host, so tenants can tell co-location apart. */
const hostId = (s: ServerRecord) => (s.host ? createHash('sha224').update(s.projectId + s.host).digest('hex') : '');

export function serverBrief(deps: RouteDeps, s: ServerRecord) {
  return { id: s.id, name: s.name, links: links(deps, 'servers', s.id) };
}

export function serverView(deps: RouteDeps, req: FastifyRequest, s: ServerRecord, inst: ServerRuntime | undefined,
  opts: { admin: boolean; hostUp?: boolean; groups?: string[]; addresses?: Record<string, unknown[]>; securityGroups?: string[] }) {
  const vm = vmStateOf(s, inst);
  const task = taskStateOf(s, inst);
  const status = statusOf(vm, task);
  const flavor = atLeast(req, 47)
    ? { vcpus: s.flavor.vcpus, ram: s.flavor.ram, disk: s.flavor.disk, ephemeral: s.flavor.ephemeral, swap: s.flavor.swap,
      original_name: s.flavor.name, extra_specs: s.flavor.extraSpecs }
    : { id: s.flavor.id, links: [{ rel: 'bookmark', href: `${deps.computeUrl()}/flavors/${s.flavor.id}` }] };
  const v: Record<string, unknown> = {
    id: s.id, name: s.name, status, tenant_id: s.projectId, user_id: s.userId, metadata: s.metadata, hostId: hostId(s),
    image: s.imageId ? { id: s.imageId, links: [{ rel: 'bookmark', href: `${deps.computeUrl()}/images/${s.imageId}` }] } : '',
    flavor, created: iso(s.createdAt), updated: iso(s.updatedAt), addresses: opts.addresses ?? {},
    accessIPv4: s.accessIpv4 ?? '', accessIPv6: s.accessIpv6 ?? '', links: links(deps, 'servers', s.id),
    'OS-DCF:diskConfig': 'MANUAL', progress: 0, 'OS-EXT-AZ:availability_zone': s.availabilityZone ?? '',
    config_drive: s.configDrive ? 'True' : '', key_name: s.keyName,
    'OS-SRV-USG:launched_at': novaTime(s.launchedAt), 'OS-SRV-USG:terminated_at': novaTime(s.terminatedAt),
    'OS-EXT-STS:task_state': task, 'OS-EXT-STS:vm_state': vm, 'OS-EXT-STS:power_state': POWER[inst?.powerState ?? ''] ?? 0,
    'os-extended-volumes:volumes_attached': [],
    // As Nova with Neutron: the names of the groups on the server's ports (absent without ports).
    ...(opts.securityGroups?.length ? { security_groups: opts.securityGroups.map((name) => ({ name })) } : {}),
  };
  if (s.fault && (vm === 'error' || vm === 'deleted' || s.fault)) {
    v.fault = { code: s.fault.code, created: iso(s.fault.created), message: s.fault.message,
      ...(opts.admin || s.fault.code !== 500 ? { details: s.fault.details ?? s.fault.message } : {}) };
  }
  if (opts.admin) {
    Object.assign(v, {
      'OS-EXT-SRV-ATTR:host': s.host, 'OS-EXT-SRV-ATTR:hypervisor_hostname': s.host,
      'OS-EXT-SRV-ATTR:instance_name': `instance-${s.id.slice(0, 8)}`,
    });
    if (atLeast(req, 3)) {
      Object.assign(v, {
        'OS-EXT-SRV-ATTR:reservation_id': s.reservationId, 'OS-EXT-SRV-ATTR:launch_index': s.launchIndex,
        'OS-EXT-SRV-ATTR:hostname': s.hostname, 'OS-EXT-SRV-ATTR:kernel_id': '', 'OS-EXT-SRV-ATTR:ramdisk_id': '',
        'OS-EXT-SRV-ATTR:root_device_name': '/dev/vda', 'OS-EXT-SRV-ATTR:user_data': s.userData,
      });
    }
  } else if (atLeast(req, 90)) {
    v['OS-EXT-SRV-ATTR:hostname'] = s.hostname;
  }
  if (atLeast(req, 9)) v.locked = s.locked;
  if (atLeast(req, 16) && opts.admin && s.host) v.host_status = opts.hostUp === false ? 'DOWN' : 'UP';
  if (atLeast(req, 19)) v.description = s.description;
  if (atLeast(req, 26)) v.tags = s.tags;
  if (atLeast(req, 63)) v.trusted_image_certificates = null;
  if (atLeast(req, 71)) v.server_groups = opts.groups ?? [];
  if (atLeast(req, 73)) v.locked_reason = s.lockedReason;
  return v;
}

// What PUT /servers/{id} and rebuild answered before 2.75 (from 2.75 they answer as GET does).
const UPDATE_VIEW_KEYS = new Set(['id', 'name', 'status', 'tenant_id', 'user_id', 'metadata', 'hostId', 'image', 'flavor',
  'created', 'updated', 'addresses', 'accessIPv4', 'accessIPv6', 'links', 'OS-DCF:diskConfig', 'progress', 'fault',
  'locked', 'description', 'tags', 'trusted_image_certificates', 'server_groups', 'locked_reason']);

/** The server as the update and rebuild responses show it at the request's microversion. */
export function updateView(req: FastifyRequest, v: Record<string, unknown>): Record<string, unknown> {
  if (atLeast(req, 75)) return v;
  const out = Object.fromEntries(Object.entries(v).filter(([k]) => UPDATE_VIEW_KEYS.has(k)));
  // Addresses without the OS-EXT-IPS attributes, too.
  out.addresses = Object.fromEntries(Object.entries((v.addresses ?? {}) as Record<string, { addr: string; version: number }[]>)
    .map(([net, list]) => [net, list.map((a) => ({ addr: a.addr, version: a.version }))]));
  return out;
}

const iso = (t: string) => new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');
