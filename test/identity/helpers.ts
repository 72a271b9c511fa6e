// Raw-HTTP helpers for identity tests (the CLI covers the happy paths).
import { api, type TestCloud } from '../helpers/cloud.js';

export const V3 = '/identity/v3';

export function passwordAuth(user: string, password: string, scope?: unknown) {
  return {
    auth: {
      identity: { methods: ['password'], password: { user: { name: user, domain: { id: 'default' }, password } } },
      ...(scope === undefined ? {} : { scope }),
    },
  };
}

export const projectScope = (name: string) => ({ project: { name, domain: { id: 'default' } } });

/** Issues a token over raw HTTP; returns the token and the response body. */
export async function issue(tc: TestCloud, user: string, password: string, scope: unknown = projectScope(user)) {
  const r = await api(tc.url, 'POST', `${V3}/auth/tokens`, { body: passwordAuth(user, password, scope) });
  if (r.status !== 201) throw new Error(`token issue for ${user} failed: ${r.status} ${r.text}`);
  return { token: r.headers.get('x-subject-token')!, body: r.body };
}
