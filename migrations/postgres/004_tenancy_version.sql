-- A counter bumped by every change to credentials and zones (accounts, zones, users, memberships, tokens), by any
-- node: each API node caches token and zone lookups and re-reads this one row per request to know they are current,
-- so a token revoked on another node (or by the CLI) is refused at once.
CREATE TABLE tenancy_version (
  id      integer PRIMARY KEY CHECK (id = 1),
  version bigint NOT NULL
);
INSERT INTO tenancy_version (id, version) VALUES (1, 0);

CREATE FUNCTION bump_tenancy_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE tenancy_version SET version = version + 1 WHERE id = 1;
  RETURN NULL;
END;
$$;

CREATE TRIGGER accounts_tenancy AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON accounts FOR EACH STATEMENT EXECUTE FUNCTION bump_tenancy_version();
CREATE TRIGGER zones_tenancy AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON zones FOR EACH STATEMENT EXECUTE FUNCTION bump_tenancy_version();
CREATE TRIGGER users_tenancy AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users FOR EACH STATEMENT EXECUTE FUNCTION bump_tenancy_version();
CREATE TRIGGER memberships_tenancy AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON memberships FOR EACH STATEMENT EXECUTE FUNCTION bump_tenancy_version();
CREATE TRIGGER tokens_tenancy AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tokens FOR EACH STATEMENT EXECUTE FUNCTION bump_tenancy_version();
