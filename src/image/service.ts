// The rules of the image service, and the typed interface other services call in-process.
// Callers are an AuthContext (a user's token) or 'system' (another service acting for the cloud).
import type { AuthContext } from '../core/auth.js';
import type { Database } from '../core/db.js';
import { isUniqueViolation } from '../core/db.js';
import { ApiError, badRequest, conflict, forbidden, notFound, payloadTooLarge } from '../core/errors.js';
import { nowIso, uuid } from '../core/ids.js';
import type { Logger } from '../core/log.js';
import type { PolicyEngine, Target } from '../core/policy.js';
import type { IdentityModule } from '../identity/index.js';
import type { StoreBackend } from './backends/backend.js';
import type { ImageConfig } from './config.js';
import { CONTAINER_FORMATS, DISK_FORMATS } from './inspect.js';
import { applyPatch, MUTABLE, type PatchOp } from './patch.js';
import {
  ImageStore, type ImageRecord, type ListQuery, type MemberRecord, type MemberStatus, type Visibility,
} from './store.js';

export type Caller = AuthContext | 'system';
export type ImageIdentity = Pick<IdentityModule, 'getLimit' | 'ensureRegisteredLimit' | 'getProject'>;

export interface ImageDeps {
  db: Database;
  identity: ImageIdentity;
  policy: PolicyEngine;
  log: Logger;
  cfg: ImageConfig;
  regionId: string;
  stores: Map<string, StoreBackend>;
  staging: StoreBackend;
}

/** Attributes of a new image (Glance's create body, custom properties apart). */
export interface NewImage {
  id?: string;
  name?: string | null;
  visibility?: Visibility;
  protected?: boolean;
  os_hidden?: boolean;
  /** Project owning it; defaults to the caller's project. Setting another needs admin. */
  owner?: string | null;
  min_disk?: number;
  min_ram?: number;
  disk_format?: string | null;
  container_format?: string | null;
  tags?: string[];
  properties?: Record<string, string>;
}

const VISIBILITIES = ['public', 'private', 'shared', 'community'];
const MiB = 1024 * 1024;

export const isSystem = (c: Caller): c is 'system' => c === 'system';

export class ImageService {
  readonly store: ImageStore;

  constructor(readonly deps: ImageDeps) {
    this.store = new ImageStore(deps.db);
  }

  // ---- authorization helpers ----

  target(img: ImageRecord, extra: Target = {}): Target {
    return { owner: img.owner ?? '', project_id: img.owner ?? '', visibility: img.visibility, ...extra };
  }

  enforce(caller: Caller, rule: string, target: Target = {}): void {
    if (isSystem(caller)) return;
    this.deps.policy.enforce(rule, caller, target);
  }

  isAdmin(caller: Caller): boolean {
    return isSystem(caller) || this.deps.policy.check('admin', caller);
  }

  private async canSee(caller: Caller, img: ImageRecord): Promise<boolean> {
    if (this.isAdmin(caller)) return true;
    const project = (caller as AuthContext).projectId;
    if (img.visibility === 'public' || img.visibility === 'community') return true;
    if (!project) return false;
    if (img.owner === project) return true;
    return img.visibility === 'shared' && !!(await this.store.getMember(img.id, project));
  }

  /** The image if `caller` may see it, else 404 (never telling whether it exists). */
  async getVisible(caller: Caller, id: string): Promise<ImageRecord> {
    const img = await this.store.get(id);
    if (!img || !(await this.canSee(caller, img))) throw notFound(`No image found with ID ${id}`);
    return img;
  }

  async getImage(caller: Caller, id: string): Promise<ImageRecord> {
    const img = await this.getVisible(caller, id);
    this.enforce(caller, 'image:get_image', this.target(img));
    return img;
  }

  // ---- quotas (unified limits in identity; sizes in MiB as Glance) ----

  async limit(owner: string, resource: keyof ImageConfig['defaultLimits']): Promise<number> {
    const v = await this.deps.identity.getLimit({ projectId: owner, serviceType: 'image', resourceName: resource, regionId: this.deps.regionId });
    const value = v ?? this.deps.cfg.defaultLimits[resource];
    return value < 0 ? Infinity : value;
  }

  overLimit(resource: string, limit: number, usage: number, attempted: number): ApiError {
    return payloadTooLarge(`Quota exceeded for resource ${resource}: limit ${limit}, in use ${usage}, requested ${attempted}.`);
  }

