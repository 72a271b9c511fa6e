// The desired state of ONE host's network: plain typed data, no behaviour.
//
// The controller (network service) computes this for each host from the Neutron API state and
// the agent hands it to the data-plane driver's `converge()`, which makes the host match it and
// removes whatever Stratus made that is no longer in it. Everything here is what the host needs
// and nothing it must look up elsewhere: security-group remote groups arrive already resolved to
// member IPs, floating IPs arrive with their router and fixed IP, and so on.
//
// Conventions: ids are the Neutron UUIDs; IPs are strings in the usual text form; CIDRs are
// "a.b.c.d/n". Lists are sets: their order carries no meaning.

/** The whole desired state of one host's data plane. */
export interface HostNetworkState {
  /** This host's id (the agent's host name); informational, used in logs and reports. */
  hostId: string;
  /**
   * This host's VXLAN tunnel endpoint (underlay) IPv4 address. On an all-in-one or test
   * machine it lives on the Stratus underlay namespace's bridge (e.g. 172.16.255.1, .2, ... one
   * per agent: see docs/dataplane.md); it must never be the machine's uplink address.
   * null: this host sends no VXLAN traffic (a single host needs none). Used only when the agent's
   * data plane has an underlay configured; without one, VXLAN networks stay local to the host.
   */
  underlayIp: string | null;
  /** The other hosts that carry VXLAN networks this host also carries (Neutron's l2pop flood list). */
  vxlanPeers: VxlanPeer[];
  /** Networks that have at least one port on this host (or a router/DHCP served here). */
  networks: NetworkSpec[];
  /** The subnets of those networks. */
  subnets: SubnetSpec[];
  /**
   * Ports bound to this host: guest NICs (device_owner `compute:*`), DHCP ports
   * (`network:dhcp`: one per network whose subnets have DHCP, served from this host), router
   * interfaces (`network:router_interface`) and router gateways (`network:router_gateway`) of
   * routers hosted here. Floating-IP ports (`network:floatingip`) are not listed: they have no
   * device; see `floatingIps`.
   */
  ports: PortSpec[];
  /**
   * For each network whose DHCP port is on this host: every port of that network on ANY host
   * (dnsmasq here must answer guests elsewhere too, over VXLAN). Ports listed in `ports` may be
   * repeated here or left out: the DHCP server uses both lists.
   */
  dhcpReservations: DhcpReservation[];
  /** Every security group used by a port above, with its rules. */
  securityGroups: SecurityGroupSpec[];
  /** Routers hosted on this host (their namespace, NAT and metadata proxy live here). */
  routers: RouterSpec[];
  /** Floating IPs associated with a port and NATed by a router hosted here. */
  floatingIps: FloatingIpSpec[];
}

/** A MAC → fixed IPs pin for a network's DHCP server. */
export interface DhcpReservation {
  portId: string;
  networkId: string;
  macAddress: string;
  fixedIps: FixedIp[];
}

/** Another host's tunnel endpoint. */
export interface VxlanPeer {
  /** The peer's host id (informational). */
  hostId: string;
  /** The peer's underlay IPv4 address (where VXLAN packets for it are sent). */
  underlayIp: string;
  /** The networks (ids) that have ports on that host; only those get a flood entry towards it. */
  networkIds: string[];
}

export type SegmentationType = 'vxlan' | 'flat' | 'vlan';

/** A Neutron network as the host sees it. */
export interface NetworkSpec {
  id: string;
  /** Display name, informational. */
  name?: string;
  /** `provider:network_type`: tenant networks are vxlan; provider networks flat or vlan. */
  segmentationType: SegmentationType;
  /** `provider:segmentation_id`: the VNI (vxlan) or VLAN id (vlan); null for flat. */
  segmentationId: number | null;
  /**
   * `provider:physical_network`: for flat/vlan, the name the agent maps to a physical
   * attachment (its `physicalNetworks` setting; e.g. `public` → the provider namespace).
   * null for vxlan.
   */
  physicalNetwork: string | null;
  /** The network MTU (1450 for vxlan over a 1500 underlay; 1500 for flat/vlan). Applied to every device on it. */
  mtu: number;
  /** `router:external`: the network routers use as their gateway (floating IPs come from it). */
  external: boolean;
}

