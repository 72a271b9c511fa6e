// Application credentials, EC2 credentials (/v3/users/{id}/credentials/OS-EC2) and /v3/credentials.
import { createHash } from 'node:crypto';
import type { App } from '../../core/http.js';
import { authOf } from '../../core/auth.js';
import { badRequest, forbidden, notFound } from '../../core/errors.js';
import { hexId, nowIso, secret } from '../../core/ids.js';
import { hashPassword } from '../passwords.js';
import { effectiveRoles } from '../roles.js';
import { bool, fromJson, uniquely, type AppCredRow, type CredentialRow } from '../store.js';
import { ksTime } from '../service.js';
import { allow, listBody, q, v3Url, type Deps } from './common.js';
import { mustProject } from './projects.js';
import { AppCredCreate, CredentialCreate, CredentialUpdate, Ec2Create } from './schemas.js';
import { mustUser } from './users.js';

/** EC2 credentials are stored with id sha256(access), as Keystone does. */
export const ec2Id = (access: string) => createHash('sha256').update(access).digest('hex');

function parseExpiry(v: string | null | undefined): string | null {
  if (!v) return null;
  const ms = Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(v) ? v : `${v}Z`);
  if (Number.isNaN(ms)) throw badRequest(`Invalid expires_at '${v}': expecting an ISO 8601 time.`);
  if (ms <= Date.now()) throw badRequest('expires_at must be in the future.');
  return new Date(ms).toISOString();
}