  /** Bytes `owner` may still store in images (and the error to raise past it). */
  async sizeHeadroom(owner: string | null, extraUsed = 0): Promise<{ bytes: number; error: () => ApiError }> {
    let bytes = this.deps.cfg.maxImageSize;
    let error = () => payloadTooLarge(`Image exceeds the largest image size accepted (${this.deps.cfg.maxImageSize} bytes).`);
    if (owner) {
      const limitMiB = await this.limit(owner, 'image_size_total');
      const usage = await this.store.usage(owner);
      const left = limitMiB * MiB - usage.size - extraUsed;
      if (left < bytes) {
        bytes = Math.max(0, left);
        error = () => this.overLimit('image_size_total (MiB)', limitMiB, Math.ceil((usage.size + extraUsed) / MiB), Math.ceil(bytes / MiB) + 1);
      }
    }
    return { bytes, error };
  }

  async checkUploadingLimit(owner: string | null): Promise<void> {
    if (!owner) return;
    const limit = await this.limit(owner, 'image_count_uploading');
    const usage = await this.store.usage(owner);
    if (usage.uploading + 1 > limit) throw this.overLimit('image_count_uploading', limit, usage.uploading, 1);
  }

  // ---- images ----

  async create(caller: Caller, input: NewImage): Promise<ImageRecord> {
    const project = isSystem(caller) ? null : caller.projectId ?? null;
    const owner = input.owner === undefined ? project : input.owner;
    const now = nowIso();
    const img: ImageRecord = {
      id: input.id ?? uuid(), name: input.name ?? null, status: 'queued', visibility: input.visibility ?? 'shared',
      protected: input.protected ?? false, osHidden: input.os_hidden ?? false, owner,
      checksum: null, osHashAlgo: null, osHashValue: null, size: null, virtualSize: null,
      minDisk: input.min_disk ?? 0, minRam: input.min_ram ?? 0, diskFormat: input.disk_format ?? null,
      containerFormat: input.container_format ?? null, stores: [], stagedSize: null, pendingImport: null,
      createdAt: now, updatedAt: now, tags: [...new Set(input.tags ?? [])], properties: { ...input.properties },
    };
    if (input.id !== undefined && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(input.id)) {
      throw badRequest(`Invalid image id '${input.id}': it must be a UUID.`);
    }
    this.enforce(caller, 'image:add_image', this.target(img));
    if (owner !== project) this.enforce(caller, 'image:set_image_owner', this.target(img));
    this.validate(caller, img, undefined);
    if (owner) {
      const limit = await this.limit(owner, 'image_count_total');
      const usage = await this.store.usage(owner);
      if (usage.count + 1 > limit) throw this.overLimit('image_count_total', limit, usage.count, 1);
    }
    try {
      await this.store.insert(img);
    } catch (e) {
      if (isUniqueViolation(e)) throw conflict(`An image with identifier ${img.id} already exists`);
      throw e;
    }
    return img;
  }

  /** Checks the user-settable attributes of `img` (after create or patch; `before` for a patch). */
  private validate(caller: Caller, img: ImageRecord, before: ImageRecord | undefined): void {
    const { cfg } = this.deps;
    if (img.name !== null && (typeof img.name !== 'string' || img.name.length > 255)) throw badRequest('name must be a string of at most 255 characters.');
    if (!VISIBILITIES.includes(img.visibility)) throw badRequest(`Invalid visibility '${img.visibility}': one of ${VISIBILITIES.join(', ')}.`);
    for (const [k, v] of [['protected', img.protected], ['os_hidden', img.osHidden]] as const) {
      if (typeof v !== 'boolean') throw badRequest(`${k} must be a boolean.`);
    }
    for (const [k, v] of [['min_disk', img.minDisk], ['min_ram', img.minRam]] as const) {
      if (!Number.isInteger(v) || v < 0 || v > 2 ** 31) throw badRequest(`${k} must be a non-negative integer.`);
    }
    if (img.diskFormat !== null && !DISK_FORMATS.includes(img.diskFormat)) {
      throw badRequest(`Invalid disk_format '${img.diskFormat}': one of ${DISK_FORMATS.join(', ')}.`);
    }
    if (img.containerFormat !== null && !CONTAINER_FORMATS.includes(img.containerFormat)) {
      throw badRequest(`Invalid container_format '${img.containerFormat}': one of ${CONTAINER_FORMATS.join(', ')}.`);
    }
    if (img.owner !== null && (typeof img.owner !== 'string' || img.owner.length > 255)) throw badRequest('owner must be a project id.');
    if (!Array.isArray(img.tags) || img.tags.some((t) => typeof t !== 'string' || t.length === 0 || t.length > 255)) {
      throw badRequest('tags must be a list of strings of 1 to 255 characters.');
    }
    if (img.tags.length > cfg.maxTags) throw payloadTooLarge(`Maximum number of tags exceeded (${cfg.maxTags}).`);
    for (const [k, v] of Object.entries(img.properties)) {
      if (typeof v !== 'string') throw badRequest(`Property '${k}' must be a string.`);
      if (k.length === 0 || k.length > 255 || v.length > 65535) throw badRequest(`Property '${k}' is too long or empty.`);
      if (k.startsWith('os_glance') && before?.properties[k] !== v) throw forbidden(`Attribute '${k}' is reserved.`);
    }
    if (Object.keys(img.properties).length > cfg.maxProperties) {
      throw payloadTooLarge(`Maximum number of image properties exceeded (${cfg.maxProperties}).`);
    }
    if (img.visibility !== before?.visibility) {
      if (img.visibility === 'public') this.enforce(caller, 'image:publicize_image', this.target(img));
      if (img.visibility === 'community') this.enforce(caller, 'image:communitize_image', this.target(img));
    }
    if (before && (img.diskFormat !== before.diskFormat || img.containerFormat !== before.containerFormat) && before.status !== 'queued') {
      throw forbidden('disk_format and container_format can only be changed while the image is queued.');
    }
    if (before && img.owner !== before.owner) this.enforce(caller, 'image:set_image_owner', this.target(img));
  }

