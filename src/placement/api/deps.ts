// What the route modules share: the services and the policy check bound to the request's caller.
import type { FastifyRequest } from 'fastify';
import type { AllocationService } from '../allocations.js';
import type { PlacementService } from '../service.js';

export interface Deps {
  svc: PlacementService;
  alloc: AllocationService;
  /** 403 unless the caller may perform `rule` (Placement's policy names). */
  /** Public base URL (Location headers are absolute, as webob makes Placement's). */
  baseUrl(): string;
  enforce(req: FastifyRequest, rule: string, target?: Record<string, unknown>): void;
}
