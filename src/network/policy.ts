// Default policy of the networking service (Neutron's rule names). Readers read their project,
// members write it, admins everything. Shared and RBAC-visible networks are presented to the
// rules with the caller's project as `project_id`, so the same reader rule covers them.
const R = 'rule:project_reader_or_admin';
const W = 'rule:project_member_or_admin';
const A = 'rule:admin';

const crud = (res: string, extra: Record<string, string> = {}) => ({
  [`create_${res}`]: W, [`get_${res}`]: R, [`update_${res}`]: W, [`delete_${res}`]: W, ...extra,
});

export const NETWORK_POLICY: Record<string, string> = {
  network_owner: `rule:admin or (role:member and project_id:%(network_project_id)s)`,
  ...crud('network', {
    'create_network:shared': A, 'create_network:router:external': A, 'create_network:provider': A,
    'update_network:shared': A, 'update_network:router:external': A, 'update_network:provider': A,
    'get_network:provider': A,
  }),
  ...crud('subnet', { create_subnet: 'rule:network_owner' }),
  ...crud('port', {
    // Network owners see the ports others made on their networks.
    get_port: `${R} or (role:reader and project_id:%(network_project_id)s)`,
    'create_port:mac_address': 'rule:network_owner', 'create_port:fixed_ips:ip_address': 'rule:network_owner',
    'update_port:mac_address': A, 'update_port:fixed_ips:ip_address': 'rule:network_owner',
    'create_port:binding:host_id': A, 'create_port:binding:profile': A,
    'update_port:binding:host_id': A, 'update_port:binding:profile': A,
    'get_port:binding': A,
  }),
  ...crud('router', {
    add_router_interface: W, remove_router_interface: W,
    'update_router:external_gateway_info:enable_snat': A,
    'update_router:external_gateway_info:external_fixed_ips': A,
  }),
  ...crud('floatingip', { 'create_floatingip:floating_ip_address': A }),
  ...crud('security_group'),
  ...crud('security_group_rule'),
  ...crud('rbac_policy', { 'create_rbac_policy:target_tenant': A }),
  get_quota: R, update_quota: A, delete_quota: A,
  get_agent: A, update_agent: A,
};
