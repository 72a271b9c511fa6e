// The database: Kysely over SQLite (better-sqlite3, WAL; the embedded default) or PostgreSQL.
//
// Conventions every service store follows, so one schema works on both engines:
//   - ids and names are `text`; timestamps are ISO-8601 `text` (they sort as strings);
//   - booleans are `integer` 0/1 (better-sqlite3 cannot bind JS booleans): use toDbBool/fromDbBool;
//   - structured values (extra attributes, lists) are JSON in `text`: use toJson/fromJson;
//   - a service only touches tables prefixed with its own name (identity_*, image_*, ...).
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import {
  Kysely, Migrator, PostgresDialect, SqliteDialect, sql,
  type Migration, type MigrationProvider,
} from 'kysely';

// int8 (count(*), bigint columns) as a JS number rather than a string.
pg.types.setTypeParser(20, (v) => Number(v));

export type Engine = 'sqlite' | 'postgres';

export interface Database {
  /** Untyped handle; each store narrows it to its own table interface. */
  kysely: Kysely<any>;
  engine: Engine;
  url: string;
  close(): Promise<void>;
}

export function defaultDatabaseUrl(dataDir: string): string {
  return `sqlite:${join(dataDir, 'stratus.db')}`;
}

export async function openDatabase(url: string): Promise<Database> {
  if (/^postgres(ql)?:\/\//.test(url)) {
    const pool = new pg.Pool({ connectionString: url, max: 10 });
    // An idle client dying (server restart, admin termination) must not crash the process: the
    // pool drops it and connects afresh on the next query. Without a listener it is uncaught.
    pool.on('error', () => { /* the pool already discarded the client */ });
    const kysely = new Kysely<any>({ dialect: new PostgresDialect({ pool }) });
    await sql`select 1`.execute(kysely); // fail early with a clear error when unreachable
    return { kysely, engine: 'postgres', url, close: () => kysely.destroy() };
  }
  const path = url.replace(/^sqlite:(\/\/)?/, '');
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const sqlite = new SQLite(path);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  const kysely = new Kysely<any>({ dialect: new SqliteDialect({ database: sqlite }) });
  return { kysely, engine: 'sqlite', url, close: () => kysely.destroy() };
}

/** Migrations of one service, keyed by a sortable name ("0001_init", "0002_tags", ...). */
export type ServiceMigrations = Record<string, Migration>;

/**
 * Applies every service's pending migrations. Names are recorded as "<service>/<name>" in one
 * table; services evolve independently, so the global order only needs to hold per service.
 */
export async function migrate(db: Database, byService: Record<string, ServiceMigrations>): Promise<string[]> {
  const all: Record<string, Migration> = {};
  for (const [service, migrations] of Object.entries(byService)) {
    for (const [name, m] of Object.entries(migrations)) all[`${service}/${name}`] = m;
  }
  const provider: MigrationProvider = { getMigrations: async () => all };
  const migrator = new Migrator({
    db: db.kysely,
    provider,
    migrationTableName: 'stratus_migrations',
    migrationLockTableName: 'stratus_migrations_lock',
    allowUnorderedMigrations: true,
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/** An id for an `integer`/`serial` column, or undefined when `ref` is no such number (PostgreSQL refuses values past 2^31-1). */
export function dbIntegerId(ref: string | number): number | undefined {
  const n = typeof ref === 'number' ? ref : /^\d{1,10}$/.test(ref) ? Number(ref) : NaN;
  return Number.isInteger(n) && n >= 0 && n <= 2147483647 ? n : undefined;
}
export const toDbBool = (b: boolean | undefined | null): number => (b ? 1 : 0);
export const fromDbBool = (v: unknown): boolean => v === true || v === 1 || v === '1' || v === 't';
export const toJson = (v: unknown): string => JSON.stringify(v ?? null);
export function fromJson<T>(v: unknown, fallback: T): T {
  if (v === null || v === undefined || v === '') return fallback;
  try {
    return JSON.parse(String(v)) as T;
  } catch {
    return fallback;
  }
}

/** True when `e` is a unique-constraint violation on either engine. */
export function isUniqueViolation(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  return err?.code === '23505' || err?.code === 'SQLITE_CONSTRAINT_UNIQUE' ||
    err?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || /UNIQUE constraint failed/.test(err?.message ?? '');
}
