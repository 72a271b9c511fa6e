// Placement's error codes (the `code` of its error bodies) and the errors that carry them.
import { ApiError } from '../core/errors.js';

export const CODE = {
  undefined: 'placement.undefined_code',
  concurrentUpdate: 'placement.concurrent_update',
  duplicateName: 'placement.duplicate_name',
  inventoryInUse: 'placement.inventory.inuse',
  providerInUse: 'placement.resource_provider.inuse',
  cannotDeleteParent: 'placement.resource_provider.cannot_delete_parent',
  providerNotFound: 'placement.resource_provider.not_found',
  duplicateKey: 'placement.query.duplicate_key',
  badValue: 'placement.query.bad_value',
  missingValue: 'placement.query.missing_value',
} as const;

export const pBadRequest = (msg: string, code: string = CODE.undefined) => new ApiError(400, msg, { type: code });
export const pNotFound = (msg: string, code: string = CODE.undefined) => new ApiError(404, msg, { type: code });
export const pConflict = (msg: string, code: string = CODE.undefined) => new ApiError(409, msg, { type: code });

/** A provider's generation moved under us: the caller's view is stale (409, or retried internally). */
export class GenerationConflict extends ApiError {
  constructor(what = 'resource provider') {
    super(409, `${what} generation conflict`, { type: CODE.concurrentUpdate });
  }
}

export const providerNotFound = (uuid: string) => pNotFound(`No resource provider with uuid ${uuid} found`);
