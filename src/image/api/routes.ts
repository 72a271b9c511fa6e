// Glance v2 routes under /image. Every /v2 route authenticates, and the service enforces policy.
import type { FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import { Type } from '@sinclair/typebox';
import { authenticate, authOf } from '../../core/auth.js';
import { ApiError, badRequest, forbidden, glanceError, unsupportedMediaType } from '../../core/errors.js';
import type { App } from '../../core/http.js';
import { useErrorStyle } from '../../core/http.js';
import { md5HeaderToHex } from '../data.js';
import { parsePatch, READ_ONLY } from '../patch.js';
import type { ImageService, NewImage } from '../service.js';
import type { ImageTransfer } from '../transfer.js';
import { IMAGE_SCHEMA, IMAGES_SCHEMA, imageView, MEMBER_SCHEMA, MEMBERS_SCHEMA, memberView } from './view.js';
import { nextLink, parseListQuery, type RawQuery } from './query.js';
import type { TokenValidator } from '../../core/auth.js';

const PATCH_TYPE = 'application/openstack-images-v2.1-json-patch';
const IMPORT_METHODS = ['glance-direct', 'copy-image'];
const Id = Type.Object({ id: Type.String() });
const IdMember = Type.Object({ id: Type.String(), member: Type.String() });
const IdTag = Type.Object({ id: Type.String(), tag: Type.String() });

const BASE_CREATE = new Set(['id', 'name', 'visibility', 'protected', 'os_hidden', 'owner', 'min_disk', 'min_ram',
  'disk_format', 'container_format', 'tags']);

export interface RouteDeps {
  svc: ImageService;
  transfer: ImageTransfer;
  validator: TokenValidator;
}

export async function imageRoutes(app: App, deps: RouteDeps): Promise<void> {
  useErrorStyle(app, glanceError);
  const versions = (req: FastifyRequest) => {
    const base = `${req.protocol}://${req.headers.host}/image`;
    const ids = ['v2.16', 'v2.15', 'v2.9', 'v2.7', 'v2.6', 'v2.5', 'v2.4', 'v2.3', 'v2.2', 'v2.1', 'v2.0'];
    return {
      versions: ids.map((id, i) => ({ id, status: i === 0 ? 'CURRENT' : 'SUPPORTED', links: [{ rel: 'self', href: `${base}/v2/` }] })),
    };
  };
  app.get('/', async (req, reply) => reply.code(300).send(versions(req)));
  app.get('/versions', async (req) => versions(req));
  await app.register(async (v2) => { await v2Routes(v2, deps); }, { prefix: '/v2' });
}

async function v2Routes(app: App, { svc, transfer, validator }: RouteDeps): Promise<void> {
  app.addHook('preHandler', authenticate(validator));
  // Image data is streamed straight from the socket to the store: never parsed, never buffered.
  app.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));
  app.addContentTypeParser(PATCH_TYPE, { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, JSON.parse(String(body)));
    } catch (e) {
      done(badRequest(`Malformed JSON-patch document: ${(e as Error).message}`), undefined);
    }
  });

  app.get('/images', async (req) => {
    const auth = authOf(req);
    const raw = req.query as RawQuery;
    const q = parseListQuery(raw);
    let marker;
    if (q.markerId) {
      marker = await svc.getVisible(auth, q.markerId).catch(() => {
        throw badRequest(`Invalid marker: image ${q.markerId} could not be found.`);
      });
    }
    const images = await svc.list(auth, { ...q, marker });
    const body: Record<string, unknown> = { images: images.map(imageView), first: '/v2/images', schema: '/v2/schemas/images' };
    if (images.length === q.limit && images.length > 0) body.next = nextLink(raw, images.at(-1)!.id);
    return body;
  });

  app.post('/images', { schema: { body: Type.Record(Type.String(), Type.Unknown()) } }, async (req, reply) => {
    const body = req.body as Record<string, unknown>;
    const input: NewImage = { properties: {} };
    for (const [k, v] of Object.entries(body)) {
      if (READ_ONLY.includes(k)) throw forbidden(`Attribute '${k}' is read-only.`);
      if (k.startsWith('os_glance')) throw forbidden(`Attribute '${k}' is reserved.`);
      if (BASE_CREATE.has(k)) (input as Record<string, unknown>)[k] = v;
      else if (v !== null) input.properties![k] = v as string;
    }
    if (input.tags !== undefined && !Array.isArray(input.tags)) throw badRequest('tags must be a list of strings.');
    const img = await svc.create(authOf(req), input);
    reply.code(201).header('Location', `/v2/images/${img.id}`).headers(importHeaders(svc));
    return imageView(img);
  });

  app.get('/images/:id', { schema: { params: Id } }, async (req) => imageView(await svc.getImage(authOf(req), req.params.id)));

  app.patch('/images/:id', { schema: { params: Id } }, async (req) => {
    if (req.headers['content-type']?.split(';')[0]?.trim() !== PATCH_TYPE) {
      throw unsupportedMediaType(`PATCH needs Content-Type ${PATCH_TYPE}.`);
    }
    return imageView(await svc.update(authOf(req), req.params.id, parsePatch(req.body)));
  });

  app.delete('/images/:id', { schema: { params: Id } }, async (req, reply) => {
    await svc.delete(authOf(req), req.params.id);
    reply.code(204).send();
  });

  app.post('/images/:id/actions/deactivate', { schema: { params: Id } }, async (req, reply) => {
    await svc.setActive(authOf(req), req.params.id, false);
    reply.code(204).send();
  });
  app.post('/images/:id/actions/reactivate', { schema: { params: Id } }, async (req, reply) => {
    await svc.setActive(authOf(req), req.params.id, true);
    reply.code(204).send();
  });

  app.put('/images/:id/tags/:tag', { schema: { params: IdTag } }, async (req, reply) => {
    await svc.addTag(authOf(req), req.params.id, req.params.tag);
    reply.code(204).send();
  });
  app.delete('/images/:id/tags/:tag', { schema: { params: IdTag } }, async (req, reply) => {
    await svc.deleteTag(authOf(req), req.params.id, req.params.tag);
    reply.code(204).send();
  });

  // ---- data ----

  app.put('/images/:id/file', { schema: { params: Id } }, async (req, reply) => {
    const img = await transfer.upload(authOf(req), req.params.id, dataOf(req), hintsOf(req));
    reply.code(204).header('Location', `/v2/images/${img.id}`).send();
  });

  app.get('/images/:id/file', { schema: { params: Id } }, async (req, reply) => {
    const range = parseRange(req.headers.range ?? (req.headers['content-range'] as string | undefined));
    const data = await transfer.open(authOf(req), req.params.id, range);
    if (!data) return reply.code(204).send();
    reply.header('Content-Type', 'application/octet-stream').header('Content-Length', String(data.length));
    if (data.range) {
      reply.code(206).header('Content-Range', `bytes ${data.range.start}-${data.range.end}/${data.size}`);
    } else if (data.checksum) {
      reply.header('Content-MD5', data.checksum);
    }
    return reply.send(data.stream);
  });

  app.put('/images/:id/stage', { schema: { params: Id } }, async (req, reply) => {
    await transfer.stage(authOf(req), req.params.id, dataOf(req), hintsOf(req));
    reply.code(204).send();
  });

  app.post('/images/:id/import', {
    schema: {
      params: Id,
      body: Type.Object({
        method: Type.Object({ name: Type.String(), uri: Type.Optional(Type.String()) }),
        stores: Type.Optional(Type.Array(Type.String())),
        all_stores: Type.Optional(Type.Boolean()),
        all_stores_must_succeed: Type.Optional(Type.Boolean()),
      }),
    },
  }, async (req, reply) => {
    const b = req.body;
    const storeHeader = req.headers['x-image-meta-store'];
    const stores = b.stores ?? (typeof storeHeader === 'string' ? [storeHeader] : undefined);
    if (b.all_stores && b.stores) throw badRequest("'all_stores' and 'stores' are mutually exclusive.");
    await transfer.import(authOf(req), req.params.id, {
      method: b.method.name, stores, allStores: b.all_stores, allStoresMustSucceed: b.all_stores_must_succeed,
    });
    reply.code(202).send();
  });

  // ---- members ----

  app.get('/images/:id/members', { schema: { params: Id } }, async (req) => ({
    members: (await svc.listMembers(authOf(req), req.params.id)).map(memberView), schema: '/v2/schemas/members',
  }));
  app.post('/images/:id/members', {
    schema: { params: Id, body: Type.Object({ member: Type.String({ minLength: 1, maxLength: 255 }) }, { additionalProperties: false }) },
  }, async (req) => memberView(await svc.addMember(authOf(req), req.params.id, req.body.member)));
  app.get('/images/:id/members/:member', { schema: { params: IdMember } }, async (req) =>
    memberView(await svc.getMember(authOf(req), req.params.id, req.params.member)));
  app.put('/images/:id/members/:member', {
    // openstacksdk sends the member's other attributes along; only status can change.
    schema: { params: IdMember, body: Type.Object({ status: Type.String() }) },
  }, async (req) => memberView(await svc.updateMember(authOf(req), req.params.id, req.params.member, req.body.status)));
  app.delete('/images/:id/members/:member', { schema: { params: IdMember } }, async (req, reply) => {
    await svc.deleteMember(authOf(req), req.params.id, req.params.member);
    reply.code(204).send();
  });

  // ---- schemas and discovery ----

  const schemas = { image: IMAGE_SCHEMA, images: IMAGES_SCHEMA, member: MEMBER_SCHEMA, members: MEMBERS_SCHEMA };
  for (const [name, doc] of Object.entries(schemas)) {
    app.get(`/schemas/${name}`, async (req) => {
      svc.enforce(authOf(req), 'image:get_info');
      return doc;
    });
  }

  app.get('/info/import', async (req) => {
    svc.enforce(authOf(req), 'image:get_info');
    return { 'import-methods': { description: 'Import methods available.', type: 'array', value: IMPORT_METHODS } };
  });
  app.get('/info/stores', async (req) => {
    svc.enforce(authOf(req), 'image:get_info');
    const { stores, cfg } = svc.deps;
    return { stores: [...stores.values()].map((s) => ({ id: s.id, description: s.description, ...(s.id === cfg.defaultStore ? { default: true } : {}) })) };
  });
  app.get('/info/usage', async (req) => {
    const auth = authOf(req);
    svc.enforce(auth, 'image:get_info');
    if (!auth.projectId) throw badRequest('Usage is per project: use a project-scoped token.');
    const u = await svc.store.usage(auth.projectId);
    const MiB = 1024 * 1024;
    const used = { image_size_total: Math.ceil(u.size / MiB), image_count_total: u.count, image_stage_total: Math.ceil(u.staged / MiB), image_count_uploading: u.uploading };
    const usage: Record<string, { limit: number; usage: number }> = {};
    for (const [k, v] of Object.entries(used)) {
      const limit = await svc.limit(auth.projectId, k as keyof typeof used);
      usage[k] = { limit: Number.isFinite(limit) ? limit : -1, usage: v };
    }
    return { usage };
  });
}

