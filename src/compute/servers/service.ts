// Servers as users ask for them: validation, quota, the server record and its instance actions.
// Building, deleting and multi-step operations are carried out by the reconciler (reconciler.ts)
// through compute's instance service (desired state for host agents) and placement.
import type { Kysely } from 'kysely';
import type { AuthContext } from '../../core/auth.js';
import { badRequest, conflict, forbidden, notFound } from '../../core/errors.js';
import { nowIso, uuid } from '../../core/ids.js';
import type { Logger } from '../../core/log.js';
import { DEFAULT_AZ, type AggregateService } from '../aggregates.js';
import type { FlavorService } from '../flavors.js';
import type { HostDirectory } from '../hosts.js';
import type { KeypairService } from '../keypairs.js';
import type { QuotaService } from '../quotas.js';
import type { ServerGroupService } from '../server-groups.js';
import { ActionLog } from './actions.js';
import { ServerStore, type FlavorSnapshot, type ServerRecord } from './store.js';
import type { InstanceApi, ImageLookup } from './ports.js';
import type { RequestedNic, ServerNetworking } from './networking.js';

export interface CreateServerInput {
  name: string;
  imageRef: string;
  flavorRef: string;
  keyName?: string;
  userData?: string;
  metadata?: Record<string, string>;
  availabilityZone?: string;
  configDrive?: boolean;
  minCount?: number;
  maxCount?: number;
  hints?: Record<string, unknown>;
  networks?: 'auto' | 'none' | unknown[];
  securityGroups?: string[];
  description?: string | null;
  tags?: string[];
  hostname?: string;
  accessIPv4?: string;
  accessIPv6?: string;
}

export interface Caller { auth: AuthContext; admin: boolean; projectId: string; userId: string; requestId: string }

const HOSTNAME_MAX = 63;

export class ServerService {
  readonly store: ServerStore;
  readonly actions: ActionLog;
  /** Called after a change the reconciler must act on (set by the reconciler). */
  kick: (id: string) => void = () => {};

  constructor(
    private readonly db: Kysely<any>,
    private readonly deps: {
      flavors: FlavorService; keypairs: KeypairService; quotas: QuotaService; groups: ServerGroupService;
      aggregates: AggregateService; hosts: HostDirectory; instances: InstanceApi; images: () => ImageLookup; log: Logger;
      network?: () => ServerNetworking | undefined;
    },
  ) {
    this.store = new ServerStore(db);
    this.actions = new ActionLog(db);
    // instances, cores and ram: every server not yet deleted counts, ERROR ones included (as in Nova).
    deps.quotas.addCounter(async (tx, projectId) => {
      const rows = await tx.selectFrom('compute_servers').select('flavor').where('project_id', '=', projectId)
        .where('deleted', '=', 0).execute();
      let cores = 0; let ram = 0;
      for (const r of rows) { const f = JSON.parse(r.flavor as string) as FlavorSnapshot; cores += f.vcpus; ram += f.ram; }
      return { instances: rows.length, cores, ram };
    });
  }

