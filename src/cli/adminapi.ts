// The cloud's own APIs as the bootstrap admin of DATA_DIR/clouds.yaml, for CLI commands that
// need to look something up (a server's floating IP, whether the local agent has registered).
import { readClientConfig } from './clientconfig.js';

interface Catalog { type: string; endpoints: { interface: string; url: string }[] }

export interface AdminApi {
  /** The public endpoint of a service type ('compute', 'network', ...), without a trailing slash. */
  endpoint(type: string): string | undefined;
  /** GET url as admin; the parsed body, or undefined when the answer is not 2xx. */
  get(url: string): Promise<any>;
}

export async function adminApi(dataDir: string): Promise<AdminApi> {
  const cfg = readClientConfig(dataDir);
  if (!cfg) throw new Error(`no clouds.yaml in ${dataDir}: is this a Stratus data directory?`);
  const auth = await fetch(`${cfg.authUrl.replace(/\/+$/, '')}/auth/tokens`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ auth: {
      identity: { methods: ['password'], password: { user: { name: 'admin', domain: { name: 'Default' }, password: cfg.adminPassword } } },
      scope: { project: { name: 'admin', domain: { name: 'Default' } } },
    } }),
  });
  if (!auth.ok) throw new Error(`authentication failed: HTTP ${auth.status}`);
  const token = auth.headers.get('x-subject-token')!;
  const catalog = ((await auth.json()) as { token: { catalog: Catalog[] } }).token.catalog;
  return {
    endpoint: (type) => catalog.find((c) => c.type === type)?.endpoints.find((e) => e.interface === 'public')?.url.replace(/\/+$/, ''),
    async get(url) {
      const r = await fetch(url, { headers: { 'x-auth-token': token, 'openstack-api-version': 'compute 2.47' } });
      return r.ok ? (await r.json()) as unknown : undefined;
    },
  };
}
