// Default compute policy (Nova's rule names, so an operator's Nova policy overrides apply).
// Built on the shared base rules of src/core/policy.ts.
import type { PolicyEngine } from '../core/policy.js';

const ADMIN = 'rule:admin';
const READER = 'rule:project_reader_or_admin';
const MEMBER = 'rule:project_member_or_admin';
const ANYONE = '@';

export const COMPUTE_POLICY: Record<string, string> = {
  // flavors: everyone lists and reads what they may see; only admins manage
  'os_compute_api:os-flavor-manage:create': ADMIN,
  'os_compute_api:os-flavor-manage:update': ADMIN,
  'os_compute_api:os-flavor-manage:delete': ADMIN,
  'os_compute_api:os-flavor-extra-specs:index': ANYONE,
  'os_compute_api:os-flavor-extra-specs:show': ANYONE,
  'os_compute_api:os-flavor-extra-specs:create': ADMIN,
  'os_compute_api:os-flavor-extra-specs:update': ADMIN,
  'os_compute_api:os-flavor-extra-specs:delete': ADMIN,
  'os_compute_api:os-flavor-access': ADMIN,
  'os_compute_api:os-flavor-access:add_tenant_access': ADMIN,
  'os_compute_api:os-flavor-access:remove_tenant_access': ADMIN,
  // keypairs belong to users
  'os_compute_api:os-keypairs:index': 'rule:admin or user_id:%(user_id)s',
  'os_compute_api:os-keypairs:show': 'rule:admin or user_id:%(user_id)s',
  'os_compute_api:os-keypairs:create': 'rule:admin or user_id:%(user_id)s',
  'os_compute_api:os-keypairs:delete': 'rule:admin or user_id:%(user_id)s',
  // quotas and limits
  'os_compute_api:limits': ANYONE,
  'os_compute_api:limits:other_project': ADMIN,
  'os_compute_api:os-quota-sets:show': READER,
  'os_compute_api:os-quota-sets:detail': READER,
  'os_compute_api:os-quota-sets:defaults': ANYONE,
  'os_compute_api:os-quota-sets:update': ADMIN,
  'os_compute_api:os-quota-sets:delete': ADMIN,
  'os_compute_api:os-quota-class-sets:show': ADMIN,
  'os_compute_api:os-quota-class-sets:update': ADMIN,
  // zones, aggregates, services, hypervisors
  'os_compute_api:os-availability-zone:list': ANYONE,
  'os_compute_api:os-availability-zone:detail': ADMIN,
  'os_compute_api:os-aggregates:index': ADMIN,
  'os_compute_api:os-aggregates:show': ADMIN,
  'os_compute_api:os-aggregates:create': ADMIN,
  'os_compute_api:os-aggregates:update': ADMIN,
  'os_compute_api:os-aggregates:delete': ADMIN,
  'os_compute_api:os-aggregates:add_host': ADMIN,
  'os_compute_api:os-aggregates:remove_host': ADMIN,
  'os_compute_api:os-aggregates:set_metadata': ADMIN,
  'os_compute_api:os-services:list': ADMIN,
  'os_compute_api:os-services:update': ADMIN,
  'os_compute_api:os-services:delete': ADMIN,
  'os_compute_api:os-hypervisors:list': ADMIN,
  'os_compute_api:os-hypervisors:list-detail': ADMIN,
  'os_compute_api:os-hypervisors:show': ADMIN,
  'os_compute_api:os-hypervisors:statistics': ADMIN,
  'os_compute_api:os-hypervisors:servers': ADMIN,
  'os_compute_api:os-hypervisors:search': ADMIN,
  'os_compute_api:os-hypervisors:uptime': ADMIN,
  // server groups
  'os_compute_api:os-server-groups:index': READER,
  'os_compute_api:os-server-groups:index:all_projects': ADMIN,
  'os_compute_api:os-server-groups:show': READER,
  'os_compute_api:os-server-groups:create': MEMBER,
  'os_compute_api:os-server-groups:delete': MEMBER,
  // usage
  'os_compute_api:os-simple-tenant-usage:list': ADMIN,
  'os_compute_api:os-simple-tenant-usage:show': READER,
};

export function registerComputePolicy(policy: PolicyEngine): void {
  policy.registerDefaults(COMPUTE_POLICY);
}
