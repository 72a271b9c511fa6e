// Tables of the Nova API side of compute (flavors, keypairs, aggregates, server groups, service
// switches). Named 1000_+ so they never collide with the host agent's compute_* migrations.
import type { Kysely, Migration } from 'kysely';
import type { Engine, ServiceMigrations } from '../core/db.js';

export function novaMigrations(engine: Engine): ServiceMigrations {
  // Aggregates have integer ids in Nova's API; each engine spells auto-increment its own way.
  const serial = (db: Kysely<any>, table: string) =>
    db.schema.createTable(table).addColumn('id', engine === 'postgres' ? 'serial' : 'integer',
      (c) => (engine === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()));

  const m1000: Migration = {
    async up(db) {
      await db.schema.createTable('compute_flavors')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('vcpus', 'integer', (c) => c.notNull())
        .addColumn('ram', 'integer', (c) => c.notNull())
        .addColumn('disk', 'integer', (c) => c.notNull())
        .addColumn('ephemeral', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('swap', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('rxtx_factor', 'double precision', (c) => c.notNull().defaultTo(1))
        .addColumn('is_public', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('description', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text')
        .execute();
      await db.schema.createTable('compute_flavor_extra_specs')
        .addColumn('flavor_id', 'text', (c) => c.notNull().references('compute_flavors.id').onDelete('cascade'))
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('compute_flavor_extra_specs_pk', ['flavor_id', 'key'])
        .execute();
      await db.schema.createTable('compute_flavor_projects')
        .addColumn('flavor_id', 'text', (c) => c.notNull().references('compute_flavors.id').onDelete('cascade'))
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('compute_flavor_projects_pk', ['flavor_id', 'project_id'])
        .execute();

      await db.schema.createTable('compute_keypairs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('public_key', 'text', (c) => c.notNull())
        .addColumn('fingerprint', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('compute_keypairs_user_name', ['user_id', 'name'])
        .execute();

      await serial(db, 'compute_aggregates')
        .addColumn('uuid', 'text', (c) => c.notNull().unique())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text')
        .execute();
      await db.schema.createTable('compute_aggregate_hosts')
        .addColumn('aggregate_id', 'integer', (c) => c.notNull().references('compute_aggregates.id').onDelete('cascade'))
        .addColumn('host', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('compute_aggregate_hosts_pk', ['aggregate_id', 'host'])
        .execute();
      await db.schema.createTable('compute_aggregate_metadata')
        .addColumn('aggregate_id', 'integer', (c) => c.notNull().references('compute_aggregates.id').onDelete('cascade'))
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('compute_aggregate_metadata_pk', ['aggregate_id', 'key'])
        .execute();

      await db.schema.createTable('compute_server_groups')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('policy', 'text', (c) => c.notNull())
        .addColumn('rules', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('compute_server_groups_project').on('compute_server_groups').column('project_id').execute();
      await db.schema.createTable('compute_server_group_members')
        .addColumn('group_id', 'text', (c) => c.notNull().references('compute_server_groups.id').onDelete('cascade'))
        .addColumn('instance_id', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('compute_server_group_members_pk', ['group_id', 'instance_id'])
        .execute();
      await db.schema.createIndex('compute_server_group_members_instance').on('compute_server_group_members')
        .column('instance_id').execute();

      // Operator switches of os-services, per compute host (the agent owns the host rows).
      await db.schema.createTable('compute_service_switches')
        .addColumn('host', 'text', (c) => c.primaryKey())
        .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('disabled_reason', 'text')
        .addColumn('forced_down', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
    },
    async down(db) {
      for (const t of ['compute_service_switches', 'compute_server_group_members', 'compute_server_groups',
        'compute_aggregate_metadata', 'compute_aggregate_hosts', 'compute_aggregates', 'compute_keypairs',
        'compute_flavor_projects', 'compute_flavor_extra_specs', 'compute_flavors']) {
        await db.schema.dropTable(t).ifExists().execute();
      }
    },
  };
  return { '1000_nova_api': m1000 };
}
