-- One version per zone, changed by every committed change to the zone's Authenticated Origin Pulls data (its
-- certificates of both kinds and its hostname associations), by any node. The API keeps the answers of its GET
-- routes on a zone ready to send and re-checks this row (with tenancy_version) on every request, so an answer is
-- served from memory only while nothing it was built from has changed (docs/decisions/0010-answers-from-memory.md).
-- Zone rows themselves (name, the zone-level AOP setting) are covered by tenancy_version.
--
-- The value is the id of the last transaction that changed the zone (txid_current(): 64-bit, never reused), not a
-- counter: the row is then written once per transaction, however many rows it changes (a PUT of 100 associations
-- would otherwise leave 100 row versions behind), and a reader only needs "equal or not".
CREATE TABLE zone_data_version (
  zone_id text PRIMARY KEY REFERENCES zones (id),
  version bigint NOT NULL
);
INSERT INTO zone_data_version (zone_id, version) SELECT id, 0 FROM zones;

CREATE FUNCTION zone_data_version_on_zone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO zone_data_version (zone_id, version) VALUES (NEW.id, 0);
    RETURN NULL;
  END IF;
  DELETE FROM zone_data_version WHERE zone_id = OLD.id;
  RETURN OLD;
END;
$$;
CREATE TRIGGER zones_data_version_ins AFTER INSERT ON zones FOR EACH ROW EXECUTE FUNCTION zone_data_version_on_zone();
CREATE TRIGGER zones_data_version_del BEFORE DELETE ON zones FOR EACH ROW EXECUTE FUNCTION zone_data_version_on_zone();

CREATE FUNCTION bump_zone_data_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  tx bigint := txid_current();
BEGIN
  IF TG_OP <> 'INSERT' THEN
    UPDATE zone_data_version SET version = tx WHERE zone_id = OLD.zone_id AND version <> tx;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    UPDATE zone_data_version SET version = tx WHERE zone_id = NEW.zone_id AND version <> tx;
  END IF;
  RETURN NULL;
END;
$$;
CREATE TRIGGER aop_certificates_data_version AFTER INSERT OR UPDATE OR DELETE ON aop_certificates
  FOR EACH ROW EXECUTE FUNCTION bump_zone_data_version();
CREATE TRIGGER aop_associations_data_version AFTER INSERT OR UPDATE OR DELETE ON aop_associations
  FOR EACH ROW EXECUTE FUNCTION bump_zone_data_version();
