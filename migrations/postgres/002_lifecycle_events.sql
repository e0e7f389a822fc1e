-- Every status change made by the deployer: an audit trail, and the proof that each transition happens once.
CREATE TABLE lifecycle_events (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subject_kind text COLLATE "C" NOT NULL,
  subject_id   text COLLATE "C" NOT NULL,
  from_status  text NOT NULL,
  to_status    text NOT NULL,
  version      bigint NOT NULL,
  at           timestamptz NOT NULL
);
CREATE INDEX lifecycle_events_by_subject ON lifecycle_events (subject_kind, subject_id, id);
