// Names of everything the data plane creates. Everything Stratus makes is recognizable by name,
// so that garbage collection only ever removes what matches these patterns, never foreign things.
import { createHash } from 'node:crypto';

/** Interface names are at most 15 characters (IFNAMSIZ - 1). */
const short = (id: string) => id.slice(0, 11);
const hash = (s: string, n: number) => createHash('sha256').update(s).digest('hex').slice(0, n);

export class Names {
  /** `prefix` scopes one agent's namespaces (default "stratus-"; a second agent on the same machine uses e.g. "stratus-h2-"). */
  constructor(readonly prefix: string) {
    if (!/^[a-z][a-z0-9-]{0,30}$/.test(prefix)) throw new Error(`bad data-plane prefix ${prefix}`);
  }
  /** The host's bridge namespace: bridges, guest taps, VXLAN devices, security groups. */
  get bridgeNs(): string { return `${this.prefix}br`; }
  dhcpNs(networkId: string): string { return `${this.prefix}qdhcp-${networkId}`; }
  routerNs(routerId: string): string { return `${this.prefix}qrouter-${routerId}`; }
  /** Which namespace names belong to this agent (exact patterns, so "stratus-" never matches "stratus-h2-..."). */
  ownsNs(name: string): boolean {
    const p = this.prefix.replace(/[-]/g, '\\-');
    return new RegExp(`^${p}(br|qdhcp-[0-9a-f-]{1,64}|qrouter-[0-9a-f-]{1,64})$`).test(name);
  }
  /** This agent's leg into a shared namespace (provider network or underlay); unique per agent + purpose. */
  sharedLeg(purpose: string): string { return `sx${hash(this.prefix + '|' + purpose, 8)}`; }
  /** The bridge-namespace end of a physical network's uplink (`.VID` suffixes stay within 15 chars). */
  physLeg(physnet: string): string { return `ph${hash(physnet, 6)}`; }
  get underlayLeg(): string { return 'ul0'; }
}

export const bridgeName = (networkId: string) => `brq${short(networkId)}`;
export const vxlanName = (vni: number) => `vxlan-${vni}`;
/** Namespace end of a DHCP port's veth. */
export const dhcpLeg = (portId: string) => `ns-${short(portId)}`;
/** Namespace ends of a router's interface / gateway veths. */
export const routerIfLeg = (portId: string) => `qr-${short(portId)}`;
export const routerGwLeg = (portId: string) => `qg-${short(portId)}`;
/** Security-group chains of a port (iptables chain names are at most 28 characters). */
export const ingressChain = (portId: string) => `sg-i-${short(portId)}`;
export const egressChain = (portId: string) => `sg-o-${short(portId)}`;
