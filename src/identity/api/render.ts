// Rows to Keystone's JSON shapes.
import { bool, fromJson, type DomainRow, type EndpointRow, type GroupRow, type ProjectRow, type RegionRow, type RoleRow, type ServiceRow, type UserRow } from '../store.js';
import { ksTime } from '../service.js';
import { withLinks, type Deps } from './common.js';

const extra = (s: string) => fromJson<Record<string, unknown>>(s, {});

export const renderDomain = (d: Deps, r: DomainRow) => withLinks(d, 'domains', r.id, {
  ...extra(r.extra), id: r.id, name: r.name, description: r.description, enabled: bool(r.enabled),
  tags: fromJson<string[]>(r.tags, []), options: {},
});

export const renderProject = (d: Deps, r: ProjectRow) => withLinks(d, 'projects', r.id, {
  ...extra(r.extra), id: r.id, name: r.name, domain_id: r.domain_id,
  // Keystone: a top-level project's parent is its domain.
  parent_id: r.parent_id ?? r.domain_id, description: r.description, enabled: bool(r.enabled), is_domain: false,
  tags: fromJson<string[]>(r.tags, []), options: {},
});

export const renderUser = (d: Deps, r: UserRow) => withLinks(d, 'users', r.id, {
  ...extra(r.extra), id: r.id, name: r.name, domain_id: r.domain_id, enabled: bool(r.enabled),
  password_expires_at: r.password_expires_at ? ksTime(r.password_expires_at) : null,
  options: fromJson<Record<string, unknown>>(r.options, {}),
  ...(r.default_project_id ? { default_project_id: r.default_project_id } : {}),
  ...(r.description ? { description: r.description } : {}),
  ...(r.email ? { email: r.email } : {}),
});

export const renderGroup = (d: Deps, r: GroupRow) => withLinks(d, 'groups', r.id, {
  ...extra(r.extra), id: r.id, name: r.name, domain_id: r.domain_id, description: r.description,
});

export const renderRole = (d: Deps, r: RoleRow) => withLinks(d, 'roles', r.id, {
  ...extra(r.extra), id: r.id, name: r.name, domain_id: r.domain_id || null, description: r.description || null,
  options: fromJson<Record<string, unknown>>(r.options, {}),
});

export const renderRegion = (d: Deps, r: RegionRow) => withLinks(d, 'regions', r.id, {
  ...extra(r.extra), id: r.id, description: r.description, parent_region_id: r.parent_region_id,
});

export const renderService = (d: Deps, r: ServiceRow) => withLinks(d, 'services', r.id, {
  ...extra(r.extra), id: r.id, type: r.type, name: r.name, description: r.description, enabled: bool(r.enabled),
});

export const renderEndpoint = (d: Deps, r: EndpointRow) => withLinks(d, 'endpoints', r.id, {
  ...extra(r.extra), id: r.id, interface: r.interface, region: r.region_id, region_id: r.region_id,
  service_id: r.service_id, url: r.url, enabled: bool(r.enabled),
});
