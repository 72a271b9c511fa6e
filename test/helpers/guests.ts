// Real guests for end-to-end tests: a server as the Nova API makes it underneath (a port from
// the network service bound to a host, then the instance with that NIC), its serial console, and
// the host commands the tests run (always inside namespaces, or the `stratus` CLI).
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tapNameFor } from '../../src/agent/dataplane/model.js';
import type { TestCloud } from './cloud.js';

export interface Guest { id: string; portId: string; ip: string; host: string }

export function sh(cmd: string, args: string[], timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout: String(stdout), stderr: String(stderr) }));
  });
}

const BIN = join(process.cwd(), 'bin', 'stratus');
/** `./bin/stratus ARGS` (exec-external, ssh, ...). */
export const stratus = (args: string[], timeoutMs = 60_000) => sh(process.execPath, [BIN, ...args], timeoutMs);

/** The serial console of a guest of the agent on `agentDataDir` ('' until it exists). */
export function consoleOf(agentDataDir: string, id: string): string {
  try { return readFileSync(join(agentDataDir, 'agent', 'instances', id, 'console.log'), 'utf8'); } catch { return ''; }
}

/** A server as the Nova API makes it: a port on the network bound to the host, then the instance with that NIC. */
export async function bootGuest(tc: TestCloud, o: {
  name: string; projectId: string; networkId: string; host: string; imageId: string; publicKey: string;
  userData?: string; fixedIp?: string;
}): Promise<Guest> {
  const id = crypto.randomUUID();
  const port = await tc.cloud.network.service.createServerPort({
    projectId: o.projectId, serverId: id, networkId: o.networkId, hostId: o.host, ...(o.fixedIp ? { fixedIp: o.fixedIp } : {}),
  });
  await tc.cloud.compute.service.createInstance({
    id, projectId: o.projectId, name: o.name, imageId: o.imageId, vcpus: 1, ramMb: 256, diskGb: 0, host: o.host,
    keys: [{ name: 'k', publicKey: o.publicKey }], ...(o.userData ? { userData: o.userData } : {}),
    // Tenant networks are VXLAN: MTU 1450.
    nics: [{ id: port.id, mac: port.mac_address, tap: tapNameFor(port.id), mtu: 1450 }],
  });
  return { id, portId: port.id, ip: port.fixed_ips[0].ip_address, host: o.host };
}
