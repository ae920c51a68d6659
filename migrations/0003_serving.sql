-- Serving (issue: responding): the baseline's answer kept with each version
-- as the fallback, version enable/disable events, experiments, and the
-- prediction log that outcomes are joined to.

-- The baseline's constant answer as JSON ({"value", "label", "probabilities"}).
ALTER TABLE model_versions ADD COLUMN baseline TEXT NOT NULL DEFAULT 'null';

-- Disabling and enabling versions, by a person or the supervisor. The latest
-- event per version is its state; the history is never changed.
CREATE TABLE version_events (
    id      INTEGER PRIMARY KEY,
    model   TEXT    NOT NULL REFERENCES models(name),
    version INTEGER NOT NULL,
    event   TEXT    NOT NULL CHECK (event IN ('disabled', 'enabled')),
    time    INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    reason  TEXT    NOT NULL,
    FOREIGN KEY (model, version) REFERENCES model_versions(model, version)
) STRICT;
CREATE INDEX version_events_by_model ON version_events(model, version, id);
CREATE TRIGGER version_events_append_only BEFORE UPDATE ON version_events
BEGIN SELECT RAISE(ABORT, 'version events are append-only'); END;
CREATE TRIGGER version_events_permanent BEFORE DELETE ON version_events
BEGIN SELECT RAISE(ABORT, 'version events are append-only'); END;

-- A traffic split between versions. arms: [{"name","version","weight","shadow"}].
CREATE TABLE experiments (
    id         INTEGER PRIMARY KEY,
    model      TEXT    NOT NULL REFERENCES models(name),
    arms       TEXT    NOT NULL CHECK (json_valid(arms)),
    started_at INTEGER NOT NULL,
    started_by TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    ended_at   INTEGER,
    ended_by   TEXT,
    end_reason TEXT
) STRICT;
CREATE UNIQUE INDEX experiments_one_active ON experiments(model) WHERE ended_at IS NULL;

-- Every change to an experiment (start, change of arms, end), append-only.
CREATE TABLE experiment_events (
    id         INTEGER PRIMARY KEY,
    experiment INTEGER NOT NULL REFERENCES experiments(id),
    time       INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    event      TEXT    NOT NULL,
    arms       TEXT    NOT NULL,
    reason     TEXT    NOT NULL
) STRICT;
CREATE TRIGGER experiment_events_append_only BEFORE UPDATE ON experiment_events
BEGIN SELECT RAISE(ABORT, 'experiment history is append-only'); END;

-- The prediction log, written off the request path.
CREATE TABLE predictions (
    id            TEXT    PRIMARY KEY,
    model         TEXT    NOT NULL,
    version       INTEGER,              -- NULL: answered by a constant fallback
    arm           TEXT    NOT NULL,     -- "live", an experiment arm, or "fallback"
    shadow        INTEGER NOT NULL DEFAULT 0,
    entity        TEXT,
    time          INTEGER NOT NULL,
    value         REAL,
    label         TEXT,
    probabilities TEXT,
    fallback      INTEGER NOT NULL,
    reason        TEXT,
    latency_us    INTEGER NOT NULL,
    features_hash TEXT    NOT NULL
) STRICT;
CREATE INDEX predictions_by_model_time ON predictions(model, time);
CREATE INDEX predictions_by_entity ON predictions(model, entity, time);
