// What a service module gives the server: its tables, its routes, its catalog entries, and
// optional start/stop for bootstrap work and reconcilers. server.ts composes them explicitly.
import type { StratusConfig } from './config.js';
import type { Database, ServiceMigrations } from './db.js';
import type { App } from './http.js';
import type { Logger } from './log.js';
import type { PolicyEngine } from './policy.js';

export interface ServiceContext {
  cfg: StratusConfig;
  db: Database;
  log: Logger;
  policy: PolicyEngine;
  /** Base URL clients reach this cloud at (http://host:port), known once the listener is bound. */
  baseUrl(): string;
}

/** One entry of the identity catalog: a service type and the path of its endpoint. */
export interface CatalogEntry {
  type: string;          // 'identity', 'image', 'compute', ...
  name: string;          // 'keystone', 'glance', ...
  description?: string;
  /** Appended to the base URL for the endpoint (e.g. '/identity/v3', '/compute/v2.1'). */
  path: string;
}

export interface ServiceModule {
  /** Short name; also the owner prefix of its tables (identity_*). */
  name: string;
  /** URL prefix its routes are mounted under ('/identity'). */
  prefix: string;
  migrations: ServiceMigrations;
  catalog: CatalogEntry[];
  /** Registers routes on an encapsulated Fastify scope already mounted at `prefix`. */
  routes(app: App): Promise<void>;
  /** Runs after migrations and once the listener is bound (bootstrap data, reconcilers). */
  start?(): Promise<void>;
  stop?(): Promise<void>;
}
