-- One counter per zone, bumped by every committed change to the zone's Authenticated Origin Pulls data (its
-- certificates of both kinds and its hostname associations), by any connection. The API keeps the answers of its
-- GET routes on a zone ready to send and re-checks this row (with tenancy_version) on every request, so an answer is
-- served from memory only while nothing it was built from has changed (docs/decisions/0010-answers-from-memory.md).
-- Zone rows themselves (name, the zone-level AOP setting) are covered by tenancy_version.
-- (`WHERE zone_id IN (OLD.zone_id, NEW.zone_id)` made each association upsert about 10x slower than two equality
-- updates: measured, see the decision record.)
CREATE TABLE zone_data_version (
  zone_id TEXT PRIMARY KEY REFERENCES zones (id),
  version INTEGER NOT NULL
);
INSERT INTO zone_data_version (zone_id, version) SELECT id, 0 FROM zones;

CREATE TRIGGER zones_data_version_ins AFTER INSERT ON zones BEGIN
  INSERT INTO zone_data_version (zone_id, version) VALUES (NEW.id, 0);
END;
CREATE TRIGGER zones_data_version_del BEFORE DELETE ON zones BEGIN
  DELETE FROM zone_data_version WHERE zone_id = OLD.id;
END;

CREATE TRIGGER aop_certificates_dv_ins AFTER INSERT ON aop_certificates BEGIN
  UPDATE zone_data_version SET version = version + 1 WHERE zone_id = NEW.zone_id;
END;
CREATE TRIGGER aop_certificates_dv_upd AFTER UPDATE ON aop_certificates BEGIN
  UPDATE zone_data_version SET version = version + 1 WHERE zone_id = NEW.zone_id;
  UPDATE zone_data_version SET version = version + 1 WHERE zone_id = OLD.zone_id AND OLD.zone_id <> NEW.zone_id;
END;
CREATE TRIGGER aop_certificates_dv_del AFTER DELETE ON aop_certificates BEGIN
  UPDATE zone_data_version SET version = version + 1 WHERE zone_id = OLD.zone_id;
END;
CREATE TRIGGER aop_associations_dv_ins AFTER INSERT ON aop_associations BEGIN
  UPDATE zone_data_version SET version = version + 1 WHERE zone_id = NEW.zone_id;
END;
CREATE TRIGGER aop_associations_dv_upd AFTER UPDATE ON aop_associations BEGIN
  UPDATE zone_data_version SET version = version + 1 WHERE zone_id = NEW.zone_id;
  UPDATE zone_data_version SET version = version + 1 WHERE zone_id = OLD.zone_id AND OLD.zone_id <> NEW.zone_id;
END;
CREATE TRIGGER aop_associations_dv_del AFTER DELETE ON aop_associations BEGIN
  UPDATE zone_data_version SET version = version + 1 WHERE zone_id = OLD.zone_id;
END;
