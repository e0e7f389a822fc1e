-- certplane schema, SQLite dialect. Times are ISO-8601 UTC strings with milliseconds (lexically ordered).
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

-- One row: the configuration version, bumped by every committed change the data plane must learn about.
CREATE TABLE config_version (
  id      INTEGER PRIMARY KEY CHECK (id = 1),
  version INTEGER NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);

CREATE TABLE accounts (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  created_at TEXT NOT NULL
);

CREATE TABLE zones (
  id            TEXT PRIMARY KEY,
  name          TEXT NOT NULL UNIQUE,
  account_id    TEXT NOT NULL REFERENCES accounts (id),
  china_network INTEGER NOT NULL DEFAULT 0,
  aop_enabled   INTEGER NOT NULL DEFAULT 0,
  status        TEXT NOT NULL,
  created_at    TEXT NOT NULL,
  modified_at   TEXT NOT NULL
);
CREATE INDEX zones_by_account ON zones (account_id, name);

CREATE TABLE users (
  id           TEXT PRIMARY KEY,
  email        TEXT NOT NULL UNIQUE,
  api_key_hash TEXT NOT NULL,
  created_at   TEXT NOT NULL
);

CREATE TABLE memberships (
  account_id TEXT NOT NULL REFERENCES accounts (id),
  user_id    TEXT NOT NULL REFERENCES users (id),
  PRIMARY KEY (account_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE tokens (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL,
  secret_hash TEXT NOT NULL UNIQUE,
  status      TEXT NOT NULL,
  policies    TEXT NOT NULL,
  not_before  TEXT,
  expires_on  TEXT,
  created_at  TEXT NOT NULL,
  revoked_at  TEXT
);

CREATE TABLE aop_certificates (
  id                 TEXT PRIMARY KEY,
  zone_id            TEXT NOT NULL REFERENCES zones (id),
  kind               TEXT NOT NULL CHECK (kind IN ('zone', 'hostname')),
  certificate        TEXT NOT NULL,
  private_key_sealed TEXT NOT NULL,
  fingerprint_sha256 TEXT NOT NULL,
  issuer             TEXT NOT NULL,
  serial_number      TEXT NOT NULL,
  signature          TEXT NOT NULL,
  expires_on         TEXT NOT NULL,
  uploaded_on        TEXT NOT NULL,
  updated_at         TEXT NOT NULL,
  status             TEXT NOT NULL,
  status_changed_at  TEXT NOT NULL,
  version            INTEGER NOT NULL,
  UNIQUE (zone_id, kind, fingerprint_sha256)
);
CREATE INDEX aop_certificates_by_zone ON aop_certificates (zone_id, kind, uploaded_on);
CREATE INDEX aop_certificates_by_status ON aop_certificates (status, status_changed_at);

-- cert_id has no foreign key: a voided association's tombstone may outlive its certificate's.
CREATE TABLE aop_associations (
  zone_id           TEXT NOT NULL REFERENCES zones (id),
  hostname          TEXT NOT NULL,
  cert_id           TEXT NOT NULL,
  enabled           INTEGER,
  status            TEXT NOT NULL,
  status_changed_at TEXT NOT NULL,
  version           INTEGER NOT NULL,
  created_at        TEXT NOT NULL,
  updated_at        TEXT NOT NULL,
  PRIMARY KEY (zone_id, hostname)
);
CREATE INDEX aop_associations_by_status ON aop_associations (zone_id, status, hostname);
CREATE INDEX aop_associations_by_cert ON aop_associations (cert_id, enabled, status);
CREATE INDEX aop_associations_in_flight ON aop_associations (status, status_changed_at);

CREATE TABLE access_certificates (
  id                   TEXT PRIMARY KEY,
  scope_type           TEXT NOT NULL CHECK (scope_type IN ('account', 'zone')),
  scope_id             TEXT NOT NULL,
  account_id           TEXT NOT NULL REFERENCES accounts (id),
  name                 TEXT NOT NULL,
  certificate          TEXT NOT NULL,
  fingerprint_sha256   TEXT NOT NULL,
  fingerprint_md5      TEXT NOT NULL,
  associated_hostnames TEXT NOT NULL,
  expires_on           TEXT NOT NULL,
  created_at           TEXT NOT NULL,
  updated_at           TEXT NOT NULL,
  version              INTEGER NOT NULL,
  UNIQUE (scope_type, scope_id, fingerprint_sha256)
);
CREATE INDEX access_certificates_by_scope ON access_certificates (scope_type, scope_id, created_at, id);
CREATE INDEX access_certificates_by_account ON access_certificates (account_id);

CREATE TABLE access_settings (
  scope_type                    TEXT NOT NULL,
  scope_id                      TEXT NOT NULL,
  hostname                      TEXT NOT NULL,
  china_network                 INTEGER NOT NULL,
  client_certificate_forwarding INTEGER NOT NULL,
  updated_at                    TEXT NOT NULL,
  version                       INTEGER NOT NULL,
  PRIMARY KEY (scope_type, scope_id, hostname)
);

CREATE TABLE access_settings_rollouts (
  scope_type        TEXT NOT NULL,
  scope_id          TEXT NOT NULL,
  status            TEXT NOT NULL,
  status_changed_at TEXT NOT NULL,
  version           INTEGER NOT NULL,
  PRIMARY KEY (scope_type, scope_id)
);
CREATE INDEX access_settings_rollouts_by_status ON access_settings_rollouts (status, status_changed_at);
