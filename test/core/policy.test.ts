import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PolicyEngine, parseRule } from '../../src/core/policy.js';
import type { AuthContext } from '../../src/core/auth.js';

const ctx = (over: Partial<AuthContext>): AuthContext => ({
  token: 't', userId: 'u1', userName: 'u', userDomainId: 'default', userDomainName: 'Default',
  system: false, roles: [], roleIds: [], methods: ['password'], issuedAt: '', expiresAt: '', auditIds: [],
  ...over,
});

test('parses oslo-style rules, substitutions included', () => {
  assert.doesNotThrow(() => parseRule('role:reader and (project_id:%(project_id)s or not role:x)'));
  assert.throws(() => parseRule('role:admin and'), /ends early/);
  assert.throws(() => parseRule('(role:admin'), /unbalanced/);
  assert.throws(() => parseRule('admin'), /bad check/);
});

test('base rules: member of own project, admin anywhere, deny unknown', () => {
  const p = new PolicyEngine();
  p.registerDefaults({ 'thing:create': 'rule:project_member_or_admin' });
  const member = ctx({ projectId: 'p1', roles: ['member', 'reader'] });
  const admin = ctx({ projectId: 'p9', roles: ['admin', 'member', 'reader'] });
  assert.equal(p.check('thing:create', member, { project_id: 'p1' }), true);
  assert.equal(p.check('thing:create', member, { project_id: 'p2' }), false);
  assert.equal(p.check('thing:create', member, {}), false);
  assert.equal(p.check('thing:create', admin, { project_id: 'p2' }), true);
  assert.equal(p.check('no:such:rule', admin, {}), false);
  assert.throws(() => p.enforce('thing:create', member, { project_id: 'p2' }), /thing:create/);
});

test('system scope reader reads cloud-wide', () => {
  const p = new PolicyEngine();
  const sys = ctx({ system: true, roles: ['reader'] });
  assert.equal(p.check('cloud_reader', sys), true);
  assert.equal(p.check('cloud_reader', ctx({ projectId: 'p', roles: ['reader'] })), false);
});
