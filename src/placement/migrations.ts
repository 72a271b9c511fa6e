// Placement's tables. Providers, consumers and classes are keyed by their public names (uuids,
// class and trait names): every lookup the API and the scheduler make is by those, and it keeps
// the schema identical on SQLite and PostgreSQL (no engine-specific serial ids).
import { sql, type Kysely } from 'kysely';
import type { ServiceMigrations } from '../core/db.js';

export const migrations: ServiceMigrations = {
  '0001_init': {
    async up(db: Kysely<any>) {
      await db.schema.createTable('placement_resource_providers')
        .addColumn('uuid', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('generation', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('parent_uuid', 'text')
        .addColumn('root_uuid', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('placement_rp_root_idx').on('placement_resource_providers').column('root_uuid').execute();
      await db.schema.createIndex('placement_rp_parent_idx').on('placement_resource_providers').column('parent_uuid').execute();

      await db.schema.createTable('placement_inventories')
        .addColumn('rp_uuid', 'text', (c) => c.notNull())
        .addColumn('resource_class', 'text', (c) => c.notNull())
        .addColumn('total', 'integer', (c) => c.notNull())
        .addColumn('reserved', 'integer', (c) => c.notNull())
        .addColumn('min_unit', 'integer', (c) => c.notNull())
        .addColumn('max_unit', 'integer', (c) => c.notNull())
        .addColumn('step_size', 'integer', (c) => c.notNull())
        .addColumn('allocation_ratio', sql`double precision`, (c) => c.notNull())
        .addPrimaryKeyConstraint('placement_inventories_pk', ['rp_uuid', 'resource_class'])
        .execute();
      await db.schema.createIndex('placement_inv_rc_idx').on('placement_inventories').column('resource_class').execute();

      await db.schema.createTable('placement_consumers')
        .addColumn('uuid', 'text', (c) => c.primaryKey())
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('consumer_type', 'text')
        .addColumn('generation', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('placement_consumers_project_idx').on('placement_consumers')
        .columns(['project_id', 'user_id']).execute();

      await db.schema.createTable('placement_allocations')
        .addColumn('consumer_uuid', 'text', (c) => c.notNull())
        .addColumn('rp_uuid', 'text', (c) => c.notNull())
        .addColumn('resource_class', 'text', (c) => c.notNull())
        .addColumn('used', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('placement_allocations_pk', ['consumer_uuid', 'rp_uuid', 'resource_class'])
        .execute();
      // Usage per provider and class is a SUM over this index (capacity checks, candidates).
      await db.schema.createIndex('placement_alloc_rp_rc_idx').on('placement_allocations')
        .columns(['rp_uuid', 'resource_class', 'used']).execute();

      await db.schema.createTable('placement_resource_classes')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createTable('placement_traits')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();

      await db.schema.createTable('placement_provider_traits')
        .addColumn('rp_uuid', 'text', (c) => c.notNull())
        .addColumn('trait', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('placement_provider_traits_pk', ['rp_uuid', 'trait'])
        .execute();
      await db.schema.createIndex('placement_pt_trait_idx').on('placement_provider_traits').columns(['trait', 'rp_uuid']).execute();

      await db.schema.createTable('placement_provider_aggregates')
        .addColumn('rp_uuid', 'text', (c) => c.notNull())
        .addColumn('aggregate_uuid', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('placement_provider_aggregates_pk', ['rp_uuid', 'aggregate_uuid'])
        .execute();
      await db.schema.createIndex('placement_pa_agg_idx').on('placement_provider_aggregates')
        .columns(['aggregate_uuid', 'rp_uuid']).execute();
    },
  },
};
