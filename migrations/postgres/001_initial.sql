-- certplane schema, PostgreSQL dialect: the same tables, keys and indexes as migrations/sqlite/001_initial.sql.
-- Times are timestamptz (microsecond precision; the application writes milliseconds, so they round-trip exactly).
-- Text keys and every column the application sorts on use COLLATE "C": ORDER BY then matches SQLite's binary
-- ordering whatever collation the operator's database was created with (en_US would sort 'a-b' after 'ab').
CREATE TABLE meta (
  key   text COLLATE "C" PRIMARY KEY,
  value text NOT NULL
);

-- One row: the configuration version, bumped by every committed change the data plane must learn about.
CREATE TABLE config_version (
  id      integer PRIMARY KEY CHECK (id = 1),
  version bigint NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);

CREATE TABLE accounts (
  id         text COLLATE "C" PRIMARY KEY,
  name       text NOT NULL,
  created_at timestamptz NOT NULL
);

CREATE TABLE zones (
  id            text COLLATE "C" PRIMARY KEY,
  name          text COLLATE "C" NOT NULL UNIQUE,
  account_id    text COLLATE "C" NOT NULL REFERENCES accounts (id),
  china_network boolean NOT NULL DEFAULT false,
  aop_enabled   boolean NOT NULL DEFAULT false,
  status        text NOT NULL,
  created_at    timestamptz NOT NULL,
  modified_at   timestamptz NOT NULL
);
CREATE INDEX zones_by_account ON zones (account_id, name);

CREATE TABLE users (
  id           text COLLATE "C" PRIMARY KEY,
  email        text COLLATE "C" NOT NULL UNIQUE,
  api_key_hash text NOT NULL,
  created_at   timestamptz NOT NULL
);

CREATE TABLE memberships (
  account_id text COLLATE "C" NOT NULL REFERENCES accounts (id),
  user_id    text COLLATE "C" NOT NULL REFERENCES users (id),
  PRIMARY KEY (account_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE tokens (
  id          text COLLATE "C" PRIMARY KEY,
  name        text NOT NULL,
  secret_hash text COLLATE "C" NOT NULL UNIQUE,
  status      text NOT NULL,
  policies    jsonb NOT NULL,
  not_before  timestamptz,
  expires_on  timestamptz,
  created_at  timestamptz NOT NULL,
  revoked_at  timestamptz
);

CREATE TABLE aop_certificates (
  id                 text COLLATE "C" PRIMARY KEY,
  zone_id            text COLLATE "C" NOT NULL REFERENCES zones (id),
  kind               text COLLATE "C" NOT NULL CHECK (kind IN ('zone', 'hostname')),
  certificate        text NOT NULL,
  private_key_sealed text NOT NULL,
  fingerprint_sha256 text COLLATE "C" NOT NULL,
  issuer             text NOT NULL,
  serial_number      text NOT NULL,
  signature          text NOT NULL,
  expires_on         timestamptz NOT NULL,
  uploaded_on        timestamptz NOT NULL,
  updated_at         timestamptz NOT NULL,
  status             text COLLATE "C" NOT NULL,
  status_changed_at  timestamptz NOT NULL,
  version            bigint NOT NULL,
  UNIQUE (zone_id, kind, fingerprint_sha256)
);
CREATE INDEX aop_certificates_by_zone ON aop_certificates (zone_id, kind, uploaded_on);
CREATE INDEX aop_certificates_by_status ON aop_certificates (status, status_changed_at);

-- cert_id has no foreign key: a voided association's tombstone may outlive its certificate's.
CREATE TABLE aop_associations (
  zone_id           text COLLATE "C" NOT NULL REFERENCES zones (id),
  hostname          text COLLATE "C" NOT NULL,
  cert_id           text COLLATE "C" NOT NULL,
  enabled           boolean,
  status            text COLLATE "C" NOT NULL,
  status_changed_at timestamptz NOT NULL,
  version           bigint NOT NULL,
  created_at        timestamptz NOT NULL,
  updated_at        timestamptz NOT NULL,
  PRIMARY KEY (zone_id, hostname)
);
CREATE INDEX aop_associations_by_status ON aop_associations (zone_id, status, hostname);
CREATE INDEX aop_associations_by_cert ON aop_associations (cert_id, enabled, status);
CREATE INDEX aop_associations_in_flight ON aop_associations (status, status_changed_at);

CREATE TABLE access_certificates (
  id                   text COLLATE "C" PRIMARY KEY,
  scope_type           text COLLATE "C" NOT NULL CHECK (scope_type IN ('account', 'zone')),
  scope_id             text COLLATE "C" NOT NULL,
  account_id           text COLLATE "C" NOT NULL REFERENCES accounts (id),
  name                 text NOT NULL,
  certificate          text NOT NULL,
  fingerprint_sha256   text COLLATE "C" NOT NULL,
  fingerprint_md5      text NOT NULL,
  associated_hostnames jsonb NOT NULL,
  expires_on           timestamptz NOT NULL,
  created_at           timestamptz NOT NULL,
  updated_at           timestamptz NOT NULL,
  version              bigint NOT NULL,
  UNIQUE (scope_type, scope_id, fingerprint_sha256)
);
CREATE INDEX access_certificates_by_scope ON access_certificates (scope_type, scope_id, created_at, id);
CREATE INDEX access_certificates_by_account ON access_certificates (account_id);

CREATE TABLE access_settings (
  scope_type                    text COLLATE "C" NOT NULL,
  scope_id                      text COLLATE "C" NOT NULL,
  hostname                      text COLLATE "C" NOT NULL,
  china_network                 boolean NOT NULL,
  client_certificate_forwarding boolean NOT NULL,
  updated_at                    timestamptz NOT NULL,
  version                       bigint NOT NULL,
  PRIMARY KEY (scope_type, scope_id, hostname)
);

CREATE TABLE access_settings_rollouts (
  scope_type        text COLLATE "C" NOT NULL,
  scope_id          text COLLATE "C" NOT NULL,
  status            text COLLATE "C" NOT NULL,
  status_changed_at timestamptz NOT NULL,
  version           bigint NOT NULL,
  PRIMARY KEY (scope_type, scope_id)
);
CREATE INDEX access_settings_rollouts_by_status ON access_settings_rollouts (status, status_changed_at);
