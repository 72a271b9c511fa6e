// The test guest image (built by scripts/build-guest-image.sh, see docs/guest-image.md):
// where it is, and the markers its init prints on the serial console, parsed.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (this file runs from dist/src/agent/guest-image or src/agent/guest-image). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      readFileSync(join(dir, 'package.json'));
      return dir;
    } catch {
      dir = dirname(dir);
    }
  }
  throw new Error('cannot find the repository root from ' + fileURLToPath(import.meta.url));
}

export const GUEST_LOGIN_USER = 'stratus';
export const MARKER_PREFIX = 'STRATUS-GUEST: ';

/** The image file and its checksum (hex sha256), as the build script left them. */
export function guestImage(): { path: string; sha256: string } {
  const path = join(repoRoot(), 'build', 'guest', 'stratus-test.qcow2');
  const line = readFileSync(path + '.sha256', 'utf8');
  const sha256 = line.split(/\s+/)[0] ?? '';
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error(`bad checksum file ${path}.sha256`);
  return { path, sha256 };
}

export interface GuestNic {
  ifname: string;
  /** address/prefix, or null when the NIC got no lease */
  ip: string | null;
  mac: string;
}

export interface GuestMarkers {
  /** every marker line, in order, without the prefix */
  lines: string[];
  init: boolean;
  nets: GuestNic[];
  metadataSource?: 'config-drive' | 'metadata-service' | 'ec2' | 'none';
  hostname?: string;
  /** public keys installed, with their fingerprints as `ssh-keygen -l` prints them */
  keys: { user: string; fingerprint: string }[];
  /** the guest's SSH host keys (dropbear) */
  hostKeys: { type: string; fingerprint: string }[];
  userdataRc?: number;
  sshReady: boolean;
  ready: boolean;
  shutdown: boolean;
}

/** Parses console output (any amount; markers may follow other text on a line). */
export function parseGuestMarkers(consoleText: string): GuestMarkers {
  const m: GuestMarkers = { lines: [], init: false, nets: [], keys: [], hostKeys: [], sshReady: false, ready: false, shutdown: false };
  for (const raw of consoleText.split(/\r?\n/)) {
    const at = raw.indexOf(MARKER_PREFIX);
    if (at < 0) continue;
    const line = raw.slice(at + MARKER_PREFIX.length).trim();
    m.lines.push(line);
    const [word, ...rest] = line.split(/\s+/);
    let g: RegExpMatchArray | null;
    switch (word) {
      case 'init': m.init = true; break;
      case 'net':
        if ((g = line.match(/^net (\S+) ip=(\S+) mac=(\S+)$/))) {
          m.nets.push({ ifname: g[1]!, ip: g[2] === 'none' ? null : g[2]!, mac: g[3]! });
        }
        break;
      case 'metadata':
        if ((g = line.match(/^metadata source=(config-drive|metadata-service|ec2|none)$/))) {
          m.metadataSource = g[1] as GuestMarkers['metadataSource'];
        }
        break;
      case 'hostname': m.hostname = rest[0]; break;
      case 'key': if (rest.length === 2) m.keys.push({ user: rest[0]!, fingerprint: rest[1]! }); break;
      case 'hostkey': if (rest.length === 2) m.hostKeys.push({ type: rest[0]!, fingerprint: rest[1]! }); break;
      case 'userdata':
        if ((g = line.match(/^userdata rc=(\d+)$/))) m.userdataRc = Number(g[1]);
        break;
      case 'ssh': if (rest[0] === 'ready') m.sshReady = true; break;
      case 'ready': m.ready = true; break;
      case 'shutdown': m.shutdown = true; break;
    }
  }
  return m;
}

/** SHA256 fingerprint of an OpenSSH public key line, as `ssh-keygen -l` prints it. */
export function sshFingerprint(publicKeyLine: string): string {
  const parts = publicKeyLine.trim().split(/\s+/);
  const i = parts.findIndex((p) => /^(ssh-|ecdsa-|sk-)/.test(p));
  const blob = i >= 0 ? parts[i + 1] : undefined;
  if (!blob) throw new Error('not an OpenSSH public key');
  return 'SHA256:' + createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64').replace(/=+$/, '');
}
