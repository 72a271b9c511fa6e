// Identity's core rules: password / token / application-credential authentication, scoping,
// token validation (decrypt, expiry, revocation events, current state of user/project/roles),
// and the token body Keystone clients expect.
import type { AuthContext } from '../core/auth.js';
import type { ServiceContext } from '../core/service.js';
import { badRequest, forbidden, notFound, unauthorized } from '../core/errors.js';
import { hexId } from '../core/ids.js';
import type { KeyRing } from './keys.js';
import { CredentialBlobs } from './credentials.js';
import { verifyPassword } from './passwords.js';
import { effectiveRoles, type Target } from './roles.js';
import {
  bool, fromJson, typed, type AppCredRow, type DomainRow, type IdentityDb, type ProjectRow, type RevocationRow,
  type RoleRow, type UserRow,
} from './store.js';
import { newAuditId, openToken, sealToken, type Scope, type TokenPayload } from './tokens.js';

export interface TokenData {
  token: string;
  payload: TokenPayload;
  user: UserRow;
  userDomain: DomainRow;
  project?: ProjectRow;
  projectDomain?: DomainRow;
  domain?: DomainRow;
  roles: RoleRow[];
  appCred?: AppCredRow;
}

/** Keystone's timestamp form: microseconds, 'Z'. */
export const ksTime = (ms: number | string) => new Date(ms).toISOString().replace(/Z$/, '000Z');

const AUTH_FAILED = 'The request you have made requires authentication.';

export interface RevocationFields {
  user_id?: string; project_id?: string; domain_id?: string; role_id?: string;
  audit_id?: string; audit_chain_id?: string; app_cred_id?: string;
}

interface RefById { id?: string; name?: string; domain?: { id?: string; name?: string } }

export class IdentityCore {
  readonly db: IdentityDb;
  /** Seals and opens the blobs of identity_credentials. */
  readonly blobs: CredentialBlobs;

  constructor(readonly ctx: ServiceContext, readonly ring: KeyRing) {
    this.db = typed(ctx.db);
    this.blobs = new CredentialBlobs(ctx.cfg.dataDir);
  }

  private get ttlMs(): number { return this.ctx.cfg.identity.tokenExpirationSeconds * 1000; }

  // ---------- lookups ----------

  async domainByRef(ref: { id?: string; name?: string } | undefined): Promise<DomainRow | undefined> {
    if (!ref) return undefined;
    let q = this.db.selectFrom('identity_domains').selectAll();
    if (ref.id !== undefined) q = q.where('id', '=', String(ref.id));
    else if (ref.name !== undefined) q = q.where('name', '=', String(ref.name));
    else return undefined;
    return q.executeTakeFirst();
  }

