// Authorization in one place: oslo.policy-style rules ("role:admin or project_id:%(project_id)s"),
// with defaults registered by each service and overrides from an operator's YAML file.
// Deny by default: an unknown rule name fails closed.
import { existsSync, readFileSync } from 'node:fs';
import YAML from 'yaml';
import type { AuthContext } from './auth.js';
import { forbidden } from './errors.js';

type Node =
  | { k: 'const'; v: boolean }
  | { k: 'not'; a: Node }
  | { k: 'and'; a: Node[] }
  | { k: 'or'; a: Node[] }
  | { k: 'rule'; name: string }
  | { k: 'check'; key: string; value: string };

/** Base rules shared by all services; a service's rules build on these names. */
export const BASE_RULES: Record<string, string> = {
  admin: 'role:admin',
  system_reader: 'role:reader and system_scope:all',
  // Cloud-wide read: an admin anywhere, or a reader at system scope.
  cloud_reader: 'rule:admin or rule:system_reader',
  project_reader: 'role:reader and project_id:%(project_id)s',
  project_member: 'role:member and project_id:%(project_id)s',
  project_reader_or_admin: 'rule:cloud_reader or rule:project_reader',
  project_member_or_admin: 'rule:admin or rule:project_member',
  owner: 'user_id:%(user_id)s',
};

export type Target = Record<string, unknown>;

export class PolicyEngine {
  private readonly rules = new Map<string, Node>();
  private readonly overrides = new Map<string, Node>();

  constructor(overrideFile?: string) {
    this.registerDefaults(BASE_RULES);
    if (overrideFile && existsSync(overrideFile)) {
      const doc = YAML.parse(readFileSync(overrideFile, 'utf8')) ?? {};
      for (const [name, rule] of Object.entries(doc as Record<string, string>)) {
        this.overrides.set(name, parseRule(String(rule)));
      }
    }
  }

  /** Registers a service's default rules; an operator override of the same name wins. */
  registerDefaults(rules: Record<string, string>): void {
    for (const [name, rule] of Object.entries(rules)) this.rules.set(name, parseRule(rule));
  }

  check(rule: string, ctx: AuthContext, target: Target = {}): boolean {
    return this.evalRule(rule, credentialsOf(ctx), target, 0);
  }

  /** Throws 403 (in the caller's error style) unless `rule` allows `ctx` on `target`. */
  enforce(rule: string, ctx: AuthContext, target: Target = {}, message?: string): void {
    if (!this.check(rule, ctx, target)) {
      throw forbidden(message ?? `Policy doesn't allow ${rule} to be performed.`);
    }
  }

  private evalRule(name: string, creds: Creds, target: Target, depth: number): boolean {
    const node = this.overrides.get(name) ?? this.rules.get(name);
    if (!node || depth > 20) return false;
    return this.evalNode(node, creds, target, depth + 1);
  }

  private evalNode(n: Node, creds: Creds, target: Target, depth: number): boolean {
    switch (n.k) {
      case 'const': return n.v;
      case 'not': return !this.evalNode(n.a, creds, target, depth);
      case 'and': return n.a.every((x) => this.evalNode(x, creds, target, depth));
      case 'or': return n.a.some((x) => this.evalNode(x, creds, target, depth));
      case 'rule': return this.evalRule(n.name, creds, target, depth);
      case 'check': return genericCheck(n.key, n.value, creds, target);
    }
  }
}

interface Creds {
  roles: string[];
  [key: string]: unknown;
}

function credentialsOf(ctx: AuthContext): Creds {
  return {
    roles: ctx.roles,
    user_id: ctx.userId,
    user_domain_id: ctx.userDomainId,
    project_id: ctx.projectId,
    project_domain_id: ctx.projectDomainId,
    domain_id: ctx.domainId,
    system_scope: ctx.system ? 'all' : undefined,
  };
}

function lookup(obj: Record<string, unknown>, path: string): unknown {
  let cur: unknown = obj;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

function genericCheck(key: string, value: string, creds: Creds, target: Target): boolean {
  let expected: unknown;
  const sub = /^%\((.+)\)s$/.exec(value);
  if (sub) {
    expected = lookup(target, sub[1]!);
    if (expected === undefined || expected === null) return false;
  } else if (value === 'True' || value === 'False') {
    expected = value === 'True';
  } else {
    expected = value.replace(/^['"]|['"]$/g, '');
  }
  if (key === 'role') return creds.roles.includes(String(expected).toLowerCase()) || creds.roles.includes(String(expected));
  // A key quoted or numeric is a literal compared against the target (oslo's "'x':%(y)s").
  const actual = creds[key];
  if (actual === undefined || actual === null) return false;
  return String(actual) === String(expected);
}

// ---- parser: tokens are "(", ")", "and", "or", "not", "@", "!", and checks "key:value" ----

export function parseRule(text: string): Node {
  const trimmed = text.trim();
  if (trimmed === '' || trimmed === '@') return { k: 'const', v: true };
  if (trimmed === '!') return { k: 'const', v: false };
  // A check may hold a substitution with parentheses of its own: 'project_id:%(target.project_id)s'.
  const tokens = trimmed.match(/[^\s()]*(?:%\([^)]*\)s[^\s()]*)+|\(|\)|[^\s()]+/g) ?? [];
  let pos = 0;
  const peek = () => tokens[pos];
  const next = () => tokens[pos++];

  function parseOr(): Node {
    const parts = [parseAnd()];
    while (peek()?.toLowerCase() === 'or') { next(); parts.push(parseAnd()); }
    return parts.length === 1 ? parts[0]! : { k: 'or', a: parts };
  }
  function parseAnd(): Node {
    const parts = [parseNot()];
    while (peek()?.toLowerCase() === 'and') { next(); parts.push(parseNot()); }
    return parts.length === 1 ? parts[0]! : { k: 'and', a: parts };
  }
  function parseNot(): Node {
    if (peek()?.toLowerCase() === 'not') { next(); return { k: 'not', a: parseNot() }; }
    return parseAtom();
  }
  function parseAtom(): Node {
    const t = next();
    if (t === undefined) throw new Error(`policy rule ends early: '${text}'`);
    if (t === '(') {
      const inner = parseOr();
      if (next() !== ')') throw new Error(`unbalanced parentheses in policy rule '${text}'`);
      return inner;
    }
    if (t === '@') return { k: 'const', v: true };
    if (t === '!') return { k: 'const', v: false };
    const i = t.indexOf(':');
    if (i <= 0) throw new Error(`bad check '${t}' in policy rule '${text}'`);
    const key = t.slice(0, i);
    const value = t.slice(i + 1);
    if (key === 'rule') return { k: 'rule', name: value };
    return { k: 'check', key, value };
  }

  const node = parseOr();
  if (pos !== tokens.length) throw new Error(`unexpected '${tokens[pos]}' in policy rule '${text}'`);
  return node;
}
