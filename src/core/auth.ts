// Who is calling: the validated token every service sees, and the hook that produces it.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { unauthorized } from './errors.js';

/** What a validated token says about its bearer. Produced by identity, read by every service. */
export interface AuthContext {
  token: string;
  userId: string;
  userName: string;
  userDomainId: string;
  userDomainName: string;
  /** Project scope. */
  projectId?: string;
  projectName?: string;
  projectDomainId?: string;
  projectDomainName?: string;
  /** Domain scope. */
  domainId?: string;
  domainName?: string;
  /** System scope ("all"). */
  system: boolean;
  /** Effective role names, implied roles included (admin ⇒ member ⇒ reader). */
  roles: string[];
  roleIds: string[];
  methods: string[];
  issuedAt: string;
  expiresAt: string;
  auditIds: string[];
  applicationCredentialId?: string;
}

/** Implemented by the identity service; every other service authenticates through it. */
export interface TokenValidator {
  validateToken(token: string, opts?: { allowExpired?: boolean }): Promise<AuthContext>;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by `authenticate` on routes that require a token. */
    auth?: AuthContext;
  }
}

/** A preHandler that requires a valid X-Auth-Token and sets `request.auth`. */
export function authenticate(validator: TokenValidator) {
  return async (req: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const token = req.headers['x-auth-token'];
    if (typeof token !== 'string' || token.length === 0) throw unauthorized();
    req.auth = await validator.validateToken(token);
  };
}

/** The authenticated caller of a request; routes behind `authenticate` always have one. */
export function authOf(req: FastifyRequest): AuthContext {
  if (!req.auth) throw unauthorized();
  return req.auth;
}

export const isAdmin = (ctx: AuthContext): boolean => ctx.roles.includes('admin');
