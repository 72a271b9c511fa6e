// IP address arithmetic for IPAM: parsing and formatting IPv4/IPv6, CIDRs, allocation pools.
// Addresses are BigInts so that one code path serves both families.

export type IpVersion = 4 | 6;

export interface Ip {
  version: IpVersion;
  value: bigint;
}

export interface Cidr {
  version: IpVersion;
  network: bigint;
  prefix: number;
}

export interface Pool {
  start: string;
  end: string;
}

const BITS: Record<IpVersion, number> = { 4: 32, 6: 128 };

export function parseIp(text: string): Ip | undefined {
  if (typeof text !== 'string') return undefined;
  if (text.includes(':')) {
    const v = parseV6(text);
    return v === undefined ? undefined : { version: 6, value: v };
  }
  const v = parseV4(text);
  return v === undefined ? undefined : { version: 4, value: v };
}

function parseV4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p.startsWith('0'))) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseV6(text: string): bigint | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(text)) return undefined;
  let head = text;
  let tail4: bigint | undefined;
  // Embedded IPv4 tail (::ffff:1.2.3.4).
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    tail4 = parseV4(text.slice(lastColon + 1));
    if (tail4 === undefined) return undefined;
    head = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const halves = head.split('::');
  if (halves.length > 2) return undefined;
  const groups = (s: string) => (s === '' ? [] : s.split(':'));
  const left = groups(halves[0]!);
  const right = halves.length === 2 ? groups(halves[1]!) : [];
  const missing = 8 - left.length - right.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [...left, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...right];
  let v = 0n;
  for (const g of all) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    v = (v << 16n) | BigInt(parseInt(g, 16));
  }
  if (tail4 !== undefined) v = (v & ~0xffffffffn) | tail4;
  return v;
}

export function formatIp(version: IpVersion, value: bigint): string {
  if (version === 4) {
    return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 255n)).join('.');
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on ties.
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** Canonical text of an address (compressed IPv6), or undefined when invalid. */
export function normalizeIp(text: string): string | undefined {
  const ip = parseIp(text);
  return ip && formatIp(ip.version, ip.value);
}

/** Parses "addr/prefix"; `strict` refuses host bits (Neutron does for subnet CIDRs). */
export function parseCidr(text: string, strict = true): Cidr | undefined {
  if (typeof text !== 'string') return undefined;
  const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(text.trim());
  if (!m) return undefined;
  const ip = parseIp(m[1]!);
  if (!ip) return undefined;
  const bits = BITS[ip.version];
  const prefix = m[2] === undefined ? bits : Number(m[2]);
  if (prefix > bits) return undefined;
  const mask = prefixMask(ip.version, prefix);
  const network = ip.value & mask;
  if (strict && network !== ip.value) return undefined;
  return { version: ip.version, network, prefix };
}

export function prefixMask(version: IpVersion, prefix: number): bigint {
  const bits = BITS[version];
  return ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - prefix)) - 1n);
}

export function cidrLast(c: Cidr): bigint {
  return c.network | ((1n << BigInt(BITS[c.version] - c.prefix)) - 1n);
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.version, c.network)}/${c.prefix}`;
}

export function cidrContains(c: Cidr, ip: Ip): boolean {
  return ip.version === c.version && ip.value >= c.network && ip.value <= cidrLast(c);
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return a.version === b.version && a.network <= cidrLast(b) && b.network <= cidrLast(a);
}

/** Addresses usable by hosts: IPv4 skips network and broadcast (except /31, /32); IPv6 skips the anycast ::0. */
export function usableRange(c: Cidr): [bigint, bigint] {
  const last = cidrLast(c);
  if (c.version === 4) {
    if (c.prefix >= 31) return [c.network, last];
    return [c.network + 1n, last - 1n];
  }
  if (c.prefix === 128) return [c.network, last];
  return [c.network + 1n, last];
}

/** The default allocation pools: the usable range minus the gateway. */
export function defaultPools(c: Cidr, gateway?: bigint): Pool[] {
  const [first, last] = usableRange(c);
  const ranges: Array<[bigint, bigint]> = [];
  if (gateway === undefined || gateway < first || gateway > last) ranges.push([first, last]);
  else {
    if (gateway > first) ranges.push([first, gateway - 1n]);
    if (gateway < last) ranges.push([gateway + 1n, last]);
  }
  return ranges.map(([s, e]) => ({ start: formatIp(c.version, s), end: formatIp(c.version, e) }));
}

export interface ParsedPool { start: bigint; end: bigint }

/** Validates explicit pools against the subnet: inside it, ordered, not overlapping, not holding the gateway. */
export function validatePools(c: Cidr, pools: Pool[], gateway?: bigint): ParsedPool[] | string {
  const [first, last] = usableRange(c);
  const parsed: ParsedPool[] = [];
  for (const p of pools) {
    const s = parseIp(p.start), e = parseIp(p.end);
    if (!s || !e || s.version !== c.version || e.version !== c.version) {
      return `Invalid allocation pool ${p.start}-${p.end}.`;
    }
    if (s.value > e.value) return `Invalid allocation pool ${p.start}-${p.end}: start is after end.`;
    if (s.value < first || e.value > last) {
      return `The allocation pool ${p.start}-${p.end} spans beyond the subnet cidr ${formatCidr(c)}.`;
    }
    if (gateway !== undefined && gateway >= s.value && gateway <= e.value) {
      return `Gateway ip ${formatIp(c.version, gateway)} conflicts with allocation pool ${p.start}-${p.end}.`;
    }
    parsed.push({ start: s.value, end: e.value });
  }
  const sorted = [...parsed].sort((a, b) => (a.start < b.start ? -1 : 1));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.start <= sorted[i - 1]!.end) return 'Found overlapping allocation pools.';
  }
  return parsed;
}

export function poolsOf(version: IpVersion, pools: Pool[]): ParsedPool[] {
  return pools.map((p) => ({ start: parseIp(p.start)!.value, end: parseIp(p.end)!.value }))
    .sort((a, b) => (a.start < b.start ? -1 : 1));
}

/**
 * Up to `count` free addresses from the pools, lowest first, skipping `used`. Walks the pools
 * instead of materializing them, so a /8 costs no more than its used addresses.
 */
export function freeAddresses(pools: ParsedPool[], used: Set<bigint>, count: number): bigint[] {
  const out: bigint[] = [];
  for (const p of pools) {
    for (let a = p.start; a <= p.end && out.length < count; a++) {
      if (!used.has(a)) out.push(a);
    }
    if (out.length >= count) break;
  }
  return out;
}

export function inPools(pools: ParsedPool[], value: bigint): boolean {
  return pools.some((p) => value >= p.start && value <= p.end);
}

/** EUI-64 address of a MAC in a /64 (SLAAC). */
export function eui64(c: Cidr, mac: string): bigint {
  const b = mac.split(':').map((x) => parseInt(x, 16));
  const iid = [b[0]! ^ 0x02, b[1]!, b[2]!, 0xff, 0xfe, b[3]!, b[4]!, b[5]!]
    .reduce((acc, x) => (acc << 8n) | BigInt(x), 0n);
  return c.network | iid;
}

export function randomMac(prefix = 'fa:16:3e'): string {
  const tail = Array.from({ length: 3 }, () => Math.floor(Math.random() * 256).toString(16).padStart(2, '0'));
  return `${prefix}:${tail.join(':')}`;
}

export function isValidMac(mac: string): boolean {
  return /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(mac) && (parseInt(mac.slice(0, 2), 16) & 1) === 0 &&
    mac !== '00:00:00:00:00:00';
}
