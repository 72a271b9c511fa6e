// What servers need from the networking service (set by server.ts once both exist): requested
// networks resolved and checked at create time, ports created/claimed and bound to the chosen
// host at build time, released at delete, and the server's addresses for its views.

/** One requested NIC, resolved at create time: a network (with an optional fixed IP) or a port the user brought. */
export interface RequestedNic {
  networkId?: string;
  portId?: string;
  fixedIp?: string;
}

/** A NIC as the host agent gets it (the port's MAC and tap name). */
export interface ServerNic {
  id: string;
  mac: string;
  tap: string;
  mtu?: number;
}

export interface ServerNetworking {
  /** `networks` of a create request → NICs; throws an OpenStack-shaped 4xx when they cannot be used. */
  resolve(projectId: string, networks: 'auto' | 'none' | unknown[], securityGroups?: string[]): Promise<RequestedNic[]>;
  /** Creates (or claims) the server's ports and binds them to `host`; idempotent (a retry re-binds). */
  plug(s: { id: string; projectId: string; host: string; availabilityZone: string | null; nics: RequestedNic[]; securityGroups?: string[] }): Promise<ServerNic[]>;
  /** Deletes the ports made for the server and detaches the ones the user brought. */
  release(serverId: string): Promise<void>;
  /** `server add/remove security group`: on every port of the server (name or id). */
  setSecurityGroup(projectId: string, serverId: string, group: string, add: boolean): Promise<void>;
  /** The project's security groups as Nova's os-security-groups proxy shows them (the CLI resolves names there). */
  securityGroups(projectId: string): Promise<{ id: string; name: string; description: string; tenant_id: string; rules: unknown[] }[]>;
  /** Interface attach: a new port on `netId` (or the user's port), bound to the server's host. */
  attach(s: { id: string; projectId: string; host: string; availabilityZone: string | null }, req: RequestedNic): Promise<ServerNic>;
  /** Interface detach: the port is deleted if compute made it, else only detached. */
  detach(serverId: string, portId: string): Promise<void>;
  /** os-interface views of the server's ports. */
  interfaces(serverId: string): Promise<InterfaceAttachment[]>;
  /** Networks as Nova's deprecated proxies (before 2.36) show them: the project's usable ones, or all (undefined). */
  networks(projectId: string | undefined): Promise<{ id: string; label: string; cidr: string | null }[]>;
  /** The project's use of network resources (network service names: floatingip, security_group, ...). */
  usage(projectId: string, resources: string[]): Promise<Record<string, number>>;
  /** Nova's `addresses`: network name → [{addr, version, OS-EXT-IPS:type, OS-EXT-IPS-MAC:mac_addr}]. */
  addresses(serverId: string): Promise<Record<string, unknown[]>>;
  /** The same for many servers at once (list views): server id → addresses; servers without ports are absent. */
  addressesOf(serverIds: string[]): Promise<Map<string, Record<string, unknown[]>>>;
  /** Nova's `security_groups` of many servers: server id → the names of the groups on its ports. */
  securityGroupsOf?(serverIds: string[]): Promise<Map<string, string[]>>;
  /**
   * Live migration: the server's ports are plugged on `dest` too until the switch-over (null: no
   * more, the move failed); `bind` then binds them to the host the guest runs on.
   */
  migrating?(serverId: string, dest: string | null): Promise<void>;
  bind?(serverId: string, host: string): Promise<void>;
  /** OpenStack network_data.json of the server's ports (config drive; the metadata service serves the same). */
  networkData?(serverId: string): Promise<Record<string, unknown>>;
}

export interface InterfaceAttachment {
  port_id: string;
  net_id: string;
  mac_addr: string;
  port_state: string;
  fixed_ips: { subnet_id: string; ip_address: string }[];
}
