// Tables of the image service (image_*). Conventions: src/core/db.ts.
import type { Kysely } from 'kysely';
import type { ServiceMigrations } from '../core/db.js';

export const migrations: ServiceMigrations = {
  '0001_init': {
    async up(db: Kysely<any>) {
      await db.schema.createTable('image_images')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text')
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('visibility', 'text', (c) => c.notNull())
        .addColumn('protected', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('os_hidden', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('owner', 'text')
        .addColumn('checksum', 'text')
        .addColumn('os_hash_algo', 'text')
        .addColumn('os_hash_value', 'text')
        .addColumn('size', 'bigint')
        .addColumn('virtual_size', 'bigint')
        .addColumn('min_disk', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('min_ram', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('disk_format', 'text')
        .addColumn('container_format', 'text')
        // Comma-separated ids of the stores holding the data (Glance's `stores` attribute).
        .addColumn('stores', 'text', (c) => c.notNull().defaultTo(''))
        // Bytes waiting in the staging area (glance-direct), counted against image_stage_total.
        .addColumn('staged_size', 'bigint')
        // Import in progress: JSON {method, stores, ...}; resumed after a restart.
        .addColumn('pending_import', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('image_images_owner').on('image_images').column('owner').execute();
      await db.schema.createIndex('image_images_status').on('image_images').column('status').execute();
      await db.schema.createTable('image_properties')
        .addColumn('image_id', 'text', (c) => c.notNull().references('image_images.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('image_properties_pk', ['image_id', 'name'])
        .execute();
      await db.schema.createTable('image_tags')
        .addColumn('image_id', 'text', (c) => c.notNull().references('image_images.id').onDelete('cascade'))
        .addColumn('tag', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('image_tags_pk', ['image_id', 'tag'])
        .execute();
      await db.schema.createTable('image_members')
        .addColumn('image_id', 'text', (c) => c.notNull().references('image_images.id').onDelete('cascade'))
        .addColumn('member_id', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('image_members_pk', ['image_id', 'member_id'])
        .execute();
      await db.schema.createIndex('image_members_member').on('image_members').column('member_id').execute();
    },
    async down(db: Kysely<any>) {
      for (const t of ['image_members', 'image_tags', 'image_properties', 'image_images']) {
        await db.schema.dropTable(t).ifExists().execute();
      }
    },
  },
};
