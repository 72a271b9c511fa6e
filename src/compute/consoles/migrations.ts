// The console tokens table (compute_console_tokens): one row per remote console URL handed out.
import type { Migration } from 'kysely';
import type { ServiceMigrations } from '../../core/db.js';

const m1100: Migration = {
  async up(db) {
    await db.schema.createTable('compute_console_tokens')
      // sha256 of the token: the token itself is only in the URL given to the caller.
      .addColumn('token_hash', 'text', (c) => c.primaryKey())
      .addColumn('instance_id', 'text', (c) => c.notNull())
      .addColumn('project_id', 'text', (c) => c.notNull())
      .addColumn('console_type', 'text', (c) => c.notNull())
      // Where the VNC server was when the token was made (shown by os-console-auth-tokens): the
      // agent's host and a TCP port, or the host and a unix socket path (internal_access_path).
      .addColumn('host', 'text', (c) => c.notNull())
      .addColumn('port', 'integer')
      .addColumn('internal_access_path', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('compute_console_tokens_instance').on('compute_console_tokens').column('instance_id').execute();
    await db.schema.createIndex('compute_console_tokens_expires').on('compute_console_tokens').column('expires_at').execute();
  },
  async down(db) {
    await db.schema.dropTable('compute_console_tokens').ifExists().execute();
  },
};

export const consoleMigrations: ServiceMigrations = { '1100_console_tokens': m1100 };
