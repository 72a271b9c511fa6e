// Console tokens never reach the request logs, wherever the URL carries them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { redactTokens } from '../../src/core/http.js';

test('console tokens are masked in query strings, encoded paths and the auth-token lookup', () => {
  assert.equal(redactTokens('/compute/console/websockify?token=abc123'), '/compute/console/websockify?token=***');
  assert.equal(redactTokens('/compute/console/vnc_lite.html?path=websockify%3Ftoken%3Dabc123&x=1'), '/compute/console/vnc_lite.html?path=websockify%3Ftoken%3D***&x=1');
  assert.equal(redactTokens('/compute/v2.1/os-console-auth-tokens/abc123?console_host=h'), '/compute/v2.1/os-console-auth-tokens/***?console_host=h');
  assert.equal(redactTokens('/compute/v2.1/servers/abc123'), '/compute/v2.1/servers/abc123');
});
