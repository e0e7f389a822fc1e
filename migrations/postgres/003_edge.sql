-- The data plane: hostnames the edge serves, registered edge nodes, their acknowledgements, and the change log.
CREATE TABLE edge_hostnames (
  hostname           text COLLATE "C" PRIMARY KEY,
  zone_id            text COLLATE "C" NOT NULL REFERENCES zones (id),
  origin_address     text NOT NULL,
  origin_port        integer NOT NULL,
  origin_tls         boolean NOT NULL,
  origin_sni         text,
  origin_ca_pem      text,
  server_certificate text NOT NULL,
  server_key_sealed  text NOT NULL,
  created_at         timestamptz NOT NULL,
  updated_at         timestamptz NOT NULL,
  version            bigint NOT NULL
);
CREATE INDEX edge_hostnames_by_zone ON edge_hostnames (zone_id, hostname);

CREATE TABLE edge_nodes (
  id            text COLLATE "C" PRIMARY KEY,
  name          text NOT NULL,
  secret_hash   text COLLATE "C" NOT NULL UNIQUE,
  registered_at timestamptz NOT NULL,
  last_seen_at  timestamptz,
  acked_version bigint NOT NULL DEFAULT 0,
  revoked_at    timestamptz
);

CREATE TABLE edge_failures (
  edge_id  text COLLATE "C" NOT NULL REFERENCES edge_nodes (id),
  version  bigint NOT NULL,
  hostname text COLLATE "C" NOT NULL,
  reason   text NOT NULL,
  PRIMARY KEY (edge_id, hostname)
);

CREATE TABLE config_changes (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  version    bigint NOT NULL,
  scope_type text COLLATE "C" NOT NULL,
  scope_id   text COLLATE "C" NOT NULL
);
CREATE INDEX config_changes_by_version ON config_changes (version, id);