  async list(caller: Caller, q: Omit<ListQuery, 'viewer'>): Promise<ImageRecord[]> {
    this.enforce(caller, 'image:get_images');
    const viewer = { projectId: isSystem(caller) ? undefined : caller.projectId, admin: this.isAdmin(caller) };
    return this.store.list({ ...q, viewer });
  }

  async update(caller: Caller, id: string, ops: PatchOp[]): Promise<ImageRecord> {
    const before = await this.getVisible(caller, id);
    this.enforce(caller, 'image:modify_image', this.target(before));
    const doc = applyPatch(documentOf(before), ops, (k) => (MUTABLE as readonly string[]).includes(k));
    const after = fromDocument(before, doc);
    this.validate(caller, after, before);
    after.updatedAt = nowIso();
    await this.store.replaceMetadata(after);
    return after;
  }

  async delete(caller: Caller, id: string): Promise<void> {
    const img = await this.getVisible(caller, id);
    this.enforce(caller, 'image:delete_image', this.target(img));
    if (img.protected) throw forbidden(`Image ${id} is protected and cannot be deleted.`);
    // The record goes first (nobody can read a half-deleted image); data after. A crash in between
    // leaves files the start-up sweep removes.
    await this.store.delete(id);
    await this.removeData(img);
  }

  async removeData(img: ImageRecord): Promise<void> {
    for (const s of img.stores) await this.deps.stores.get(s)?.delete(img.id).catch((e) => this.deps.log.warn({ err: e, image: img.id }, 'image data not deleted'));
    await this.deps.staging.delete(img.id).catch(() => undefined);
  }

  async setActive(caller: Caller, id: string, active: boolean): Promise<void> {
    const img = await this.getVisible(caller, id);
    this.enforce(caller, active ? 'image:reactivate' : 'image:deactivate', this.target(img));
    const from = active ? 'deactivated' : 'active';
    const to = active ? 'active' : 'deactivated';
    if (img.status === to) return;
    if (img.status !== from) throw forbidden(`Not allowed to ${active ? 'reactivate' : 'deactivate'} an image in status '${img.status}'.`);
    if (!(await this.store.update(id, { status: to }, { ifStatus: [from], updatedAt: nowIso() }))) {
      throw conflict(`Image ${id} changed status meanwhile; try again.`);
    }
  }

  async addTag(caller: Caller, id: string, tag: string): Promise<void> {
    const img = await this.getVisible(caller, id);
    this.enforce(caller, 'image:modify_image', this.target(img));
    if (tag.length === 0 || tag.length > 255) throw badRequest('A tag must have 1 to 255 characters.');
    if (!img.tags.includes(tag) && img.tags.length + 1 > this.deps.cfg.maxTags) throw payloadTooLarge(`Maximum number of tags exceeded (${this.deps.cfg.maxTags}).`);
    await this.store.addTag(id, tag);
    await this.store.update(id, {}, { updatedAt: nowIso() });
  }

  async deleteTag(caller: Caller, id: string, tag: string): Promise<void> {
    const img = await this.getVisible(caller, id);
    this.enforce(caller, 'image:modify_image', this.target(img));
    if (!(await this.store.deleteTag(id, tag))) throw notFound(`Tag ${tag} not found on image ${id}.`);
    await this.store.update(id, {}, { updatedAt: nowIso() });
  }

