-- Every status change made by the deployer: an audit trail, and the proof that each transition happens once.
CREATE TABLE lifecycle_events (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  subject_kind TEXT NOT NULL,
  subject_id   TEXT NOT NULL,
  from_status  TEXT NOT NULL,
  to_status    TEXT NOT NULL,
  version      INTEGER NOT NULL,
  at           TEXT NOT NULL
);
CREATE INDEX lifecycle_events_by_subject ON lifecycle_events (subject_kind, subject_id, id);
