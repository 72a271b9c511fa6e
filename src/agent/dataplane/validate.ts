// Checks the desired state before anything touches the host: names and addresses end up in
// device names, namespace names and firewall text, so anything malformed is refused (and
// reported) rather than applied. Returns the state with the bad items left out.
import { isIP } from 'node:net';
import type { HostNetworkState } from './model.js';

const ID = /^[0-9a-f][0-9a-f-]{0,63}$/i;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const TAP = /^tap[0-9a-z-]{1,11}$/i;
const ipOk = (ip: string) => isIP(ip) !== 0;
export function cidrOk(c: string): boolean {
  const [ip, len, extra] = c.split('/');
  if (extra !== undefined || !ipOk(ip)) return false;
  if (len === undefined) return true;
  const n = Number(len);
  return /^\d+$/.test(len) && n <= (isIP(ip) === 4 ? 32 : 128);
}

export function validateState(state: HostNetworkState, errors: string[]): HostNetworkState {
  const bad = (what: string) => { errors.push(what); return false; };
  const networks = state.networks.filter((n) =>
    (ID.test(n.id) || bad(`network ${n.id}: bad id`)) &&
    (Number.isInteger(n.mtu) && n.mtu >= 576 && n.mtu <= 9000 || bad(`network ${n.id}: bad mtu ${n.mtu}`)) &&
    (n.segmentationType === 'flat' || (Number.isInteger(n.segmentationId) && n.segmentationId! >= 1 &&
      n.segmentationId! <= (n.segmentationType === 'vlan' ? 4094 : 16777215)) || bad(`network ${n.id}: bad segmentation id`)) &&
    (n.segmentationType === 'vxlan' || typeof n.physicalNetwork === 'string' || bad(`network ${n.id}: no physical network`)));
  const netIds = new Set(networks.map((n) => n.id));
  const subnets = state.subnets.filter((s) =>
    (netIds.has(s.networkId) || bad(`subnet ${s.id}: unknown network ${s.networkId}`)) &&
    (cidrOk(s.cidr) && s.cidr.includes('/') || bad(`subnet ${s.id}: bad cidr ${s.cidr}`)) &&
    (s.gatewayIp === null || ipOk(s.gatewayIp) || bad(`subnet ${s.id}: bad gateway`)) &&
    (s.dnsNameservers.every(ipOk) || bad(`subnet ${s.id}: bad DNS server`)) &&
    (s.hostRoutes.every((r) => cidrOk(r.destination) && ipOk(r.nexthop)) || bad(`subnet ${s.id}: bad host route`)));
  const subnetIds = new Set(subnets.map((s) => s.id));
  const seenTaps = new Set<string>();
  const ports = state.ports.filter((p) =>
    (ID.test(p.id) || bad(`port ${p.id}: bad id`)) &&
    (netIds.has(p.networkId) || bad(`port ${p.id}: unknown network ${p.networkId}`)) &&
    (MAC.test(p.macAddress) || bad(`port ${p.id}: bad MAC ${p.macAddress}`)) &&
    (TAP.test(p.tapName) && !seenTaps.has(p.tapName) || bad(`port ${p.id}: bad or duplicate tap name ${p.tapName}`)) &&
    (p.fixedIps.every((f) => ipOk(f.ipAddress) && subnetIds.has(f.subnetId)) || bad(`port ${p.id}: bad fixed IP`)) &&
    (p.allowedAddressPairs.every((a) => cidrOk(a.ipAddress) && (!a.macAddress || MAC.test(a.macAddress))) || bad(`port ${p.id}: bad address pair`)) &&
    !!seenTaps.add(p.tapName));
  const securityGroups = state.securityGroups.map((g) => ({ ...g, rules: g.rules.filter((r) =>
    ((r.remoteIpPrefix === null || cidrOk(r.remoteIpPrefix)) && (r.remoteGroupIps ?? []).every(cidrOk) &&
      (r.portRangeMin === null || Number.isInteger(r.portRangeMin)) && (r.portRangeMax === null || Number.isInteger(r.portRangeMax)))
    || bad(`security group rule ${r.id}: bad peer or port range`)) }));
  const routers = state.routers.filter((r) => ID.test(r.id) || bad(`router ${r.id}: bad id`));
  const floatingIps = state.floatingIps.filter((f) =>
    (ipOk(f.floatingIpAddress) && ipOk(f.fixedIpAddress)) || bad(`floating IP ${f.id}: bad address`));
  const dhcpReservations = (state.dhcpReservations ?? []).filter((r) =>
    (MAC.test(r.macAddress) && r.fixedIps.every((f) => ipOk(f.ipAddress))) || bad(`DHCP reservation ${r.portId}: bad MAC or IP`));
  const vxlanPeers = state.vxlanPeers.filter((p) => isIP(p.underlayIp) === 4 || bad(`peer ${p.hostId}: bad underlay IP`));
  const underlayIp = state.underlayIp === null || isIP(state.underlayIp) === 4 ? state.underlayIp : (bad('bad underlay IP'), null);
  return { ...state, underlayIp, vxlanPeers, dhcpReservations, networks, subnets, ports, securityGroups, routers, floatingIps };
}
