/**
 * First start: a new database gets an account, a zone, a user with a global API key and an all-permission token.
 * The secrets are returned once (for printing) and stored only as hashes.
 */
import { ALL_PERMISSIONS, type TenancyService } from './tenancy.js';
import type { Store } from './ports.js';

export interface BootstrapOptions {
  zoneName: string;
  accountName: string;
  email: string;
  token?: string;
  apiKey?: string;
}

export interface BootstrapResult {
  accountId: string;
  zoneId: string;
  zoneName: string;
  email: string;
  apiKey: string;
  tokenId: string;
  token: string;
}

const MARKER = 'bootstrap.completed_at';

export async function bootstrapIfEmpty(
  store: Store,
  tenancy: TenancyService,
  opts: BootstrapOptions,
  now: Date,
): Promise<BootstrapResult | null> {
  // One transaction: a crash half-way leaves an empty database that bootstraps again, never half an installation.
  return store.write(async (r) => {
    // Several nodes may start on an empty database at once: one bootstraps, the others then see the marker.
    await r.locks.named('bootstrap');
    if (await r.tenancy.getMeta(MARKER)) return null;
    const account = await tenancy.createAccount(opts.accountName, r);
    const zone = await tenancy.createZone({ name: opts.zoneName, accountId: account.id }, r);
    const { user, apiKey } = await tenancy.createUser({ email: opts.email, accountIds: [account.id], apiKey: opts.apiKey }, r);
    const { token, secret } = await tenancy.createToken(
      {
        name: 'bootstrap token (all permissions)',
        policies: [{ permissions: ALL_PERMISSIONS, scopes: [{ type: 'all' }] }],
        secret: opts.token,
      },
      r,
    );
    await r.tenancy.setMeta(MARKER, now.toISOString());
    return {
      accountId: account.id,
      zoneId: zone.id,
      zoneName: zone.name,
      email: user.email,
      apiKey,
      tokenId: token.id,
      token: secret,
    };
  });
}
