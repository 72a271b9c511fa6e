// Network RBAC: share a network with one project (access_as_shared) or make an external network
// usable by one project (access_as_external). '*' means every project.
import { badRequest, conflict, invalidInput, type Caller, type Core } from './core.js';
import type { Doc } from './store.js';

const ACTIONS = ['access_as_shared', 'access_as_external'];

export async function createRbac(c: Core, caller: Caller, body: Record<string, any>): Promise<Doc> {
  if (body.object_type !== 'network') throw invalidInput(`object_type '${body.object_type}' is not supported (only 'network')`);
  if (!ACTIONS.includes(body.action)) throw invalidInput(`action '${body.action}' is not supported (${ACTIONS.join(', ')})`);
  const project = c.ownerFor(caller, body);
  const net = await c.visibleNetwork(caller, body.object_id);
  c.enforce(caller, 'create_rbac_policy', { ...body, project_id: project });
  if (net.project_id !== caller.projectId && !caller.isAdmin) {
    throw badRequest(`Only the owner of network ${net.id} may share it.`, 'BadRequest');
  }
  if (body.target_tenant === '*') c.enforce(caller, 'create_rbac_policy:target_tenant', { ...body, project_id: project });
  const dup = await c.store.find('rbac_policy', { object_type: 'network', object_id: net.id, action: body.action, target_tenant: body.target_tenant });
  if (dup.length) throw conflict(`An RBAC policy for that object, action and target already exists: ${dup[0]!.id}.`, 'DuplicateRbacPolicy');
  await c.checkQuota(project, 'rbac_policy');
  const doc = c.base(project, {
    object_type: 'network', object_id: net.id, action: body.action, target_tenant: body.target_tenant,
  });
  delete doc.tags;
  delete doc.description;
  await c.store.insert('rbac_policy', doc);
  return doc;
}

async function checkUnused(c: Core, pol: Doc): Promise<void> {
  const net = await c.store.get('network', pol.object_id);
  if (!net || net.shared) return;
  const others = await c.store.find('rbac_policy', { object_type: 'network', object_id: net.id, action: pol.action });
  const stillAllowed = (p: string) => others.some((o) => o.id !== pol.id && (o.target_tenant === '*' || o.target_tenant === p));
  const ports = await c.store.find('port', { network_id: net.id });
  const blocked = ports.some((p) => p.project_id && p.project_id !== net.project_id &&
    (pol.target_tenant === '*' || pol.target_tenant === p.project_id) && !stillAllowed(p.project_id));
  if (blocked) {
    throw conflict(`RBAC policy on object ${net.id} cannot be removed because other objects depend on it.`, 'RbacPolicyInUse');
  }
}

export async function updateRbac(c: Core, caller: Caller, id: string, body: Record<string, any>): Promise<Doc> {
  const pol = await c.owned(caller, 'rbac_policy', id);
  c.enforce(caller, 'update_rbac_policy', c.target(pol));
  if (body.target_tenant !== undefined && body.target_tenant !== pol.target_tenant) {
    await checkUnused(c, pol);
    pol.target_tenant = body.target_tenant;
  }
  await c.store.update('rbac_policy', c.touch(pol));
  return pol;
}

export async function deleteRbac(c: Core, caller: Caller, id: string): Promise<void> {
  const pol = await c.owned(caller, 'rbac_policy', id);
  c.enforce(caller, 'delete_rbac_policy', c.target(pol));
  await checkUnused(c, pol);
  await c.store.delete('rbac_policy', id);
}