/** A route pushed to guests by DHCP (option 121) or installed in a router namespace. */
export interface RouteSpec {
  /** Destination CIDR. */
  destination: string;
  /** Next-hop IP address. */
  nexthop: string;
}

/** An IP allocation pool (inclusive). Informational for the data plane: DHCP only hands static leases. */
export interface AllocationPool {
  start: string;
  end: string;
}

/** A Neutron subnet. */
export interface SubnetSpec {
  id: string;
  networkId: string;
  ipVersion: 4 | 6;
  /** e.g. "10.0.0.0/24". */
  cidr: string;
  /** The gateway address given to guests (router interface address); null: no gateway. */
  gatewayIp: string | null;
  /** Whether this subnet is served by dnsmasq in the network's DHCP namespace. */
  enableDhcp: boolean;
  /** DNS servers handed out by DHCP (option 6); empty: none. */
  dnsNameservers: string[];
  /** Extra routes handed out by DHCP (option 121, with the default route included). */
  hostRoutes: RouteSpec[];
  /** Allocation pools (for reference; no dynamic range is ever served). */
  allocationPools: AllocationPool[];
  /**
   * No router serves metadata to this subnet (no router interface on it): the network's DHCP
   * namespace then serves 169.254.169.254 itself and DHCP pushes a host route to it via the DHCP
   * port (Neutron's enable_isolated_metadata). Optional; default false.
   */
  isolatedMetadata?: boolean;
  /**
   * IPv6 subnets: `ipv6_ra_mode` (who advertises: with "slaac" or "dhcpv6-stateless", the router
   * hosting this subnet's interface sends router advertisements for it) and `ipv6_address_mode`
   * (how guests get addresses; used when ra mode is unset). Optional; null/absent: none.
   */
  ipv6RaMode?: Ipv6Mode | null;
  ipv6AddressMode?: Ipv6Mode | null;
}

export type Ipv6Mode = 'slaac' | 'dhcpv6-stateless' | 'dhcpv6-stateful';

/** One fixed IP of a port. */
export interface FixedIp {
  subnetId: string;
  ipAddress: string;
}

/** An extra (IP, MAC) a port may send from (e.g. a VRRP address). */
export interface AllowedAddressPair {
  /** IP address or CIDR. */
  ipAddress: string;
  /** MAC; omitted/null means the port's own MAC. */
  macAddress?: string | null;
}

/** A Neutron port bound to this host. */
export interface PortSpec {
  id: string;
  networkId: string;
  /** The port's MAC ("fa:16:3e:..."). Guests must use it; DHCP pins its fixed IPs to it. */
  macAddress: string;
  fixedIps: FixedIp[];
  /** `device_owner`: "compute:<az>", "network:dhcp", "network:router_interface", "network:router_gateway". */
  deviceOwner: string;
  /** `device_id`: the server or router id (or "dhcp<host>" style for DHCP ports). */
  deviceId: string;
  /**
   * The host device of this port on the bridge: Neutron-style "tap" + the first 11 characters
   * of the port id (see `tapNameFor`). For a guest NIC, the hypervisor creates the tap with this
   * name (QEMU `-netdev tap,ifname=...`); for DHCP and router ports the data plane creates a veth
   * whose bridge end has this name.
   */
  tapName: string;
  /** `admin_state_up`: false keeps the port's device down (no traffic). */
  adminStateUp: boolean;
  /** `port_security_enabled`: false disables anti-spoofing and security groups on the port. */
  portSecurityEnabled: boolean;
  allowedAddressPairs: AllowedAddressPair[];
  /** Security groups applied to the port (ids into `HostNetworkState.securityGroups`). */
  securityGroupIds: string[];
}

