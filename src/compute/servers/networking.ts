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
  /** Nova's `addresses`: network name → [{addr, version, OS-EXT-IPS:type, OS-EXT-IPS-MAC:mac_addr}]. */
  addresses(serverId: string): Promise<Record<string, unknown[]>>;
}