export async function credentialRoutes(app: App, d: Deps): Promise<void> {
  const db = d.core.db;
  const blobs = d.core.blobs;
  const renderAppCred = (r: AppCredRow, plainSecret?: string) => ({
    id: r.id, name: r.name, description: r.description || null, user_id: r.user_id, project_id: r.project_id,
    expires_at: r.expires_at ? ksTime(r.expires_at) : null, unrestricted: bool(r.unrestricted),
    roles: fromJson<unknown[]>(r.roles, []), access_rules: [],
    links: { self: v3Url(d, `/users/${r.user_id}/application_credentials/${r.id}`) },
    ...(plainSecret ? { secret: plainSecret } : {}),
  });

  type U = { id: string };
  type UA = { id: string; cred: string };

  app.post('/users/:id/application_credentials', { schema: { body: AppCredCreate } }, async (req, reply) => {
    const userId = (req.params as U).id;
    const auth = allow(d, req, 'identity:create_application_credential', { user_id: userId });
    if (!auth.projectId) throw badRequest('Application credentials are created with a project-scoped token.');
    if (auth.applicationCredentialId) {
      const parent = await db.selectFrom('identity_app_creds').select('unrestricted').where('id', '=', auth.applicationCredentialId).executeTakeFirst();
      if (!parent || !bool(parent.unrestricted)) throw forbidden('A restricted application credential cannot create application credentials.');
    }
    const b = req.body.application_credential;
    const have = await effectiveRoles(db, userId, { kind: 'project', id: auth.projectId });
    let roles = have.filter((r) => auth.roleIds.includes(r.id));
    if (b.roles?.length) {
      roles = b.roles.map((ref) => {
        const r = have.find((h) => (ref.id && h.id === ref.id) || (!ref.id && ref.name && h.name === ref.name));
        if (!r) throw badRequest(`Role ${ref.id ?? ref.name} is not assigned to the user on project ${auth.projectId}.`);
        return r;
      });
    }
    const plain = b.secret ?? secret(48);
    const row: AppCredRow = {
      id: hexId(), name: b.name, user_id: userId, project_id: auth.projectId, secret_hash: await hashPassword(plain),
      description: b.description ?? '', expires_at: parseExpiry(b.expires_at), unrestricted: b.unrestricted ? 1 : 0,
      roles: JSON.stringify(roles.map((r) => ({ id: r.id, name: r.name, domain_id: r.domain_id || null }))), created_at: nowIso(),
    };
    await uniquely(`application credential '${b.name}'`, () => db.insertInto('identity_app_creds').values(row).execute());
    reply.code(201);
    return { application_credential: renderAppCred(row, plain) };
  });

  app.get<{ Params: U }>('/users/:id/application_credentials', async (req) => {
    allow(d, req, 'identity:list_application_credentials', { user_id: req.params.id });
    let qb = db.selectFrom('identity_app_creds').selectAll().where('user_id', '=', req.params.id).orderBy('name');
    if (q(req).name !== undefined) qb = qb.where('name', '=', q(req).name!);
    return listBody(d, req, 'application_credentials', (await qb.execute()).map((r) => renderAppCred(r)));
  });

  const appCred = async (p: UA) => {
    const r = await db.selectFrom('identity_app_creds').selectAll().where('id', '=', p.cred).where('user_id', '=', p.id).executeTakeFirst();
    if (!r) throw notFound(`Could not find application credential: ${p.cred}.`);
    return r;
  };
  app.get<{ Params: UA }>('/users/:id/application_credentials/:cred', async (req) => {
    allow(d, req, 'identity:get_application_credential', { user_id: req.params.id });
    return { application_credential: renderAppCred(await appCred(req.params)) };
  });
  app.delete<{ Params: UA }>('/users/:id/application_credentials/:cred', async (req, reply) => {
    allow(d, req, 'identity:delete_application_credential', { user_id: req.params.id });
    const r = await appCred(req.params);
    await db.deleteFrom('identity_app_creds').where('id', '=', r.id).execute();
    await d.core.revoke({ app_cred_id: r.id });
    reply.code(204);
  });

  // ---------- EC2 ----------
  const renderEc2 = (r: CredentialRow) => {
    const blob = fromJson<{ access: string; secret: string; trust_id?: string | null }>(blobs.open(r.blob), { access: '', secret: '' });
    return {
      user_id: r.user_id, tenant_id: r.project_id, access: blob.access, secret: blob.secret, trust_id: blob.trust_id ?? null,
      links: { self: v3Url(d, `/users/${r.user_id}/credentials/OS-EC2/${blob.access}`) },
    };
  };
  app.post('/users/:id/credentials/OS-EC2', { schema: { body: Ec2Create } }, async (req, reply) => {
    const userId = (req.params as U).id;
    allow(d, req, 'identity:ec2_create_credential', { user_id: userId });
    await mustUser(d, userId);
    const project = await mustProject(d, req.body.tenant_id).catch(() => { throw badRequest(`Could not find project: ${req.body.tenant_id}.`); });
    const auth = authOf(req);
    // Non-admins may only make credentials for projects they have a role on.
    if (!d.ctx.policy.check('admin', auth) && (await effectiveRoles(db, userId, { kind: 'project', id: project.id })).length === 0) {
      throw forbidden(`User ${userId} has no role on project ${project.id}.`);
    }
    const access = hexId();
    const row: CredentialRow = {
      id: ec2Id(access), user_id: userId, project_id: project.id, type: 'ec2',
      blob: blobs.seal(JSON.stringify({ access, secret: hexId(), trust_id: null })), extra: '{}', created_at: nowIso(),
    };
    await db.insertInto('identity_credentials').values(row).execute();
    reply.code(201);
    return { credential: renderEc2(row) };
  });
  app.get<{ Params: U }>('/users/:id/credentials/OS-EC2', async (req) => {
    allow(d, req, 'identity:ec2_list_credentials', { user_id: req.params.id });
    const rows = await db.selectFrom('identity_credentials').selectAll().where('user_id', '=', req.params.id).where('type', '=', 'ec2').execute();
    return listBody(d, req, 'credentials', rows.map(renderEc2));
  });
  const ec2 = async (p: UA) => {
    const r = await db.selectFrom('identity_credentials').selectAll().where('id', '=', ec2Id(p.cred)).where('type', '=', 'ec2').executeTakeFirst();
    if (!r || r.user_id !== p.id) throw notFound(`Could not find credential: ${p.cred}.`);
    return r;
  };
  app.get<{ Params: UA }>('/users/:id/credentials/OS-EC2/:cred', async (req) => {
    const r = await ec2(req.params);
    allow(d, req, 'identity:ec2_get_credential', { user_id: req.params.id, credential: { user_id: r.user_id } });
    return { credential: renderEc2(r) };
  });
  app.delete<{ Params: UA }>('/users/:id/credentials/OS-EC2/:cred', async (req, reply) => {
    const r = await ec2(req.params);
    allow(d, req, 'identity:ec2_delete_credential', { user_id: req.params.id, credential: { user_id: r.user_id } });
    await db.deleteFrom('identity_credentials').where('id', '=', r.id).execute();
    reply.code(204);
  });

  // ---------- /v3/credentials ----------
  const renderCred = (r: CredentialRow) => ({
    id: r.id, user_id: r.user_id, project_id: r.project_id, type: r.type, blob: blobs.open(r.blob), links: { self: v3Url(d, `/credentials/${r.id}`) },
  });
  const idFor = (type: string, blob: string) => {
    if (type !== 'ec2') return hexId();
    const access = fromJson<{ access?: unknown }>(blob, {}).access;
    if (typeof access !== 'string' || !access) throw badRequest("An ec2 credential's blob must be JSON with an 'access' key.");
    return ec2Id(access);
  };
  app.post('/credentials', { schema: { body: CredentialCreate } }, async (req, reply) => {
    const b = req.body.credential;
    allow(d, req, 'identity:create_credential', { credential: { user_id: b.user_id } });
    await mustUser(d, b.user_id).catch(() => { throw badRequest(`Could not find user: ${b.user_id}.`); });
    if (b.project_id) await mustProject(d, b.project_id).catch(() => { throw badRequest(`Could not find project: ${b.project_id}.`); });
    const row: CredentialRow = {
      id: idFor(b.type, b.blob), user_id: b.user_id, project_id: b.project_id ?? null, type: b.type, blob: blobs.seal(b.blob), extra: '{}', created_at: nowIso(),
    };
    await uniquely('credential', () => db.insertInto('identity_credentials').values(row).execute());
    reply.code(201);
    return { credential: renderCred(row) };
  });
  app.get('/credentials', async (req) => {
    const auth = allow(d, req, 'identity:list_credentials');
    const f = q(req);
    let qb = db.selectFrom('identity_credentials').selectAll().orderBy('id');
    if (f.user_id !== undefined) qb = qb.where('user_id', '=', f.user_id);
    if (f.type !== undefined) qb = qb.where('type', '=', f.type);
    let rows = await qb.execute();
    if (!d.ctx.policy.check('cloud_reader', auth)) rows = rows.filter((r) => r.user_id === auth.userId);
    return listBody(d, req, 'credentials', rows.map(renderCred));
  });
  const cred = async (id: string) => {
    const r = await db.selectFrom('identity_credentials').selectAll().where('id', '=', id).executeTakeFirst();
    if (!r) throw notFound(`Could not find credential: ${id}.`);
    return r;
  };
  app.get<{ Params: U }>('/credentials/:id', async (req) => {
    const r = await cred(req.params.id);
    allow(d, req, 'identity:get_credential', { credential: { user_id: r.user_id } });
    return { credential: renderCred(r) };
  });
  app.patch('/credentials/:id', { schema: { body: CredentialUpdate } }, async (req) => {
    const r = await cred((req.params as U).id);
    const auth = allow(d, req, 'identity:update_credential', { credential: { user_id: r.user_id } });
    const b = req.body.credential;
    // Moving a credential to another user or project would let its holder act as them
    // (Keystone OSSA-2020-005): only admins may, and only onto a project the owner has a role on.
    if (!d.ctx.policy.check('admin', auth)) {
      if (b.user_id && b.user_id !== r.user_id) throw forbidden('Only an admin can move a credential to another user.');
      if (b.project_id && b.project_id !== r.project_id
        && (await effectiveRoles(db, r.user_id, { kind: 'project', id: b.project_id })).length === 0) {
        throw forbidden(`User ${r.user_id} has no role on project ${b.project_id}.`);
      }
    }
    if (b.user_id && b.user_id !== r.user_id) await mustUser(d, b.user_id).catch(() => { throw badRequest(`Could not find user: ${b.user_id}.`); });
    const next: CredentialRow = { ...r, blob: b.blob ?? blobs.open(r.blob), type: b.type ?? r.type, user_id: b.user_id ?? r.user_id, project_id: b.project_id === undefined ? r.project_id : b.project_id };
    // Keystone lets the blob (access key included) change while the id stays: the EC2/S3 lookup
    // goes by the id derived from the access key at creation, so such a credential then serves
    // neither key for signatures (as in Keystone). The blob must still name an access key.
    if (next.type === 'ec2') idFor(next.type, next.blob);
    const stored = { ...next, blob: blobs.seal(next.blob) };
    await db.updateTable('identity_credentials').set(stored).where('id', '=', r.id).execute();
    return { credential: renderCred(stored) };
  });
  app.delete<{ Params: U }>('/credentials/:id', async (req, reply) => {
    const r = await cred(req.params.id);
    allow(d, req, 'identity:delete_credential', { credential: { user_id: r.user_id } });
    await db.deleteFrom('identity_credentials').where('id', '=', r.id).execute();
    reply.code(204);
  });
}
