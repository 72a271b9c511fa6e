// The contract between the controller and host agents for networking (HTTP under
// /network/agent/v1, JSON, the same agent token as /compute/agent/v1). Types only: the
// controller (netagent/api.ts) and the agent (agent/netagent.ts) both import it.
import type { HostNetworkState } from '../agent/dataplane/model.js';

/** GET /network/agent/v1/hosts/{host}/state?since=REV&wait=SEC (long poll). */
export interface HostNetworkDesired {
  /**
   * Content revision of `state`: a digest of it, so it changes exactly when something the host
   * needs changed (any controller copy computes the same one, no counter to keep in step).
   */
  revision: string;
  state: HostNetworkState;
}

/** PUT /network/agent/v1/hosts/{host}: the agent's tunnel endpoint (null: no VXLAN underlay). */
export interface NetworkAgentRegistration {
  underlayIp: string | null;
}

/** POST /network/agent/v1/hosts/{host}/ports: what converge() observed. */
export interface PortStatusReport {
  ports: Record<string, 'ACTIVE' | 'DOWN'>;
}

/** GET /network/agent/v1/metadata-secret: the HMAC key the metadata proxies sign with. */
export interface MetadataSecret {
  secret: string;
}

/** Requests the agent relays from its metadata socket arrive under this path, headers unchanged. */
export const METADATA_RELAY_PATH = '/network/agent/v1/metadata';
