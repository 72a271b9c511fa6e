// Row types of the identity tables and the few queries several parts of identity share.
import type { Kysely } from 'kysely';
import type { Database } from '../core/db.js';
import { fromDbBool, fromJson, isUniqueViolation } from '../core/db.js';
import { conflict } from '../core/errors.js';

export interface DomainRow { id: string; name: string; description: string; enabled: number; tags: string; extra: string; created_at: string }
export interface ProjectRow {
  id: string; name: string; domain_id: string; parent_id: string | null; description: string;
  enabled: number; tags: string; extra: string; created_at: string;
}
export interface UserRow {
  id: string; name: string; domain_id: string; enabled: number; password_hash: string | null;
  password_created_at: string | null; password_expires_at: string | null; default_project_id: string | null;
  description: string; email: string | null; options: string; extra: string; failed_auth_count: number;
  failed_auth_at: string | null; last_active_at: string | null; created_at: string;
}
export interface GroupRow { id: string; name: string; domain_id: string; description: string; extra: string; created_at: string }
export interface RoleRow { id: string; name: string; domain_id: string; description: string; options: string; extra: string }
export interface AssignmentRow { type: string; actor_id: string; target_id: string; role_id: string; inherited: number }
export interface RegionRow { id: string; description: string; parent_region_id: string | null; extra: string }
export interface ServiceRow { id: string; type: string; name: string; description: string; enabled: number; extra: string }
export interface EndpointRow { id: string; service_id: string; region_id: string | null; interface: string; url: string; enabled: number; extra: string }
export interface RevocationRow {
  id: string; user_id: string | null; project_id: string | null; domain_id: string | null; role_id: string | null;
  audit_id: string | null; audit_chain_id: string | null; app_cred_id: string | null; issued_before: string; revoked_at: string;
}
export interface AppCredRow {
  id: string; name: string; user_id: string; project_id: string; secret_hash: string; description: string;
  expires_at: string | null; unrestricted: number; roles: string; created_at: string;
}
export interface CredentialRow { id: string; user_id: string; project_id: string | null; type: string; blob: string; extra: string; created_at: string }
export interface RegisteredLimitRow { id: string; service_id: string; region_id: string; resource_name: string; default_limit: number; description: string }
export interface LimitRow {
  id: string; project_id: string; domain_id: string; service_id: string; region_id: string; resource_name: string;
  resource_limit: number; description: string;
}

export interface IdentityTables {
  identity_meta: { key: string; value: string };
  identity_domains: DomainRow;
  identity_projects: ProjectRow;
  identity_users: UserRow;
  identity_groups: GroupRow;
  identity_group_members: { group_id: string; user_id: string };
  identity_roles: RoleRow;
  identity_implied_roles: { prior_role_id: string; implied_role_id: string };
  identity_assignments: AssignmentRow;
  identity_regions: RegionRow;
  identity_services: ServiceRow;
  identity_endpoints: EndpointRow;
  identity_revocation_events: RevocationRow;
  identity_app_creds: AppCredRow;
  identity_credentials: CredentialRow;
  identity_registered_limits: RegisteredLimitRow;
  identity_limits: LimitRow;
}

export type IdentityDb = Kysely<IdentityTables>;

export const typed = (db: Database): IdentityDb => db.kysely as IdentityDb;

export { fromDbBool as bool, fromJson, isUniqueViolation as isUniqueViolationSafe };

/** Runs `fn`; a unique violation becomes Keystone's 409 with `what` in the message. */
export async function uniquely<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (isUniqueViolation(e)) throw conflict(`Conflict occurred attempting to store ${what}. Duplicate entry.`);
    throw e;
  }
}

export async function getMeta(db: IdentityDb, key: string): Promise<string | undefined> {
  const r = await db.selectFrom('identity_meta').select('value').where('key', '=', key).executeTakeFirst();
  return r?.value;
}

export async function setMeta(db: IdentityDb, key: string, value: string): Promise<void> {
  const n = await db.updateTable('identity_meta').set({ value }).where('key', '=', key).executeTakeFirst();
  if (Number(n.numUpdatedRows) === 0) {
    await db.insertInto('identity_meta').values({ key, value }).execute().catch((e) => {
      if (!isUniqueViolation(e)) throw e;
    });
  }
}
