// Identity tables. Keystone's model, flattened: domains have their own table (Keystone keeps
// them as projects with is_domain), role assignments one table keyed by actor/target type.
// Nullable parts of unique keys are stored as '' so that both engines enforce uniqueness.
import type { Kysely } from 'kysely';
import type { ServiceMigrations } from '../core/db.js';

async function init(db: Kysely<any>): Promise<void> {
  await db.schema.createTable('identity_meta')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .execute();

  await db.schema.createTable('identity_domains')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('tags', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();

  await db.schema.createTable('identity_projects')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('domain_id', 'text', (c) => c.notNull())
    .addColumn('parent_id', 'text')
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('tags', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('identity_projects_domain_name', ['domain_id', 'name'])
    .execute();
  await db.schema.createIndex('identity_projects_parent').on('identity_projects').column('parent_id').execute();

  await db.schema.createTable('identity_users')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('domain_id', 'text', (c) => c.notNull())
    .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('password_hash', 'text')
    .addColumn('password_created_at', 'text')
    .addColumn('password_expires_at', 'text')
    .addColumn('default_project_id', 'text')
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('email', 'text')
    .addColumn('options', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('failed_auth_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('failed_auth_at', 'text')
    .addColumn('last_active_at', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('identity_users_domain_name', ['domain_id', 'name'])
    .execute();

  await db.schema.createTable('identity_groups')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('domain_id', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('identity_groups_domain_name', ['domain_id', 'name'])
    .execute();

  await db.schema.createTable('identity_group_members')
    .addColumn('group_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('identity_group_members_pk', ['group_id', 'user_id'])
    .execute();
  await db.schema.createIndex('identity_group_members_user').on('identity_group_members').column('user_id').execute();

  await db.schema.createTable('identity_roles')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('domain_id', 'text', (c) => c.notNull().defaultTo('')) // '' = global role
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('options', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
    .addUniqueConstraint('identity_roles_domain_name', ['domain_id', 'name'])
    .execute();

  await db.schema.createTable('identity_implied_roles')
    .addColumn('prior_role_id', 'text', (c) => c.notNull())
    .addColumn('implied_role_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('identity_implied_roles_pk', ['prior_role_id', 'implied_role_id'])
    .execute();

  // type: UserProject | GroupProject | UserDomain | GroupDomain | UserSystem | GroupSystem
  await db.schema.createTable('identity_assignments')
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('actor_id', 'text', (c) => c.notNull())
    .addColumn('target_id', 'text', (c) => c.notNull())
    .addColumn('role_id', 'text', (c) => c.notNull())
    .addColumn('inherited', 'integer', (c) => c.notNull().defaultTo(0))
    .addPrimaryKeyConstraint('identity_assignments_pk', ['type', 'actor_id', 'target_id', 'role_id', 'inherited'])
    .execute();
  await db.schema.createIndex('identity_assignments_actor').on('identity_assignments').column('actor_id').execute();
  await db.schema.createIndex('identity_assignments_target').on('identity_assignments').column('target_id').execute();
  await db.schema.createIndex('identity_assignments_role').on('identity_assignments').column('role_id').execute();

  await db.schema.createTable('identity_regions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('parent_region_id', 'text')
    .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
    .execute();

  await db.schema.createTable('identity_services')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
    .execute();

  await db.schema.createTable('identity_endpoints')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('service_id', 'text', (c) => c.notNull())
    .addColumn('region_id', 'text')
    .addColumn('interface', 'text', (c) => c.notNull())
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
    .execute();

  // A token is revoked when it was issued at or before issued_before and every non-null
  // column of an event matches it (Keystone's revocation-event model).
  await db.schema.createTable('identity_revocation_events')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text')
    .addColumn('project_id', 'text')
    .addColumn('domain_id', 'text')
    .addColumn('role_id', 'text')
    .addColumn('audit_id', 'text')
    .addColumn('audit_chain_id', 'text')
    .addColumn('app_cred_id', 'text')
    .addColumn('issued_before', 'text', (c) => c.notNull())
    .addColumn('revoked_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('identity_revocation_events_issued').on('identity_revocation_events')
    .column('issued_before').execute();

  await db.schema.createTable('identity_app_creds')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('project_id', 'text', (c) => c.notNull())
    .addColumn('secret_hash', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('expires_at', 'text')
    .addColumn('unrestricted', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('roles', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('identity_app_creds_user_name', ['user_id', 'name'])
    .execute();

  // Generic credentials (/v3/credentials); EC2 ones have type 'ec2' and id sha256(access).
  await db.schema.createTable('identity_credentials')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('project_id', 'text')
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('blob', 'text', (c) => c.notNull())
    .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('identity_credentials_user').on('identity_credentials').column('user_id').execute();

  await db.schema.createTable('identity_registered_limits')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('service_id', 'text', (c) => c.notNull())
    .addColumn('region_id', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('resource_name', 'text', (c) => c.notNull())
    .addColumn('default_limit', 'integer', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addUniqueConstraint('identity_registered_limits_key', ['service_id', 'region_id', 'resource_name'])
    .execute();

  await db.schema.createTable('identity_limits')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('project_id', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('domain_id', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('service_id', 'text', (c) => c.notNull())
    .addColumn('region_id', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('resource_name', 'text', (c) => c.notNull())
    .addColumn('resource_limit', 'integer', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addUniqueConstraint('identity_limits_key', ['project_id', 'domain_id', 'service_id', 'region_id', 'resource_name'])
    .execute();
}

export const identityMigrations: ServiceMigrations = {
  '0001_init': { up: init },
};