  async create(c: Caller, input: CreateServerInput): Promise<ServerRecord[]> {
    const d = this.deps;
    const name = input.name;
    if (!name.trim() || name.length > 255) throw badRequest('Invalid input for field/attribute name. The name must be 1-255 characters and not only spaces.');
    const min = input.minCount ?? 1;
    const max = input.maxCount ?? min;
    if (min < 1 || max < min) throw badRequest('min_count must be at least 1 and no greater than max_count.');
    if (max > 100) throw badRequest('max_count may be at most 100.');

    let flavor;
    try { flavor = await d.flavors.get(input.flavorRef, { admin: c.admin, projectId: c.projectId }); } catch {
      throw badRequest(`Flavor ${input.flavorRef} could not be found.`);
    }
    if (flavor.disabled) throw badRequest(`Flavor ${flavor.id} is disabled.`);
    let image;
    try { image = await d.images().getImage(input.imageRef, c.auth); } catch {
      throw badRequest(`Image ${input.imageRef} could not be found.`);
    }
    if (image.status !== 'active') throw badRequest(`Image ${image.id} is not active.`);
    if (image.minRam > flavor.ram) throw badRequest(`Flavor's memory is too small for requested image (the image needs ${image.minRam} MB).`);
    const imageBytes = Math.max(image.size ?? 0, image.virtualSize ?? 0);
    if (flavor.disk > 0 && (image.minDisk > flavor.disk || imageBytes > flavor.disk * 1024 ** 3)) {
      throw badRequest(`Flavor's disk is too small for requested image. Flavor disk is ${flavor.disk * 1024 ** 3} bytes, image is ${Math.max(imageBytes, image.minDisk * 1024 ** 3)} bytes.`);
    }

    let keyData: string | null = null;
    if (input.keyName !== undefined) {
      try { keyData = (await d.keypairs.get(c.userId, input.keyName)).publicKey; } catch {
        throw badRequest(`Invalid key_name provided.`);
      }
    }
    let userData: string | null = null;
    if (input.userData !== undefined) {
      if (!/^[A-Za-z0-9+/\r\n]*={0,2}\s*$/.test(input.userData)) throw badRequest('Invalid input for field/attribute user_data. Value must be base64 encoded.');
      if (Buffer.from(input.userData, 'base64').length > 65535) throw badRequest('Invalid input for field/attribute user_data. At most 65535 bytes after decoding.');
      userData = input.userData.replace(/\s+/g, '');
    }
    const metadata = input.metadata ?? {};
    await this.checkMetadata(c.projectId, metadata);

    // Zones: a name, or (admins) "zone:host" to force a host.
    let zone = input.availabilityZone || undefined;
    let forcedHost: string | undefined;
    if (zone?.includes(':')) {
      const [z, h] = zone.split(':', 2);
      if (!c.admin) throw forbidden('Only administrators may choose a host (availability_zone "zone:host").');
      zone = z || undefined;
      forcedHost = h || undefined;
    }
    if (zone) {
      const nodes = await d.hosts.list();
      const zones = new Set((await d.aggregates.zoneMap(nodes.map((n) => n.name))).values());
      if (!zones.has(zone)) throw badRequest(`The requested availability zone is not available: ${zone}`);
    }
    if (forcedHost && !(await d.hosts.find(forcedHost))) throw badRequest(`Compute host ${forcedHost} could not be found.`);

    const hints = input.hints ?? {};
    const groupId = typeof hints.group === 'string' ? hints.group : undefined;
    if (groupId) {
      const g = await d.groups.get(groupId).catch(() => undefined);
      if (!g || (g.projectId !== c.projectId && !c.admin)) throw badRequest(`Invalid server group: ${groupId} could not be found.`);
    }
    const net = d.network?.();
    let nics: RequestedNic[] = [];
    if (net) nics = await net.resolve(c.projectId, input.networks ?? 'auto', input.securityGroups);
    else if (Array.isArray(input.networks) && input.networks.length) {
      throw badRequest('Explicit networks need the networking service, which this cloud does not run.');
    }
    if (nics.some((n) => n.portId || n.fixedIp) && max > 1) throw badRequest('A port or fixed IP cannot be shared by several servers (max_count > 1).');
    const hostname = sanitizeHostname(input.hostname ?? name);

    const snapshot: FlavorSnapshot = {
      id: flavor.id, name: flavor.name, vcpus: flavor.vcpus, ram: flavor.ram, disk: flavor.disk,
      ephemeral: flavor.ephemeral, swap: flavor.swap, extraSpecs: flavor.extraSpecs,
    };
    // Build as many as fit between min and max (Nova's semantics for min/max count).
    const limits = await d.quotas.limits(c.projectId);
    const used = await d.quotas.usage(c.projectId);
    const room = (k: string, per: number) => (limits[k]! < 0 ? max : Math.floor((limits[k]! - (used[k] ?? 0)) / per));
    const count = Math.max(min, Math.min(max, room('instances', 1), room('cores', flavor.vcpus), room('ram', flavor.ram)));
    const now = nowIso();
    const reservationId = `r-${uuid().slice(0, 8)}`;
    const servers: ServerRecord[] = Array.from({ length: count }, (_, i) => ({
      id: uuid(), projectId: c.projectId, userId: c.userId,
      name: count > 1 ? `${name}-${i + 1}` : name, description: input.description ?? null,
      hostname: count > 1 ? `${hostname.slice(0, HOSTNAME_MAX - 4)}-${i + 1}` : hostname,
      imageId: image.id, flavor: snapshot, keyName: input.keyName ?? null, keyData, userData, metadata,
      configDrive: input.configDrive ?? false, requestedAz: zone ?? null, availabilityZone: zone ?? null, host: null,
      vmState: 'building', taskState: 'scheduling', task: null, fault: null,
      request: { hints, groupId, triedHosts: [], attempts: 0, forcedHost, imageProperties: image.properties, nics,
        ...(input.securityGroups?.length ? { securityGroups: input.securityGroups } : {}) },
      reservationId, launchIndex: i, locked: false, lockedReason: null, lockedBy: null,
      accessIpv4: input.accessIPv4 ?? null, accessIpv6: input.accessIPv6 ?? null,
      createdAt: now, updatedAt: now, launchedAt: null, terminatedAt: null, deleted: false, tags: input.tags ?? [],
    }));
    const memberLimit = groupId ? await d.quotas.limit(c.projectId, 'server_group_members') : -1;
    await d.quotas.consume(c.projectId, { instances: count, cores: count * flavor.vcpus, ram: count * flavor.ram }, async (tx) => {
      for (const s of servers) {
        await this.store.insert(s, tx);
        if (groupId) await d.groups.addMember(tx, groupId, s.id, memberLimit);
        const a = await this.actions.start({ serverId: s.id, action: 'create', requestId: c.requestId, projectId: c.projectId, userId: c.userId }, tx);
        await this.actions.event(a, { event: 'conductor_schedule_and_build_instances' }, tx);
      }
    });
    for (const s of servers) this.kick(s.id);
    return servers;
  }

