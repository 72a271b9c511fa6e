// Tables of the compute service (compute_*). Conventions: src/core/db.ts.
import type { Kysely } from 'kysely';
import type { ServiceMigrations } from '../core/db.js';
import { instanceMovesForceMigration, instanceMovesMigration } from './instance-moves.js';

export const computeMigrations: ServiceMigrations = {
  '0001_hosts_instances': {
    async up(db: Kysely<any>) {
      await db.schema.createTable('compute_hosts')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('vcpus', 'integer', (c) => c.notNull())
        .addColumn('memory_mb', 'integer', (c) => c.notNull())
        .addColumn('disk_gb', 'integer', (c) => c.notNull())
        .addColumn('cpu_model', 'text', (c) => c.notNull())
        .addColumn('hypervisor_type', 'text', (c) => c.notNull())
        .addColumn('hypervisor_version', 'text', (c) => c.notNull())
        .addColumn('accelerator', 'text', (c) => c.notNull())
        .addColumn('agent_version', 'text', (c) => c.notNull())
        .addColumn('revision', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('usage', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('registered_at', 'text', (c) => c.notNull())
        .addColumn('heartbeat_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createTable('compute_instances')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text')
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('host', 'text', (c) => c.notNull())
        .addColumn('image_id', 'text', (c) => c.notNull())
        .addColumn('vcpus', 'integer', (c) => c.notNull())
        .addColumn('ram_mb', 'integer', (c) => c.notNull())
        .addColumn('disk_gb', 'integer', (c) => c.notNull())
        // keys, user data, hostname, metadata, nics
        .addColumn('spec', 'text', (c) => c.notNull())
        .addColumn('desired_power', 'text', (c) => c.notNull())
        .addColumn('deleted', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('task', 'text')
        .addColumn('task_state', 'text')
        .addColumn('generation', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('power_state', 'text')
        .addColumn('observed_generation', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('pid', 'integer')
        .addColumn('disk_bytes', 'bigint')
        .addColumn('busy', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('fault', 'text')
        .addColumn('last_task_result', 'text')
        .addColumn('last_event', 'text')
        .addColumn('observed_at', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('compute_instances_host').on('compute_instances').column('host').execute();
      await db.schema.createIndex('compute_instances_project').on('compute_instances').column('project_id').execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropTable('compute_instances').execute();
      await db.schema.dropTable('compute_hosts').execute();
    },
  },
  // Questions to agents (console output, VNC address): a row per call, deleted once answered.
  '0002_agent_calls': {
    async up(db: Kysely<any>) {
      await db.schema.createTable('compute_agent_calls')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('host', 'text', (c) => c.notNull())
        .addColumn('call', 'text', (c) => c.notNull())
        .addColumn('result', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('compute_agent_calls_host').on('compute_agent_calls').column('host').execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropTable('compute_agent_calls').execute();
    },
  },
  // Live migrations in progress, at the agents' level (instance-moves.ts).
  '0003_instance_moves': instanceMovesMigration,
  // Moves between hosts: the instance's second copy (the source during a cold migration, the
  // destination being deleted after a revert) and where a moved root disk comes from.
  '0004_instance_peer': {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('compute_instances').addColumn('peer_host', 'text').execute();
      await db.schema.alterTable('compute_instances').addColumn('peer', 'text').execute();
      await db.schema.alterTable('compute_instances').addColumn('disk_source', 'text').execute();
      await db.schema.createIndex('compute_instances_peer_host').on('compute_instances').column('peer_host').execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropIndex('compute_instances_peer_host').execute();
      for (const c of ['disk_source', 'peer', 'peer_host']) await db.schema.alterTable('compute_instances').dropColumn(c).execute();
    },
  },
  // force_complete of a live migration (instance-moves.ts).
  '0005_instance_moves_force_complete': instanceMovesForceMigration,
};
