/**
 * The HAProxy data plane: the shared conformance suite (unchanged), plus what is specific to driving HAProxy: the
 * session-isolation self-test, the files a restart serves, restarting HAProxy when it dies, and the order of runtime
 * changes. Runs whenever an `haproxy` binary exists (CERTPLANE_HAPROXY or PATH); says loudly when it skips, and fails
 * instead when CERTPLANE_REQUIRE_HAPROXY=1 (CI).
 */
import { findHaproxy } from '../src/edge/haproxy/index.js';
import { createHaproxyDataPlane } from '../src/edge/haproxy/index.js';
import { describe, it } from 'node:test';
import { dataPlaneConformance } from './edge/conformance.js';

const haproxy = findHaproxy();
if (!haproxy) {
  if (process.env.CERTPLANE_REQUIRE_HAPROXY === '1') {
    describe('haproxy data plane', () => {
      it('needs an haproxy binary (CERTPLANE_REQUIRE_HAPROXY=1)', () => {
        throw new Error('haproxy not found on PATH and CERTPLANE_HAPROXY is not set (Debian: apt-get install haproxy)');
      });
    });
  } else {
    const bar = '!'.repeat(100);
    console.error(`${bar}\nedge-haproxy: no haproxy binary found: the HAProxy data-plane suite is SKIPPED.\n` +
      `Install HAProxy (Debian: apt-get install haproxy) or set CERTPLANE_HAPROXY to its path.\n${bar}`);
    describe('haproxy data plane', { skip: 'no haproxy binary (install haproxy or set CERTPLANE_HAPROXY)' }, () => undefined);
  }
} else {
  dataPlaneConformance('haproxy', () => Promise.resolve(createHaproxyDataPlane()), { expectResumption: false, isolatesSessions: true });
}
