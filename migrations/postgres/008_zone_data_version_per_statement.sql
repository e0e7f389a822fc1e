-- 006's version triggers ran once per row: a PUT of 100 associations, one statement, called the trigger function 100
-- times, each running up to two UPDATEs of the zone's version row (all but the first no-ops, by `version <> tx`).
-- Measured on a throw-away cluster (100-row upserts of the bulk statement, three secondary indexes, p50 of 200, three
-- rounds): 2.3–2.5 ms without a trigger, 3.7–3.9 ms with the row trigger, 2.5–2.7 ms with these statement triggers.
-- A statement-level trigger sees the rows the statement changed as transition tables and bumps each zone among them
-- once. PostgreSQL allows transition tables only on triggers of a single event, hence three triggers per table; an
-- INSERT … ON CONFLICT DO UPDATE fires both the INSERT one (rows inserted) and the UPDATE one (rows updated). The loop
-- updates one zone at a time by its primary key, so no plan of a join with a transition table can scan the table.
DROP TRIGGER aop_certificates_data_version ON aop_certificates;
DROP TRIGGER aop_associations_data_version ON aop_associations;
DROP FUNCTION bump_zone_data_version();

CREATE FUNCTION bump_zone_data_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  tx bigint := txid_current();
  z text COLLATE "C";
BEGIN
  IF TG_OP <> 'INSERT' THEN
    FOR z IN SELECT DISTINCT zone_id FROM old_rows LOOP
      UPDATE zone_data_version SET version = tx WHERE zone_id = z AND version <> tx;
    END LOOP;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    FOR z IN SELECT DISTINCT zone_id FROM new_rows LOOP
      UPDATE zone_data_version SET version = tx WHERE zone_id = z AND version <> tx;
    END LOOP;
  END IF;
  RETURN NULL;
END;
$$;

-- Three triggers on each table (aop_certificates_data_version_ins, _upd, _del; aop_associations_…).
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['aop_certificates', 'aop_associations'] LOOP
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows '
      'FOR EACH STATEMENT EXECUTE FUNCTION bump_zone_data_version()', t || '_data_version_ins', t);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
      'FOR EACH STATEMENT EXECUTE FUNCTION bump_zone_data_version()', t || '_data_version_upd', t);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS old_rows '
      'FOR EACH STATEMENT EXECUTE FUNCTION bump_zone_data_version()', t || '_data_version_del', t);
  END LOOP;
END;
$$;