function importHeaders(svc: ImageService): Record<string, string> {
  return {
    'OpenStack-image-import-methods': IMPORT_METHODS.join(','),
    'OpenStack-image-store-ids': [...svc.deps.stores.keys()].join(','),
  };
}

function dataOf(req: FastifyRequest): Readable {
  const ct = req.headers['content-type']?.split(';')[0]?.trim();
  if (ct !== 'application/octet-stream' || !req.body) throw unsupportedMediaType('Image data must be sent as application/octet-stream.');
  return req.body as Readable;
}

function hintsOf(req: FastifyRequest): { size?: number; md5?: string } {
  const len = req.headers['content-length'];
  return { size: len !== undefined ? Number(len) : undefined, md5: md5HeaderToHex(req.headers['content-md5'] as string | undefined) };
}

/** "bytes=a-b", "bytes=a-", "bytes=-n" (Range) or "bytes a-b/*" (Content-Range, as Glance accepts). */
function parseRange(h: string | undefined): { start?: number; end?: number } | undefined {
  if (!h) return undefined;
  const m = /^bytes[= ](\d*)-(\d*)(?:\/(?:\d+|\*))?$/.exec(h.trim());
  if (!m || (m[1] === '' && m[2] === '')) {
    throw new ApiError(416, `Unsupported or malformed range '${h}': one range of bytes, e.g. bytes=0-1023.`);
  }
  if (m[1] === '') return { end: Number(m[2]) }; // suffix: the last N bytes
  return { start: Number(m[1]), end: m[2] === '' ? undefined : Number(m[2]) };
}

