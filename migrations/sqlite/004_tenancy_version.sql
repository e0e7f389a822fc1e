-- A counter bumped by every change to credentials and zones (accounts, zones, users, memberships, tokens), by any
-- connection: the API caches token and zone lookups and re-reads this one row per request to know they are current,
-- so a token revoked by the CLI (another process) is refused at once.
CREATE TABLE tenancy_version (
  id      INTEGER PRIMARY KEY CHECK (id = 1),
  version INTEGER NOT NULL
);
INSERT INTO tenancy_version (id, version) VALUES (1, 0);

CREATE TRIGGER accounts_tenancy_ins AFTER INSERT ON accounts BEGIN UPDATE tenancy_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER accounts_tenancy_upd AFTER UPDATE ON accounts BEGIN UPDATE tenancy_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER accounts_tenancy_del AFTER DELETE ON accounts BEGIN UPDATE tenancy_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER zones_tenancy_ins AFTER INSERT ON zones BEGIN UPDATE tenancy_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER zones_tenancy_upd AFTER UPDATE ON zones BEGIN UPDATE tenancy_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER zones_tenancy_del AFTER DELETE ON zones BEGIN UPDATE tenancy_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER users_tenancy_ins AFTER INSERT ON users BEGIN UPDATE tenancy_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER users_tenancy_upd AFTER UPDATE ON users BEGIN UPDATE tenancy_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER users_tenancy_del AFTER DELETE ON users BEGIN UPDATE tenancy_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER memberships_tenancy_ins AFTER INSERT ON memberships BEGIN UPDATE tenancy_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER memberships_tenancy_upd AFTER UPDATE ON memberships BEGIN UPDATE tenancy_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER memberships_tenancy_del AFTER DELETE ON memberships BEGIN UPDATE tenancy_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER tokens_tenancy_ins AFTER INSERT ON tokens BEGIN UPDATE tenancy_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER tokens_tenancy_upd AFTER UPDATE ON tokens BEGIN UPDATE tenancy_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER tokens_tenancy_del AFTER DELETE ON tokens BEGIN UPDATE tenancy_version SET version = version + 1 WHERE id = 1; END;
