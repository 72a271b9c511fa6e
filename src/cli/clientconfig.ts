// The files a user points the openstack CLI at: DIR/clouds.yaml and DIR/{admin,demo}-openrc.sh.
// Written with the generated passwords on the first start; later starts only refresh the URL.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';

export interface BootstrapCredentials {
  adminPassword: string;
  demoPassword: string;
}

interface CloudEntry {
  auth: Record<string, string>;
  region_name: string;
  interface: string;
  identity_api_version: number;
}

function entry(authUrl: string, region: string, user: string, password: string): CloudEntry {
  return {
    auth: {
      auth_url: authUrl, username: user, password, project_name: user,
      user_domain_name: 'Default', project_domain_name: 'Default',
    },
    region_name: region, interface: 'public', identity_api_version: 3,
  };
}

function openrc(authUrl: string, region: string, user: string, password: string): string {
  return [
    `# Source this file to use the openstack CLI as '${user}'.`,
    `export OS_AUTH_URL=${authUrl}`,
    `export OS_USERNAME=${user}`,
    `export OS_PASSWORD='${password}'`,
    `export OS_PROJECT_NAME=${user}`,
    'export OS_USER_DOMAIN_NAME=Default',
    'export OS_PROJECT_DOMAIN_NAME=Default',
    `export OS_REGION_NAME=${region}`,
    'export OS_IDENTITY_API_VERSION=3',
    'export OS_INTERFACE=public',
    '',
  ].join('\n');
}

export function writeClientConfig(dataDir: string, authUrl: string, region: string, creds?: BootstrapCredentials): void {
  const cloudsFile = join(dataDir, 'clouds.yaml');
  const write = (file: string, text: string) => writeFileSync(file, text, { mode: 0o600 });
  if (creds) {
    const doc = {
      clouds: {
        stratus: entry(authUrl, region, 'admin', creds.adminPassword),
        'stratus-demo': entry(authUrl, region, 'demo', creds.demoPassword),
      },
    };
    write(cloudsFile, YAML.stringify(doc));
    write(join(dataDir, 'admin-openrc.sh'), openrc(authUrl, region, 'admin', creds.adminPassword));
    write(join(dataDir, 'demo-openrc.sh'), openrc(authUrl, region, 'demo', creds.demoPassword));
    return;
  }
  // Later starts: keep the passwords, follow the listen address.
  if (existsSync(cloudsFile)) {
    const doc = YAML.parse(readFileSync(cloudsFile, 'utf8')) as { clouds?: Record<string, CloudEntry> };
    for (const c of Object.values(doc.clouds ?? {})) c.auth.auth_url = authUrl;
    write(cloudsFile, YAML.stringify(doc));
  }
  for (const name of ['admin-openrc.sh', 'demo-openrc.sh']) {
    const f = join(dataDir, name);
    if (existsSync(f)) write(f, readFileSync(f, 'utf8').replace(/^export OS_AUTH_URL=.*$/m, `export OS_AUTH_URL=${authUrl}`));
  }
}

/** Reads the generated passwords back (tests and `stratus status` use this). */
export function readClientConfig(dataDir: string): { authUrl: string; adminPassword: string; demoPassword: string } | undefined {
  const cloudsFile = join(dataDir, 'clouds.yaml');
  if (!existsSync(cloudsFile)) return undefined;
  const doc = YAML.parse(readFileSync(cloudsFile, 'utf8')) as { clouds: Record<string, CloudEntry> };
  const admin = doc.clouds['stratus']!;
  const demo = doc.clouds['stratus-demo']!;
  return { authUrl: admin.auth.auth_url!, adminPassword: admin.auth.password!, demoPassword: demo.auth.password! };
}