  // ---- members ----

  async listMembers(caller: Caller, id: string): Promise<MemberRecord[]> {
    const img = await this.getVisible(caller, id);
    this.enforce(caller, 'image:get_members', this.target(img));
    if (img.visibility !== 'shared') throw forbidden('Only shared images have members.');
    const all = await this.store.listMembers(id);
    // A member sees its own membership only; the owner and admins see all.
    if (this.isAdmin(caller) || (caller as AuthContext).projectId === img.owner) return all;
    return all.filter((m) => m.memberId === (caller as AuthContext).projectId);
  }

  async getMember(caller: Caller, id: string, memberId: string): Promise<MemberRecord> {
    const members = await this.listMembers(caller, id);
    const m = members.find((x) => x.memberId === memberId);
    if (!m) throw notFound(`Member ${memberId} not found on image ${id}.`);
    return m;
  }

  async addMember(caller: Caller, id: string, memberId: string): Promise<MemberRecord> {
    const img = await this.getVisible(caller, id);
    this.enforce(caller, 'image:add_member', this.target(img, { member_id: memberId }));
    if (img.visibility !== 'shared') throw forbidden(`Only shared images have members; image ${id} is ${img.visibility}.`);
    if (typeof memberId !== 'string' || !memberId || memberId.length > 255) throw badRequest('member must be a project id.');
    if (memberId === img.owner) throw badRequest('The owner of an image cannot be one of its members.');
    const existing = await this.store.listMembers(id);
    if (existing.some((m) => m.memberId === memberId)) throw conflict(`Member ${memberId} already exists on image ${id}.`);
    if (existing.length + 1 > this.deps.cfg.maxMembers) throw payloadTooLarge(`Maximum number of image members exceeded (${this.deps.cfg.maxMembers}).`);
    const now = nowIso();
    const m: MemberRecord = { imageId: id, memberId, status: 'pending', createdAt: now, updatedAt: now };
    try {
      await this.store.addMember(m);
    } catch (e) {
      if (isUniqueViolation(e)) throw conflict(`Member ${memberId} already exists on image ${id}.`);
      throw e;
    }
    return m;
  }

  async updateMember(caller: Caller, id: string, memberId: string, status: string): Promise<MemberRecord> {
    const img = await this.getVisible(caller, id);
    this.enforce(caller, 'image:modify_member', this.target(img, { member_id: memberId }));
    if (!['pending', 'accepted', 'rejected'].includes(status)) throw badRequest(`Invalid member status '${status}': pending, accepted or rejected.`);
    const m = await this.store.getMember(id, memberId);
    if (!m) throw notFound(`Member ${memberId} not found on image ${id}.`);
    const now = nowIso();
    await this.store.updateMember(id, memberId, status as MemberStatus, now);
    return { ...m, status: status as MemberStatus, updatedAt: now };
  }

  async deleteMember(caller: Caller, id: string, memberId: string): Promise<void> {
    const img = await this.getVisible(caller, id);
    this.enforce(caller, 'image:delete_member', this.target(img, { member_id: memberId }));
    if (!(await this.store.getMember(id, memberId))) throw notFound(`Member ${memberId} not found on image ${id}.`);
    await this.store.deleteMember(id, memberId);
  }
}

/** The flat document JSON-patch works on. */
function documentOf(img: ImageRecord): Record<string, unknown> {
  return {
    ...img.properties, name: img.name, visibility: img.visibility, protected: img.protected, os_hidden: img.osHidden,
    min_disk: img.minDisk, min_ram: img.minRam, disk_format: img.diskFormat, container_format: img.containerFormat,
    tags: [...img.tags], owner: img.owner,
  };
}

function fromDocument(before: ImageRecord, doc: Record<string, unknown>): ImageRecord {
  const properties: Record<string, string> = {};
  for (const [k, v] of Object.entries(doc)) {
    if (!(MUTABLE as readonly string[]).includes(k)) properties[k] = v as string;
  }
  return {
    ...before, name: doc.name as string | null, visibility: doc.visibility as Visibility, protected: doc.protected as boolean,
    osHidden: doc.os_hidden as boolean, minDisk: doc.min_disk as number, minRam: doc.min_ram as number,
    diskFormat: doc.disk_format as string | null, containerFormat: doc.container_format as string | null,
    // Not an array (a string would spread into letters): left as is for validate() to refuse.
    tags: Array.isArray(doc.tags) ? [...new Set(doc.tags as string[])] : doc.tags as string[], owner: doc.owner as string | null, properties,
  };
}

