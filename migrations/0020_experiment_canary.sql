-- A canary: an experiment the "canary" promotion policy started for a
-- version that passed its gate (ml/canary.h), as JSON: the version and
-- live's, its share, the entities it is judged on, its loss bound and
-- deadline, and its outcome once decided (NULL: a person's experiment).
ALTER TABLE experiments ADD COLUMN canary TEXT CHECK (canary IS NULL OR json_valid(canary));

-- The supervisor's account holds a canary's decision too (kind 'canary').
-- SQLite cannot change a CHECK in place: the table is made again, rows kept.
CREATE TABLE supervisor_actions_new (
    id      INTEGER PRIMARY KEY,
    time    INTEGER NOT NULL,
    kind    TEXT    NOT NULL CHECK (kind IN ('disable', 'drift', 'canary')),
    model   TEXT    NOT NULL,
    version INTEGER NOT NULL,
    reason  TEXT    NOT NULL,
    outcome TEXT    NOT NULL
) STRICT;
INSERT INTO supervisor_actions_new SELECT id, time, kind, model, version, reason, outcome
    FROM supervisor_actions;
DROP TABLE supervisor_actions;
ALTER TABLE supervisor_actions_new RENAME TO supervisor_actions;
CREATE TRIGGER supervisor_actions_append_only BEFORE UPDATE ON supervisor_actions
BEGIN SELECT RAISE(ABORT, 'supervisor actions are append-only'); END;
