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
  const m1010: Migration = {
    async up(db) {
      // A server as the API knows it; once scheduled, compute_instances (same id) holds its
      // desired state on a host and what the agent observes there.
      await db.schema.createTable('compute_servers')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('description', 'text')
        .addColumn('hostname', 'text', (c) => c.notNull())
        .addColumn('image_id', 'text')
        .addColumn('flavor', 'text', (c) => c.notNull())            // JSON snapshot of the flavor
        .addColumn('key_name', 'text')
        .addColumn('key_data', 'text')
        .addColumn('user_data', 'text')
        .addColumn('metadata', 'text', (c) => c.notNull())          // JSON
        .addColumn('config_drive', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('requested_az', 'text')
        .addColumn('availability_zone', 'text')
        .addColumn('host', 'text')
        .addColumn('vm_state', 'text', (c) => c.notNull())          // building, active, error, deleted
        .addColumn('task_state', 'text')
        .addColumn('task', 'text')                                  // JSON: the multi-step operation in progress
        .addColumn('fault', 'text')                                 // JSON {code, message, details, created}
        .addColumn('request', 'text', (c) => c.notNull())           // JSON: scheduling request (hints, group, tried hosts)
        .addColumn('reservation_id', 'text', (c) => c.notNull())
        .addColumn('launch_index', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('locked', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('locked_reason', 'text')
        .addColumn('locked_by', 'text')
        .addColumn('access_ipv4', 'text')
        .addColumn('access_ipv6', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addColumn('launched_at', 'text')
        .addColumn('terminated_at', 'text')
        .addColumn('deleted', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema.createIndex('compute_servers_project').on('compute_servers').columns(['project_id', 'deleted']).execute();
      await db.schema.createIndex('compute_servers_state').on('compute_servers').columns(['vm_state', 'deleted']).execute();
      await db.schema.createIndex('compute_servers_updated').on('compute_servers').column('updated_at').execute();
      await db.schema.createTable('compute_server_tags')
        .addColumn('server_id', 'text', (c) => c.notNull().references('compute_servers.id').onDelete('cascade'))
        .addColumn('tag', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('compute_server_tags_pk', ['server_id', 'tag'])
        .execute();
      await db.schema.createTable('compute_instance_actions')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('server_id', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('request_id', 'text', (c) => c.notNull())
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('message', 'text')
        .addColumn('start_time', 'text', (c) => c.notNull())
        .addColumn('finish_time', 'text')
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('compute_instance_actions_server').on('compute_instance_actions').columns(['server_id', 'start_time']).execute();
      await db.schema.createTable('compute_instance_action_events')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('action_id', 'text', (c) => c.notNull().references('compute_instance_actions.id').onDelete('cascade'))
        .addColumn('event', 'text', (c) => c.notNull())
        .addColumn('host', 'text')
        .addColumn('result', 'text')
        .addColumn('details', 'text')
        .addColumn('start_time', 'text', (c) => c.notNull())
        .addColumn('finish_time', 'text')
        .execute();
      await db.schema.createIndex('compute_instance_action_events_action').on('compute_instance_action_events').column('action_id').execute();
    },
    async down(db) {
      for (const t of ['compute_instance_action_events', 'compute_instance_actions', 'compute_server_tags', 'compute_servers']) {
        await db.schema.dropTable(t).ifExists().execute();
      }
    },
  };
  // Moves of a server between hosts (cold migration, resize, live migration, evacuation), as
  // Nova's `migrations` table: os-migrations and /servers/{id}/migrations read it.
  const m1020: Migration = {
    async up(db) {
      await serial(db, 'compute_migrations')
        .addColumn('uuid', 'text', (c) => c.notNull().unique())
        .addColumn('instance_uuid', 'text', (c) => c.notNull())
        .addColumn('migration_type', 'text', (c) => c.notNull())    // migration, resize, live-migration, evacuation
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('source_compute', 'text', (c) => c.notNull())
        .addColumn('source_node', 'text', (c) => c.notNull())
        .addColumn('dest_compute', 'text')
        .addColumn('dest_node', 'text')
        .addColumn('dest_host', 'text')
        .addColumn('old_flavor_id', 'text', (c) => c.notNull())
        .addColumn('new_flavor_id', 'text', (c) => c.notNull())
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text', (c) => c.notNull())
        // Live migration progress (bytes), null until known.
        .addColumn('memory_total_bytes', 'bigint')
        .addColumn('memory_processed_bytes', 'bigint')
        .addColumn('memory_remaining_bytes', 'bigint')
        .addColumn('disk_total_bytes', 'bigint')
        .addColumn('disk_processed_bytes', 'bigint')
        .addColumn('disk_remaining_bytes', 'bigint')
        .addColumn('error', 'text')                                  // why it ended in error/failed
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('compute_migrations_instance').on('compute_migrations').columns(['instance_uuid', 'created_at']).execute();
      await db.schema.createIndex('compute_migrations_updated').on('compute_migrations').column('updated_at').execute();
    },
    async down(db) {
      await db.schema.dropTable('compute_migrations').ifExists().execute();
    },
  };
  // Nova shows a key pair's id as an integer: the table is rebuilt with a serial id (oldest
  // first), the old text id dropped (nothing refers to it).
  const m1025: Migration = {
    async up(db) {
      await serial(db, 'compute_keypairs_next')
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('public_key', 'text', (c) => c.notNull())
        .addColumn('fingerprint', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('compute_keypairs_user_name_2', ['user_id', 'name'])
        .execute();
      const cols = ['user_id', 'name', 'type', 'public_key', 'fingerprint', 'created_at'] as const;
      await db.insertInto('compute_keypairs_next').columns([...cols])
        .expression(db.selectFrom('compute_keypairs').select([...cols]).orderBy('created_at').orderBy('name'))
        .execute();
      await db.schema.dropTable('compute_keypairs').execute();
      await db.schema.alterTable('compute_keypairs_next').renameTo('compute_keypairs').execute();
    },
    async down() { /* the text ids are gone; nothing to restore */ },
  };
  return { '1000_nova_api': m1000, '1010_servers': m1010, '1020_migrations': m1020, '1025_keypair_serial_ids': m1025 };
}
