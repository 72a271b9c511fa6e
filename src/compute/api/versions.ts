// Version discovery: GET /compute and GET /compute/v2.1 (no token needed), as keystoneauth and
// openstacksdk read them to learn the microversion range.
import type { FastifyRequest } from 'fastify';
import type { App } from '../../core/http.js';
import { fmt, MAX_VERSION, MIN_VERSION } from './microversion.js';

/** The public URL of the compute API as the caller reached it (honours the configured base URL). */
export type BaseUrl = (req: FastifyRequest) => string;

function v21(base: string) {
  return {
    id: 'v2.1',
    status: 'CURRENT',
    version: fmt(MAX_VERSION),
    min_version: fmt(MIN_VERSION),
    updated: '2013-07-23T11:33:21Z',
    links: [
      { rel: 'self', href: `${base}/v2.1/` },
      { rel: 'describedby', type: 'text/html', href: 'https://docs.openstack.org/' },
    ],
    'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.compute+json;version=2.1' }],
  };
}

export function registerVersionRoutes(app: App, base: BaseUrl): void {
  const list = async (req: FastifyRequest) => {
    const { id, status, version, min_version, updated, links } = v21(base(req));
    return { versions: [{ id, status, version, min_version, updated, links: links.slice(0, 1) }] };
  };
  // 300 Multiple Choices is what Nova answers at its root; clients accept 200 too and some
  // (curl users) prefer it, so the document is served with 200.
  app.get('/', list);
  app.get('/v2.1', async (req) => ({ version: v21(base(req)) }));
}
