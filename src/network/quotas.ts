// Neutron's quotas API over identity's unified limits (service type "network"): what
// /v2.0/quotas reads and writes. Enforcement at create time is Core.checkQuota.
import { QUOTA_RESOURCES, invalidInput, type Caller, type Core } from './core.js';

export async function getQuota(c: Core, caller: Caller, projectId: string): Promise<Record<string, number>> {
  c.enforce(caller, 'get_quota', { project_id: projectId });
  const out: Record<string, number> = {};
  for (const r of Object.keys(QUOTA_RESOURCES)) out[r] = await c.limitOf(projectId, r);
  return out;
}

export async function quotaDetails(c: Core, caller: Caller, projectId: string) {
  const q = await getQuota(c, caller, projectId);
  const out: Record<string, { limit: number; used: number; reserved: number }> = {};
  for (const [r, limit] of Object.entries(q)) out[r] = { limit, used: await c.usage(projectId, r), reserved: 0 };
  return out;
}

/** Neutron's admin quota listing: every project whose network quotas differ from the defaults. */
export async function nonDefaultQuotas(c: Core, caller: Caller): Promise<Array<Record<string, number | string>>> {
  const projects = new Set(await c.limits.projectsWithLimits('network'));
  const defaults = defaultQuota();
  const out = [];
  for (const p of [...projects].sort()) {
    const q = await getQuota(c, caller, p);
    if (Object.entries(q).some(([k, v]) => defaults[k] !== v)) out.push({ ...q, project_id: p, tenant_id: p });
  }
  return out;
}

export function defaultQuota(): Record<string, number> {
  return Object.fromEntries(Object.entries(QUOTA_RESOURCES).map(([k, v]) => [k, v.default]));
}

export async function setQuota(c: Core, caller: Caller, projectId: string, values: Record<string, unknown>): Promise<Record<string, number>> {
  c.enforce(caller, 'update_quota', { project_id: projectId });
  for (const [k, v] of Object.entries(values)) {
    if (k === 'force' || k === 'check_limit') continue;
    if (!(k in QUOTA_RESOURCES)) throw invalidInput(`Unrecognized attribute(s) '${k}'`);
    const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < -1) throw invalidInput(`'${String(v)}' is not a valid quota value for ${k}; it must be an integer >= -1`);
    if (values.check_limit === true && n >= 0 && await c.usage(projectId, k) > n) {
      throw invalidInput(`Quota limit ${n} for ${k} must be greater than or equal to already used and reserved ${await c.usage(projectId, k)}.`);
    }
  }
  for (const [k, v] of Object.entries(values)) {
    if (k in QUOTA_RESOURCES) {
      await c.limits.setProjectLimit({ projectId, serviceType: 'network', resourceName: k, value: Number(v) });
    }
  }
  return getQuota(c, caller, projectId);
}

export async function resetQuota(c: Core, caller: Caller, projectId: string): Promise<void> {
  c.enforce(caller, 'delete_quota', { project_id: projectId });
  for (const [k, v] of Object.entries(QUOTA_RESOURCES)) {
    await c.limits.setProjectLimit({ projectId, serviceType: 'network', resourceName: k, value: v.default });
  }
}

export async function registerLimits(c: Core): Promise<void> {
  for (const [k, v] of Object.entries(QUOTA_RESOURCES)) {
    await c.limits.ensureRegisteredLimit({ serviceType: 'network', resourceName: k, defaultLimit: v.default,
      description: `Neutron ${k} quota` });
  }
}
