// How images and members look on the wire (Glance v2), and the JSON schemas Glance publishes.
import { isoSeconds } from '../../core/ids.js';
import { CONTAINER_FORMATS, DISK_FORMATS } from '../inspect.js';
import type { ImageRecord, MemberRecord } from '../store.js';

export function imageView(img: ImageRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(img.properties)) out[k] = v;
  Object.assign(out, {
    id: img.id, name: img.name, status: img.status, visibility: img.visibility, protected: img.protected,
    os_hidden: img.osHidden, owner: img.owner, checksum: img.checksum, os_hash_algo: img.osHashAlgo,
    os_hash_value: img.osHashValue, size: img.size, virtual_size: img.virtualSize, min_disk: img.minDisk,
    min_ram: img.minRam, disk_format: img.diskFormat, container_format: img.containerFormat, tags: img.tags,
    created_at: isoSeconds(img.createdAt), updated_at: isoSeconds(img.updatedAt),
    self: `/v2/images/${img.id}`, file: `/v2/images/${img.id}/file`, schema: '/v2/schemas/image',
  });
  if (img.stores.length) out.stores = img.stores.join(',');
  return out;
}

export function memberView(m: MemberRecord): Record<string, unknown> {
  return {
    image_id: m.imageId, member_id: m.memberId, status: m.status,
    created_at: isoSeconds(m.createdAt), updated_at: isoSeconds(m.updatedAt), schema: '/v2/schemas/member',
  };
}

const nullable = (type: string) => ({ type: [type, 'null'] });

export const IMAGE_SCHEMA = {
  name: 'image',
  additionalProperties: { type: 'string' },
  properties: {
    id: { type: 'string', pattern: '^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$', description: 'An identifier for the image' },
    name: { ...nullable('string'), maxLength: 255, description: 'Descriptive name for the image' },
    status: { type: 'string', readOnly: true, enum: ['queued', 'saving', 'active', 'killed', 'deleted', 'uploading', 'importing', 'pending_delete', 'deactivated'] },
    visibility: { type: 'string', enum: ['community', 'public', 'private', 'shared'] },
    protected: { type: 'boolean' },
    os_hidden: { type: 'boolean' },
    owner: { ...nullable('string'), maxLength: 255 },
    checksum: { ...nullable('string'), readOnly: true, maxLength: 32 },
    os_hash_algo: { ...nullable('string'), readOnly: true, maxLength: 64 },
    os_hash_value: { ...nullable('string'), readOnly: true, maxLength: 128 },
    size: { ...nullable('integer'), readOnly: true },
    virtual_size: { ...nullable('integer'), readOnly: true },
    min_ram: { type: 'integer' },
    min_disk: { type: 'integer' },
    disk_format: { ...nullable('string'), enum: [null, ...DISK_FORMATS] },
    container_format: { ...nullable('string'), enum: [null, ...CONTAINER_FORMATS] },
    tags: { type: 'array', items: { type: 'string', maxLength: 255 } },
    created_at: { type: 'string', readOnly: true },
    updated_at: { type: 'string', readOnly: true },
    self: { type: 'string', readOnly: true },
    file: { type: 'string', readOnly: true },
    schema: { type: 'string', readOnly: true },
    stores: { type: 'string', readOnly: true },
  },
  links: [
    { rel: 'self', href: '{self}' }, { rel: 'enclosure', href: '{file}' }, { rel: 'describedby', href: '{schema}' },
  ],
};

export const IMAGES_SCHEMA = {
  name: 'images',
  properties: {
    images: { type: 'array', items: IMAGE_SCHEMA },
    schema: { type: 'string' }, first: { type: 'string' }, next: { type: 'string' },
  },
  links: [{ rel: 'first', href: '{first}' }, { rel: 'next', href: '{next}' }, { rel: 'describedby', href: '{schema}' }],
};

export const MEMBER_SCHEMA = {
  name: 'member',
  properties: {
    image_id: { type: 'string' }, member_id: { type: 'string' },
    status: { type: 'string', enum: ['pending', 'accepted', 'rejected'] },
    created_at: { type: 'string' }, updated_at: { type: 'string' }, schema: { type: 'string', readOnly: true },
  },
};

export const MEMBERS_SCHEMA = {
  name: 'members',
  properties: { members: { type: 'array', items: MEMBER_SCHEMA }, schema: { type: 'string' } },
  links: [{ rel: 'describedby', href: '{schema}' }],
};
