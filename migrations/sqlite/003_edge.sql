-- The data plane: hostnames the edge serves, registered edge nodes, their acknowledgements, and the change log.
CREATE TABLE edge_hostnames (
  hostname           TEXT PRIMARY KEY,
  zone_id            TEXT NOT NULL REFERENCES zones (id),
  origin_address     TEXT NOT NULL,
  origin_port        INTEGER NOT NULL,
  origin_tls         INTEGER NOT NULL,
  origin_sni         TEXT,
  origin_ca_pem      TEXT,
  server_certificate TEXT NOT NULL,
  server_key_sealed  TEXT NOT NULL,
  created_at         TEXT NOT NULL,
  updated_at         TEXT NOT NULL,
  version            INTEGER NOT NULL
);
CREATE INDEX edge_hostnames_by_zone ON edge_hostnames (zone_id, hostname);

CREATE TABLE edge_nodes (
  id            TEXT PRIMARY KEY,
  name          TEXT NOT NULL,
  secret_hash   TEXT NOT NULL UNIQUE,
  registered_at TEXT NOT NULL,
  last_seen_at  TEXT,
  acked_version INTEGER NOT NULL DEFAULT 0,
  revoked_at    TEXT
);

CREATE TABLE edge_failures (
  edge_id  TEXT NOT NULL REFERENCES edge_nodes (id),
  version  INTEGER NOT NULL,
  hostname TEXT NOT NULL,
  reason   TEXT NOT NULL,
  PRIMARY KEY (edge_id, hostname)
);

CREATE TABLE config_changes (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  version    INTEGER NOT NULL,
  scope_type TEXT NOT NULL,
  scope_id   TEXT NOT NULL
);
CREATE INDEX config_changes_by_version ON config_changes (version, id);
