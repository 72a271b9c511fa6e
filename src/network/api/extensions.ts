// The extensions this implementation really supports (clients probe this list).
const ext = (alias: string, name: string, description: string) => ({
  alias, name, description, updated: '2026-01-01T00:00:00-00:00', links: [],
});

export const EXTENSIONS = [
  ext('agent', 'agent', 'The agent management extension.'),
  ext('external-net', 'Neutron external network', 'Adds external network attribute to network resource.'),
  ext('router', 'Neutron L3 Router', 'Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external networks via a NAT gateway.'),
  ext('ext-gw-mode', 'Neutron L3 Configurable external gateway mode', 'Extension of the router abstraction for specifying whether SNAT should occur on the external gateway'),
  ext('extraroute', 'Neutron Extra Route', 'Extra routes configuration for L3 router'),
  ext('extraroute-atomic', 'Atomically add/remove extra routes', 'Edit extra routes of a router on server side by atomically adding/removing extra routes'),
  ext('security-group', 'security-group', 'The security groups extension.'),
  ext('quotas', 'Quota management support', 'Expose functions for quotas management per project'),
  ext('quota_details', 'Quota details management support', 'Expose functions for quotas usage statistics per project'),
  ext('provider', 'Provider Network', 'Expose mapping of virtual networks to physical networks'),
  ext('binding', 'Port Binding', 'Expose port bindings of a virtual port to external application'),
  ext('allowed-address-pairs', 'Allowed Address Pairs', 'Provides allowed address pairs'),
  ext('port-security', 'Port Security', 'Provides port security'),
  ext('rbac-policies', 'RBAC Policies', 'Allows creation and modification of policies that control tenant access to resources.'),
  ext('net-mtu', 'Network MTU', 'Provides MTU attribute for a network resource.'),
  ext('net-mtu-writable', 'Network MTU (writable)', 'Provides a writable MTU attribute for a network resource.'),
  ext('network_availability_zone', 'Network Availability Zone', 'Availability zone support for network.'),
  ext('router_availability_zone', 'Router Availability Zone', 'Availability zone support for router.'),
  ext('standard-attr-description', 'standard-attr-description', 'Extension to add descriptions to standard attributes'),
  ext('standard-attr-revisions', 'Resource revision numbers', 'This extension will display the revision number of neutron resources.'),
  ext('standard-attr-timestamp', 'Resource timestamps', 'Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes.'),
  ext('project-id', 'project_id field enabled', 'Extension that indicates that project_id field is enabled.'),
  ext('pagination', 'Pagination support', 'Extension that indicates that pagination is enabled.'),
  ext('sorting', 'Sorting support', 'Extension that indicates that sorting is enabled.'),
  ext('filter-validation', 'Filter parameters validation', 'Provides validation on filter parameters.'),
  ext('empty-string-filtering', 'Empty String Filtering Extension', 'Allow filtering by attributes with empty string value'),
  ext('ip-substring-filtering', 'IP address substring filtering', 'Provides IP address substring filtering when listing ports'),
];