  async domain(id: string): Promise<DomainRow | undefined> {
    return this.db.selectFrom('identity_domains').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async project(id: string): Promise<ProjectRow | undefined> {
    return this.db.selectFrom('identity_projects').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async user(id: string): Promise<UserRow | undefined> {
    return this.db.selectFrom('identity_users').selectAll().where('id', '=', id).executeTakeFirst();
  }

  private async userByRef(ref: RefById): Promise<UserRow | undefined> {
    if (typeof ref.id === 'string') return this.user(ref.id);
    if (typeof ref.name !== 'string') throw badRequest('Expecting to find user id or name in request.');
    const d = await this.domainByRef(ref.domain);
    if (!ref.domain) throw badRequest('Expecting to find domain in user. The server could not comply with the request since it is either malformed or otherwise incorrect.');
    if (!d) return undefined;
    return this.db.selectFrom('identity_users').selectAll().where('domain_id', '=', d.id).where('name', '=', ref.name).executeTakeFirst();
  }

  // ---------- authentication ----------

  /** POST /v3/auth/tokens: returns the new token and its data. */
  async authenticate(auth: any): Promise<TokenData> {
    const methods: unknown = auth?.identity?.methods;
    if (!Array.isArray(methods) || methods.length === 0 || !methods.every((m) => typeof m === 'string')) {
      throw badRequest("Invalid input for field 'identity.methods': expecting a non-empty list of method names.");
    }
    const known = ['password', 'token', 'application_credential'];
    const unknown = methods.filter((m) => !known.includes(m));
    if (unknown.length) throw unauthorized(`Attempted to authenticate with an unsupported method: ${unknown.join(', ')}.`);
    if (methods.length > 1) throw unauthorized('Authenticating with more than one method at once is not supported.');
    const method = methods[0] as string;
    const body = auth.identity[method];
    if (!body || typeof body !== 'object') throw badRequest(`Expecting to find ${method} in identity.`);

    const now = Date.now();
    let user: UserRow;
    let expiresAt = now + this.ttlMs;
    let auditIds = [newAuditId()];
    let scope = await this.requestedScope(auth.scope);
    let appCred: AppCredRow | undefined;
    let tokenMethods = [method];

    if (method === 'password') {
      user = await this.passwordUser(body);
    } else if (method === 'token') {
      if (typeof body.id !== 'string') throw badRequest("Expecting to find 'id' in token.");
      const parent = await this.validate(body.id);
      if (parent.appCred) throw forbidden('A token created with an application credential cannot be rescoped.');
      user = parent.user;
      expiresAt = parent.payload.expiresAt;
      auditIds = [auditIds[0]!, parent.payload.auditIds.at(-1)!];
      // As Keystone: a rescoped token keeps how the user first proved who they are, plus 'token'.
      tokenMethods = [...new Set([...parent.payload.methods, 'token'])];
    } else {
      appCred = await this.appCredFor(body);
      user = (await this.user(appCred.user_id))!;
      if (scope.kind !== 'unscoped' && !(scope.kind === 'project' && scope.id === appCred.project_id)) {
        throw unauthorized('An application credential token is scoped to the credential\'s project.');
      }
      scope = { kind: 'project', id: appCred.project_id };
      if (appCred.expires_at) expiresAt = Math.min(expiresAt, Date.parse(appCred.expires_at));
    }
    if (!bool(user.enabled)) throw unauthorized(AUTH_FAILED);

    if (scope.kind === 'unscoped' && method === 'password' && user.default_project_id) {
      const p = await this.project(user.default_project_id);
      if (p && bool(p.enabled) && (await effectiveRoles(this.db, user.id, { kind: 'project', id: p.id })).length) {
        scope = { kind: 'project', id: p.id };
      }
    }
    const payload: TokenPayload = {
      userId: user.id, methods: tokenMethods, scope, issuedAt: now, expiresAt, auditIds, appCredId: appCred?.id,
    };
    const data = await this.load(sealToken(this.ring, payload), payload, { issuing: true });
    if (scope.kind !== 'unscoped' && data.roles.length === 0) {
      throw unauthorized(`User ${user.id} has no access to the requested ${scope.kind}.`);
    }
    return data;
  }

  private async requestedScope(s: any): Promise<Scope> {
    if (s === undefined || s === null || s === 'unscoped') return { kind: 'unscoped' };
    if (typeof s !== 'object') throw badRequest("Invalid input for field 'scope'.");
    const keys = Object.keys(s);
    if (keys.length !== 1) throw badRequest('Specify exactly one of project, domain or system as the scope.');
    if (s.system !== undefined) {
      if (s.system?.all !== true) throw badRequest("Invalid input for field 'scope.system': expecting {\"all\": true}.");
      return { kind: 'system' };
    }
    if (s.domain !== undefined) {
      const d = await this.domainByRef(s.domain);
      if (!d) throw unauthorized(`Could not find domain: ${s.domain?.id ?? s.domain?.name}.`);
      if (!bool(d.enabled)) throw unauthorized(`Domain ${d.id} is disabled.`);
      return { kind: 'domain', id: d.id };
    }
    if (s.project !== undefined) {
      const ref = s.project as RefById;
      let p: ProjectRow | undefined;
      if (typeof ref?.id === 'string') p = await this.project(ref.id);
      else if (typeof ref?.name === 'string') {
        if (!ref.domain) throw badRequest('Expecting to find domain in project.');
        const d = await this.domainByRef(ref.domain);
        p = d && await this.db.selectFrom('identity_projects').selectAll().where('domain_id', '=', d.id).where('name', '=', ref.name).executeTakeFirst();
      } else throw badRequest('Expecting to find project id or name in scope.');
      if (!p) throw unauthorized(`Could not find project: ${ref.id ?? ref.name}.`);
      if (!bool(p.enabled)) throw unauthorized(`Project ${p.id} is disabled.`);
      const d = await this.domain(p.domain_id);
      if (!d || !bool(d.enabled)) throw unauthorized(`Domain ${p.domain_id} is disabled.`);
      return { kind: 'project', id: p.id };
    }
    throw badRequest("Invalid input for field 'scope': expecting project, domain or system.");
  }

  /** Password method, with lockout; every failure looks the same whether or not the user exists. */
  /**
   * Checks a user's password as a login does (lockout counted, same answer for every failure):
   * the proof a password change needs, so that the change API cannot be used to guess passwords.
   */
  checkPassword(userId: string, password: string): Promise<UserRow> {
    return this.passwordUser({ user: { id: userId, password } });
  }

  private async passwordUser(body: any): Promise<UserRow> {
    const u = body.user;
    if (!u || typeof u !== 'object') throw badRequest("Expecting to find 'user' in password.");
    if (typeof u.password !== 'string') throw badRequest("Invalid input for field 'password.user.password': expecting a string.");
    const user = await this.userByRef(u);
    const { lockoutFailureAttempts: maxFail, lockoutDurationSeconds: lockSecs } = this.ctx.cfg.identity;
    const options = fromJson<Record<string, unknown>>(user?.options, {});
    const lockable = maxFail > 0 && !options.ignore_lockout_failure_attempts;
    const now = Date.now();
    const locked = !!user && lockable && user.failed_auth_count >= maxFail && !!user.failed_auth_at &&
      Date.parse(user.failed_auth_at) + lockSecs * 1000 > now;
    // A locked or unknown user still costs a full hash verification: same time, same answer.
    const ok = await verifyPassword(locked ? undefined : user?.password_hash, u.password);
    if (!user || locked || !ok) {
      if (user && !locked && lockable) {
        const expired = user.failed_auth_at && Date.parse(user.failed_auth_at) + lockSecs * 1000 <= now;
        await this.db.updateTable('identity_users')
          .set({ failed_auth_count: (expired ? 0 : user.failed_auth_count) + 1, failed_auth_at: new Date(now).toISOString() })
          .where('id', '=', user.id).execute();
        if ((expired ? 0 : user.failed_auth_count) + 1 >= maxFail) this.ctx.log.warn({ user_id: user.id }, 'user locked out after failed logins');
      }
      throw unauthorized(AUTH_FAILED);
    }
    if (!bool(user.enabled)) throw unauthorized(AUTH_FAILED);
    if (user.failed_auth_count > 0) {
      await this.db.updateTable('identity_users').set({ failed_auth_count: 0, failed_auth_at: null }).where('id', '=', user.id).execute();
    }
    if (user.password_expires_at && Date.parse(user.password_expires_at) <= now) {
      throw unauthorized('The password is expired and needs to be changed for user: ' + user.id + '.');
    }
    return user;
  }

  private async appCredFor(body: any): Promise<AppCredRow> {
    if (typeof body.secret !== 'string') throw badRequest("Expecting to find 'secret' in application_credential.");
    let row: AppCredRow | undefined;
    if (typeof body.id === 'string') {
      row = await this.db.selectFrom('identity_app_creds').selectAll().where('id', '=', body.id).executeTakeFirst();
    } else if (typeof body.name === 'string' && body.user && typeof body.user === 'object') {
      const user = await this.userByRef(body.user);
      row = user && await this.db.selectFrom('identity_app_creds').selectAll()
        .where('user_id', '=', user.id).where('name', '=', body.name).executeTakeFirst();
    } else {
      throw badRequest('Expecting to find application_credential id, or name and user.');
    }
    const ok = await verifyPassword(row?.secret_hash, body.secret);
    if (!row || !ok) throw unauthorized(AUTH_FAILED);
    if (row.expires_at && Date.parse(row.expires_at) <= Date.now()) throw unauthorized('The application credential has expired.');
    return row;
  }

  // ---------- validation ----------

  /** Decrypts and checks a token; throws 401 (or 404 when `subject`) when it is not valid now. */
  async validate(token: string, opts: { allowExpired?: boolean; subject?: boolean } = {}): Promise<TokenData> {
    const fail = () => opts.subject ? notFound(`Could not find token: ${token.slice(0, 16)}...`) : unauthorized();
    const payload = openToken(this.ring, token);
    if (!payload) throw fail();
    if (payload.expiresAt <= Date.now() && !opts.allowExpired) throw fail();
    let data: TokenData;
    try {
      data = await this.load(token, payload, {});
    } catch (e) {
      if ((e as { status?: number }).status === 401) throw fail();
      throw e;
    }
    if (await this.isRevoked(payload, data.roles)) throw fail();
    return data;
  }

  /** Re-reads the state a token refers to; anything disabled or gone invalidates it. */
  private async load(token: string, payload: TokenPayload, opts: { issuing?: boolean }): Promise<TokenData> {
    const user = await this.user(payload.userId);
    if (!user || !bool(user.enabled)) throw unauthorized();
    const userDomain = await this.domain(user.domain_id);
    if (!userDomain || !bool(userDomain.enabled)) throw unauthorized();
    const data: TokenData = { token, payload, user, userDomain, roles: [] };
    let target: Target | undefined;
    const s = payload.scope;
    if (s.kind === 'project') {
      data.project = await this.project(s.id);
      if (!data.project || !bool(data.project.enabled)) throw unauthorized();
      data.projectDomain = data.project.domain_id === userDomain.id ? userDomain : await this.domain(data.project.domain_id);
      if (!data.projectDomain || !bool(data.projectDomain.enabled)) throw unauthorized();
      target = { kind: 'project', id: s.id };
    } else if (s.kind === 'domain') {
      data.domain = await this.domain(s.id);
      if (!data.domain || !bool(data.domain.enabled)) throw unauthorized();
      target = { kind: 'domain', id: s.id };
    } else if (s.kind === 'system') {
      target = { kind: 'system' };
    }
    if (target) data.roles = await effectiveRoles(this.db, user.id, target);
    if (payload.appCredId) {
      data.appCred = await this.db.selectFrom('identity_app_creds').selectAll().where('id', '=', payload.appCredId).executeTakeFirst();
      if (!data.appCred) throw unauthorized();
      const allowed = new Set(fromJson<{ id: string }[]>(data.appCred.roles, []).map((r) => r.id));
      data.roles = data.roles.filter((r) => allowed.has(r.id));
    }
    if (target && data.roles.length === 0 && !opts.issuing) throw unauthorized();
    return data;
  }

  /** The caller a non-token request (an EC2/S3 signature) stands for: the user on the project. */
  async contextFor(userId: string, projectId: string): Promise<AuthContext> {
    const now = Date.now();
    const payload: TokenPayload = {
      userId, methods: ['ec2credential'], scope: { kind: 'project', id: projectId }, issuedAt: now,
      expiresAt: now + this.ttlMs, auditIds: [newAuditId()],
    };
    return this.authContext(await this.load('', payload, {}));
  }

  private async isRevoked(p: TokenPayload, roles: RoleRow[]): Promise<boolean> {
    const issued = new Date(p.issuedAt).toISOString();
    const events = await this.db.selectFrom('identity_revocation_events').selectAll()
      .where('issued_before', '>=', issued).execute();
    if (events.length === 0) return false;
    const projectId = p.scope.kind === 'project' ? p.scope.id : undefined;
    const domainId = p.scope.kind === 'domain' ? p.scope.id : undefined;
    return events.some((e: RevocationRow) =>
      (e.user_id === null || e.user_id === p.userId) &&
      (e.project_id === null || e.project_id === projectId) &&
      (e.domain_id === null || e.domain_id === domainId) &&
      (e.audit_id === null || e.audit_id === p.auditIds[0]) &&
      (e.audit_chain_id === null || e.audit_chain_id === p.auditIds.at(-1)) &&
      (e.app_cred_id === null || e.app_cred_id === p.appCredId) &&
      (e.role_id === null || roles.some((r) => r.id === e.role_id)));
  }

  /** Records a revocation event; tokens issued up to now that match it stop validating. */
  async revoke(fields: RevocationFields): Promise<void> {
    const now = new Date().toISOString();
    await this.db.insertInto('identity_revocation_events').values({
      id: hexId(), user_id: fields.user_id ?? null, project_id: fields.project_id ?? null,
      domain_id: fields.domain_id ?? null, role_id: fields.role_id ?? null, audit_id: fields.audit_id ?? null,
      audit_chain_id: fields.audit_chain_id ?? null, app_cred_id: fields.app_cred_id ?? null,
      issued_before: now, revoked_at: now,
    }).execute();
    // Events older than any live token (max lifetime) can no longer match anything.
    const horizon = new Date(Date.now() - this.ttlMs - 60_000).toISOString();
    await this.db.deleteFrom('identity_revocation_events').where('issued_before', '<', horizon).execute();
  }

  // ---------- rendering ----------

  async catalog(): Promise<unknown[]> {
    const services = await this.db.selectFrom('identity_services').selectAll().where('enabled', '=', 1).orderBy('type').execute();
    const endpoints = await this.db.selectFrom('identity_endpoints').selectAll().where('enabled', '=', 1).execute();
    return services.map((s) => ({
      id: s.id, type: s.type, name: s.name,
      endpoints: endpoints.filter((e) => e.service_id === s.id).map((e) => ({
        id: e.id, interface: e.interface, region: e.region_id, region_id: e.region_id, url: e.url,
      })),
    }));
  }

  async tokenBody(d: TokenData, withCatalog: boolean): Promise<unknown> {
    const t: Record<string, unknown> = {
      methods: d.payload.methods,
      user: {
        id: d.user.id, name: d.user.name, domain: { id: d.userDomain.id, name: d.userDomain.name },
        password_expires_at: d.user.password_expires_at ? ksTime(d.user.password_expires_at) : null,
      },
      audit_ids: d.payload.auditIds,
      expires_at: ksTime(d.payload.expiresAt),
      issued_at: ksTime(d.payload.issuedAt),
    };
    if (d.project) {
      t.project = { id: d.project.id, name: d.project.name, domain: { id: d.projectDomain!.id, name: d.projectDomain!.name } };
      t.is_domain = false;
    } else if (d.domain) {
      t.domain = { id: d.domain.id, name: d.domain.name };
    } else if (d.payload.scope.kind === 'system') {
      t.system = { all: true };
    }
    if (d.payload.scope.kind !== 'unscoped') {
      t.roles = d.roles.map((r) => ({ id: r.id, name: r.name, ...(r.domain_id ? { domain_id: r.domain_id } : {}) }));
      if (withCatalog) t.catalog = await this.catalog();
    }
    if (d.appCred) t.application_credential = { id: d.appCred.id, name: d.appCred.name, restricted: !bool(d.appCred.unrestricted) };
    return { token: t };
  }

  authContext(d: TokenData): AuthContext {
    return {
      token: d.token,
      userId: d.user.id, userName: d.user.name, userDomainId: d.userDomain.id, userDomainName: d.userDomain.name,
      projectId: d.project?.id, projectName: d.project?.name,
      projectDomainId: d.projectDomain?.id, projectDomainName: d.projectDomain?.name,
      domainId: d.domain?.id, domainName: d.domain?.name,
      system: d.payload.scope.kind === 'system',
      roles: d.roles.map((r) => r.name), roleIds: d.roles.map((r) => r.id),
      methods: d.payload.methods,
      issuedAt: ksTime(d.payload.issuedAt), expiresAt: ksTime(d.payload.expiresAt),
      auditIds: d.payload.auditIds,
      applicationCredentialId: d.appCred?.id,
    };
  }
}