export type Direction = 'ingress' | 'egress';
export type EtherType = 'IPv4' | 'IPv6';

/** A security group rule. Rules only allow; whatever no rule allows is dropped (stateful: replies pass). */
export interface SecurityGroupRuleSpec {
  id: string;
  /** ingress: towards the port; egress: from the port. */
  direction: Direction;
  ethertype: EtherType;
  /** null: any protocol; else a name ("tcp", "udp", "icmp", "icmpv6", ...) or an IP protocol number as a string. */
  protocol: string | null;
  /** tcp/udp: first port of the range; icmp: the ICMP type. null: any. */
  portRangeMin: number | null;
  /** tcp/udp: last port of the range; icmp: the ICMP code. null: any. */
  portRangeMax: number | null;
  /** The peer's address range (source for ingress, destination for egress); null: any (unless remote group). */
  remoteIpPrefix: string | null;
  /** The peer group; informational once resolved into `remoteGroupIps`. */
  remoteGroupId: string | null;
  /**
   * When `remoteGroupId` is set: the IPs (fixed IPs and allowed-address-pair addresses, of the
   * rule's ethertype) of every port in that group, cloud-wide, resolved by the controller. The
   * rule matches only these peers; an empty list matches nothing.
   */
  remoteGroupIps?: string[];
}

export interface SecurityGroupSpec {
  id: string;
  rules: SecurityGroupRuleSpec[];
}

/** A router's leg on a tenant subnet. */
export interface RouterInterfaceSpec {
  /** The `network:router_interface` port (in `ports`); its fixed IP on `subnetId` is the leg's address. */
  portId: string;
  subnetId: string;
}

/** A router's leg on the external network. */
export interface RouterGatewaySpec {
  /** The `network:router_gateway` port (in `ports`) on the external network. */
  portId: string;
  /** `enable_snat`: masquerade the router's subnets behind the gateway IP. */
  enableSnat: boolean;
}

export interface RouterSpec {
  id: string;
  /** External gateway; null: the router only routes between its subnets. */
  gateway: RouterGatewaySpec | null;
  interfaces: RouterInterfaceSpec[];
  /** `routes` (extra routes) installed in the router namespace. */
  routes: RouteSpec[];
}

/** A floating IP associated with a port: 1:1 DNAT (to the fixed IP) and SNAT (from it) in the router. */
export interface FloatingIpSpec {
  id: string;
  /** The public address, on the router's external network. */
  floatingIpAddress: string;
  floatingNetworkId: string;
  /** The router that NATs it (must have its gateway on `floatingNetworkId` and an interface on the port's subnet). */
  routerId: string;
  /** The associated port (may live on another host). */
  portId: string;
  /** The port's fixed IP the floating IP maps to. */
  fixedIpAddress: string;
}

/** Neutron's tap naming: "tap" + the first 11 characters of the port id (15 = IFNAMSIZ - 1). */
export function tapNameFor(portId: string): string {
  return ('tap' + portId).slice(0, 14);
}

/** An empty desired state: converging to it removes everything the data plane made on the host. */
export function emptyHostNetworkState(hostId: string): HostNetworkState {
  return { hostId, underlayIp: null, vxlanPeers: [], networks: [], subnets: [], ports: [], dhcpReservations: [],
    securityGroups: [], routers: [], floatingIps: [] };
}

/** What one `converge()` observed and did, for the agent to report to the controller. */
export interface ConvergeReport {
  /**
   * Port id → status: ACTIVE when the port's device is on its bridge (for a guest NIC: the
   * hypervisor's tap exists and was plugged), DOWN otherwise (e.g. the guest is not running yet).
   */
  ports: Record<string, 'ACTIVE' | 'DOWN'>;
  /** Number of changes made (0: the host already matched the desired state). */
  changes: number;
  /** What was changed, one line each (the commands run), for the agent's log. */
  actions?: string[];
  /** Problems that kept part of the state from being applied (the rest still was). */
  errors: string[];
}
