-- Archiving a model: out of service and out of the lists, its history kept.
-- A team's abandoned models kept their scheduled retraining, their loaded
-- versions and their place on the admin page for good: nothing could take
-- one away. Archiving is a state, not a deletion (revisions, versions and
-- moves stay append-only), and restoring brings the model back as it was.
CREATE TABLE model_events (
    id     INTEGER PRIMARY KEY,
    model  TEXT    NOT NULL REFERENCES models(name),
    event  TEXT    NOT NULL CHECK (event IN ('archived', 'restored')),
    time   INTEGER NOT NULL,
    actor  TEXT    NOT NULL,
    reason TEXT    NOT NULL
) STRICT;
CREATE INDEX model_events_by_model ON model_events(model, id);
CREATE TRIGGER model_events_append_only BEFORE UPDATE ON model_events
BEGIN SELECT RAISE(ABORT, 'model events are append-only'); END;
CREATE TRIGGER model_events_permanent BEFORE DELETE ON model_events
BEGIN SELECT RAISE(ABORT, 'model events are append-only'); END;

-- The newest 'archived' event's time while it is the model's newest event,
-- else NULL: the lists and the scheduler filter on it without a join.
ALTER TABLE models ADD COLUMN archived_at INTEGER;
