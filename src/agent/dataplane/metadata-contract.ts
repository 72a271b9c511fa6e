// The contract between the metadata proxies (one per router namespace, started by the data plane)
// and whatever answers on the metadata socket (the controller's metadata API, directly or through
// the agent). The proxy tells WHO asks: the guest's source address and the router (or network)
// it came through; the controller resolves that to the port (the port on one of the router's
// subnets holding that fixed IP) and so to the instance. Anti-spoofing guarantees the source
// address; the proxy drops any X-Stratus-* / X-Forwarded-For header the guest sent; the HMAC
// proves the headers were set by a proxy holding the shared secret (like Neutron's
// X-Instance-ID-Signature), so nothing else that can reach the socket can impersonate a guest.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const H_FORWARDED_FOR = 'x-forwarded-for';
export const H_ROUTER_ID = 'x-stratus-router-id';
export const H_NETWORK_ID = 'x-stratus-network-id';
export const H_SIGNATURE = 'x-stratus-metadata-signature';

/** Who asks: the guest IP, seen through a router (or a network's DHCP namespace). */
export interface MetadataRequester {
  ip: string;
  routerId?: string;
  networkId?: string;
}

/** The signed string: "router:<id>\n<ip>" or "network:<id>\n<ip>". */
export function signedPayload(r: MetadataRequester): string {
  return r.routerId ? `router:${r.routerId}\n${r.ip}` : `network:${r.networkId}\n${r.ip}`;
}

/** The headers a proxy adds (lower-case names). */
export function signRequester(r: MetadataRequester, secret: string): Record<string, string> {
  const h: Record<string, string> = { [H_FORWARDED_FOR]: r.ip };
  if (r.routerId) h[H_ROUTER_ID] = r.routerId;
  else h[H_NETWORK_ID] = r.networkId!;
  h[H_SIGNATURE] = createHmac('sha256', secret).update(signedPayload(r)).digest('hex');
  return h;
}

/** For the controller: the verified requester of a proxied request, or null (missing or bad signature). */
export function verifyRequester(headers: Record<string, string | string[] | undefined>, secret: string): MetadataRequester | null {
  const one = (k: string) => { const v = headers[k]; return typeof v === 'string' ? v : undefined; };
  const ip = one(H_FORWARDED_FOR), routerId = one(H_ROUTER_ID), networkId = one(H_NETWORK_ID), sig = one(H_SIGNATURE);
  if (!ip || !sig || (!routerId === !networkId) || ip.includes(',')) return null;
  const r: MetadataRequester = routerId ? { ip, routerId } : { ip, networkId };
  const want = Buffer.from(createHmac('sha256', secret).update(signedPayload(r)).digest('hex'));
  const got = Buffer.from(sig);
  return got.length === want.length && timingSafeEqual(got, want) ? r : null;
}
