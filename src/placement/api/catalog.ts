// /resource_classes and /traits: the vocabularies (standard names plus CUSTOM_* ones).
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import type { App } from '../../core/http.js';
import { pBadRequest, pNotFound } from '../codes.js';
import { mv, since } from '../microversion.js';
import type { Deps } from './deps.js';
import { allowOnly, one, validate, type Query } from './util.js';

const RC_BODY = Type.Object({ name: Type.String({ pattern: '^CUSTOM_[A-Z0-9_]+$', maxLength: 255 }) }, { additionalProperties: false });

const rcView = (name: string) => ({ name, links: [{ rel: 'self', href: `/placement/resource_classes/${name}` }] });

export async function catalogRoutes(app: App, d: Deps): Promise<void> {
  const nameOf = (req: FastifyRequest) => (req.params as { name: string }).name;

  app.get('/resource_classes', async (req) => {
    since(req, 2);
    d.enforce(req, 'placement:resource_classes:list');
    return { resource_classes: (await d.svc.resourceClasses()).map(rcView) };
  });

  app.post('/resource_classes', async (req, reply) => {
    since(req, 2);
    d.enforce(req, 'placement:resource_classes:create');
    const b = validate<{ name: string }>(RC_BODY, req.body);
    await d.svc.createResourceClass(b.name, false);
    reply.code(201).header('Location', `${d.baseUrl()}/placement/resource_classes/${b.name}`).send();
  });

  app.get('/resource_classes/:name', async (req) => {
    since(req, 2);
    d.enforce(req, 'placement:resource_classes:show');
    if (!(await d.svc.resourceClassExists(nameOf(req)))) throw pNotFound(`No such resource class ${nameOf(req)}.`);
    return rcView(nameOf(req));
  });

  app.put('/resource_classes/:name', async (req, reply) => {
    since(req, 2);
    d.enforce(req, 'placement:resource_classes:update');
    if (mv(req) >= 7) {
      // From 1.7: idempotent create, no body.
      const created = await d.svc.createResourceClass(nameOf(req), true);
      reply.header('Location', `${d.baseUrl()}/placement/resource_classes/${nameOf(req)}`).code(created ? 201 : 204).send();
      return;
    }
    const b = validate<{ name: string }>(RC_BODY, req.body);
    await d.svc.renameResourceClass(nameOf(req), b.name);
    return rcView(b.name);
  });

  app.delete('/resource_classes/:name', async (req, reply) => {
    since(req, 2);
    d.enforce(req, 'placement:resource_classes:delete');
    await d.svc.deleteResourceClass(nameOf(req));
    reply.code(204).send();
  });

  app.get('/traits', async (req) => {
    since(req, 6);
    d.enforce(req, 'placement:traits:list');
    const q = req.query as Query;
    allowOnly(q, ['name', 'associated']);
    const name = one(q, 'name');
    const associated = one(q, 'associated');
    const filter: { startsWith?: string; in?: string[]; associated?: boolean } = {};
    if (name !== undefined) {
      if (name.startsWith('startswith:')) filter.startsWith = name.slice('startswith:'.length);
      else if (name.startsWith('in:')) filter.in = name.slice(3).split(',');
      else throw pBadRequest(`Badly formed name parameter. Expected 'startswith:' or 'in:' prefix. Got: ${name}`);
    }
    if (associated !== undefined) {
      if (!['true', 'false'].includes(associated.toLowerCase())) {
        throw pBadRequest(`The query parameter "associated" only accepts "true" or "false"`);
      }
      filter.associated = associated.toLowerCase() === 'true';
    }
    return { traits: await d.svc.traits(filter) };
  });

  app.get('/traits/:name', async (req, reply) => {
    since(req, 6);
    d.enforce(req, 'placement:traits:show');
    if (!(await d.svc.traitExists(nameOf(req)))) throw pNotFound(`No such trait(s): ${nameOf(req)}`);
    reply.code(204).send();
  });

  app.put('/traits/:name', async (req, reply) => {
    since(req, 6);
    d.enforce(req, 'placement:traits:update');
    const created = await d.svc.ensureTrait(nameOf(req));
    reply.header('Location', `${d.baseUrl()}/placement/traits/${nameOf(req)}`).code(created ? 201 : 204).send();
  });

  app.delete('/traits/:name', async (req, reply) => {
    since(req, 6);
    d.enforce(req, 'placement:traits:delete');
    await d.svc.deleteTrait(nameOf(req));
    reply.code(204).send();
  });
}
