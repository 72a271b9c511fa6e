// JSON-patch (application/openstack-images-v2.1-json-patch) over an image's flat document:
// base attributes and custom properties side by side, as Glance presents them.
import { ApiError, badRequest, conflict, forbidden } from '../core/errors.js';

export interface PatchOp {
  op: 'add' | 'replace' | 'remove';
  path: string;
  value?: unknown;
}

/** Attributes a client may change (custom properties aside). */
export const MUTABLE = ['name', 'visibility', 'protected', 'os_hidden', 'min_disk', 'min_ram', 'disk_format',
  'container_format', 'tags', 'owner'] as const;
/** Attributes the server owns. */
export const READ_ONLY = ['id', 'status', 'checksum', 'os_hash_algo', 'os_hash_value', 'size', 'virtual_size',
  'created_at', 'updated_at', 'self', 'file', 'schema', 'direct_url', 'locations', 'stores'];

const OPS = new Set(['add', 'replace', 'remove']);

/** Validates the shape of a patch document; throws 400 with what is wrong. */
export function parsePatch(body: unknown): PatchOp[] {
  if (!Array.isArray(body)) throw badRequest('A JSON-patch document must be a list of operations.');
  return body.map((raw, i) => {
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw badRequest(`Operation ${i} is not an object.`);
    const o = raw as Record<string, unknown>;
    if (typeof o.op !== 'string' || !OPS.has(o.op)) {
      throw badRequest(`Operation ${i}: 'op' must be one of add, replace, remove.`);
    }
    if (typeof o.path !== 'string' || !o.path.startsWith('/')) throw badRequest(`Operation ${i}: 'path' must be a JSON pointer like '/name'.`);
    if (o.op !== 'remove' && !('value' in o)) throw badRequest(`Operation ${i}: '${o.op}' needs a 'value'.`);
    const extra = Object.keys(o).filter((k) => !['op', 'path', 'value'].includes(k));
    if (extra.length) throw badRequest(`Operation ${i}: unexpected member '${extra[0]}'.`);
    return { op: o.op as PatchOp['op'], path: o.path, value: o.value };
  });
}

function decodePointer(path: string): string[] {
  return path.slice(1).split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** Applies `ops` to a copy of `doc`; `isBase(key)` says which keys are base attributes. */
export function applyPatch(doc: Record<string, unknown>, ops: PatchOp[], isBase: (k: string) => boolean): Record<string, unknown> {
  const out: Record<string, unknown> = { ...doc, tags: [...((doc.tags as string[]) ?? [])] };
  for (const op of ops) {
    const parts = decodePointer(op.path);
    const key = parts[0]!;
    if (!key) throw badRequest(`Invalid path '${op.path}'.`);
    if (READ_ONLY.includes(key)) throw forbidden(`Attribute '${key}' is read-only.`);
    if (key.startsWith('os_glance')) throw forbidden(`Attribute '${key}' is reserved.`);
    if (parts.length > 2 || (parts.length === 2 && key !== 'tags')) throw badRequest(`Invalid path '${op.path}'.`);
    if (parts.length === 2) {
      applyTagOp(out.tags as string[], op, parts[1]!);
      continue;
    }
    switch (op.op) {
      case 'add':
        out[key] = op.value;
        break;
      case 'replace':
        if (!isBase(key) && !(key in out)) throw conflict(`Property ${key} does not exist.`);
        out[key] = op.value;
        break;
      case 'remove':
        if (isBase(key)) throw forbidden(`Attribute '${key}' cannot be removed.`);
        if (!(key in out)) throw conflict(`Property ${key} does not exist.`);
        delete out[key];
        break;
    }
  }
  return out;
}

function applyTagOp(tags: string[], op: PatchOp, index: string): void {
  const i = index === '-' ? tags.length : /^\d+$/.test(index) ? Number(index) : NaN;
  if (Number.isNaN(i)) throw badRequest(`Invalid tag index '${index}'.`);
  if (op.op === 'add') {
    if (i > tags.length) throw badRequest(`Tag index ${i} is out of range.`);
    tags.splice(i, 0, op.value as string);
  } else {
    if (i >= tags.length) throw new ApiError(409, `Tag index ${i} does not exist.`);
    if (op.op === 'remove') tags.splice(i, 1);
    else tags[i] = op.value as string;
  }
}