  /** A server the caller may see (their project's, or any for admins); 404 otherwise. */
  async get(c: { admin: boolean; projectId: string }, id: string): Promise<ServerRecord> {
    const s = await this.store.get(id);
    if (!s || s.deleted || (!c.admin && s.projectId !== c.projectId)) throw notFound(`Instance ${id} could not be found.`);
    return s;
  }

  async update(c: Caller, id: string, patch: { name?: string; description?: string | null; hostname?: string; accessIPv4?: string; accessIPv6?: string }): Promise<ServerRecord> {
    const s = await this.get(c, id);
    this.checkLock(c, s);
    if (patch.name !== undefined) {
      if (!patch.name.trim() || patch.name.length > 255) throw badRequest('Invalid input for field/attribute name.');
      s.name = patch.name;
    }
    if (patch.description !== undefined) s.description = patch.description;
    if (patch.hostname !== undefined) s.hostname = sanitizeHostname(patch.hostname);
    if (patch.accessIPv4 !== undefined) s.accessIpv4 = patch.accessIPv4 || null;
    if (patch.accessIPv6 !== undefined) s.accessIpv6 = patch.accessIPv6 || null;
    s.updatedAt = nowIso();
    await this.store.update(s);
    return s;
  }

  /** Delete (and force delete: Stratus has no soft delete): the reconciler removes the guest, then the record. */
  async delete(c: Caller, id: string): Promise<void> {
    const s = await this.get(c, id);
    this.checkLock(c, s);
    if (s.task?.type === 'delete') return;
    const actionId = await this.actions.start({ serverId: id, action: 'delete', requestId: c.requestId, projectId: s.projectId, userId: c.userId });
    s.task = { type: 'delete', actionId };
    s.taskState = 'deleting';
    s.updatedAt = nowIso();
    await this.store.update(s);
    this.kick(id);
  }

  async setMetadata(c: Caller, id: string, meta: Record<string, string>, replace: boolean): Promise<Record<string, string>> {
    const s = await this.get(c, id);
    this.checkLock(c, s);
    const next = replace ? { ...meta } : { ...s.metadata, ...meta };
    await this.checkMetadata(s.projectId, next);
    s.metadata = next;
    s.updatedAt = nowIso();
    await this.store.update(s);
    return next;
  }

  async deleteMetadata(c: Caller, id: string, key: string): Promise<void> {
    const s = await this.get(c, id);
    this.checkLock(c, s);
    if (!(key in s.metadata)) throw notFound(`Metadata item was not found: ${key}`);
    delete s.metadata[key];
    s.updatedAt = nowIso();
    await this.store.update(s);
  }

  async setTags(c: Caller, id: string, tags: string[]): Promise<string[]> {
    const s = await this.get(c, id);
    this.checkLock(c, s);
    for (const t of tags) validTag(t);
    const uniq = [...new Set(tags)];
    if (uniq.length > 50) throw badRequest('The number of tags exceeded the per-server limit 50');
    await this.store.setTags(id, uniq);
    await this.db.updateTable('compute_servers').set({ updated_at: nowIso() }).where('id', '=', id).execute();
    return uniq.sort();
  }

  async addTag(c: Caller, id: string, tag: string): Promise<boolean> {
    const s = await this.get(c, id);
    if (s.tags.includes(tag)) return false;
    await this.setTags(c, id, [...s.tags, tag]);
    return true;
  }

  async removeTag(c: Caller, id: string, tag: string): Promise<void> {
    const s = await this.get(c, id);
    if (!s.tags.includes(tag)) throw notFound(`Tag ${tag} could not be found for instance ${id}.`);
    await this.setTags(c, id, s.tags.filter((t) => t !== tag));
  }

  checkLock(c: Caller, s: ServerRecord): void {
    // As Nova: only admins act on a locked server, not even whoever locked it (unlock first).
    if (s.locked && !c.admin) throw conflict(`Instance ${s.id} is locked`);
  }

  private async checkMetadata(projectId: string, meta: Record<string, string>): Promise<void> {
    for (const [k, v] of Object.entries(meta)) {
      if (!k || k.length > 255) throw badRequest('Invalid input for field/attribute metadata. Keys must be 1-255 characters.');
      if (typeof v !== 'string' || v.length > 255) throw badRequest(`Invalid input for field/attribute metadata. The value of '${k}' must be a string of at most 255 characters.`);
    }
    const limit = await this.deps.quotas.limit(projectId, 'metadata_items');
    if (limit >= 0 && Object.keys(meta).length > limit) {
      throw forbidden(`Quota exceeded for metadata_items: Requested ${Object.keys(meta).length}, but the limit is ${limit} metadata_items`);
    }
  }
}

export function sanitizeHostname(name: string): string {
  const h = name.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, HOSTNAME_MAX).replace(/-+$/, '');
  return h || 'server';
}

function validTag(t: string): void {
  if (!t || t.length > 60 || /[,/]/.test(t)) throw badRequest(`Invalid tag '${t}': 1-60 characters, no ',' or '/'.`);
}

export { DEFAULT_AZ };
