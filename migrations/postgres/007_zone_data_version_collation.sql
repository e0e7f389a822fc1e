-- zone_data_version.zone_id was created without COLLATE "C", unlike zones.id and every zone_id it is compared
-- with. The triggers of 006 compare it with aop_associations.zone_id and aop_certificates.zone_id (COLLATE "C"), so
-- the comparison ran in collation "C" and the primary key's index (default collation) could not serve it: every
-- association or certificate row written ran two sequential scans of this table, one row per zone. A PUT of 100
-- hostnames in an installation of 2,000 zones spent 40 ms in them (auto_explain: Seq Scan on zone_data_version,
-- Rows Removed by Filter: 4000, 0.45 ms a call). PostgreSQL matches an index to a comparison by collation, not by
-- what the collations do, so this holds even where the database's default collation is itself "C".
ALTER TABLE zone_data_version ALTER COLUMN zone_id TYPE text COLLATE "C";
