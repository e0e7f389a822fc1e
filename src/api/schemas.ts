/** Request body schemas (TypeBox → JSON Schema), as strict as Cloudflare's published request schemas. */
import { Type } from '@sinclair/typebox';

/** Empty or garbage PEM is the domain's to judge (Cloudflare's 1408 "Unable to parse certificate"). */
const Pem = Type.String({ maxLength: 65536 });

/** POST origin_tls_client_auth and origin_tls_client_auth/hostnames/certificates. Cloudflare's own docs send
 * `bundle_method` with this request (copied from custom certificates); it is accepted and ignored. */
export const UploadBody = Type.Object(
  {
    certificate: Pem,
    private_key: Pem,
    bundle_method: Type.Optional(Type.String({ maxLength: 32 })),
  },
  { additionalProperties: false },
);

export const ZoneSettingBody = Type.Object({ enabled: Type.Boolean() }, { additionalProperties: false });

/** Entries are checked one by one by the domain, for Cloudflare's per-entry codes (1404 for `{}`). */
export const HostnamesPutBody = Type.Object(
  { config: Type.Array(Type.Unknown(), { maxItems: 1000 }) },
  { additionalProperties: false },
);

const Hostnames = Type.Array(Type.String({ maxLength: 255 }), { maxItems: 100 });

export const AccessCreateBody = Type.Object(
  {
    name: Type.String({ maxLength: 255 }),
    certificate: Pem,
    associated_hostnames: Type.Optional(Hostnames),
  },
  { additionalProperties: false },
);

export const AccessUpdateBody = Type.Object(
  {
    associated_hostnames: Hostnames,
    name: Type.Optional(Type.String({ maxLength: 255 })),
  },
  { additionalProperties: false },
);

export const AccessSettingsBody = Type.Object(
  {
    settings: Type.Array(
      Type.Object(
        {
          hostname: Type.String({ maxLength: 255 }),
          china_network: Type.Boolean(),
          client_certificate_forwarding: Type.Boolean(),
        },
        { additionalProperties: false },
      ),
      { maxItems: 1000 },
    ),
  },
  { additionalProperties: false },
);
