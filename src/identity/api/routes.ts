// Every /v3 resource route of identity, registered in one place.
import type { App } from '../../core/http.js';
import { catalogRoutes } from './catalog.js';
import type { Deps } from './common.js';
import { credentialRoutes } from './creds.js';
import { limitRoutes } from './limits.js';
import { projectRoutes } from './projects.js';
import { roleRoutes } from './roles.js';
import { userRoutes } from './users.js';

export async function registerResourceRoutes(app: App, d: Deps): Promise<void> {
  await projectRoutes(app, d);
  await userRoutes(app, d);
  await roleRoutes(app, d);
  await catalogRoutes(app, d);
  await credentialRoutes(app, d);
  await limitRoutes(app, d);
}
