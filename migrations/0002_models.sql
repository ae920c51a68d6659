-- Models, their immutable revisions and versions, training jobs, aliases and
-- the append-only deployment history (issue: learning).

-- Corrections are looked up when building training sets.
CREATE INDEX facts_by_corrects ON facts(corrects) WHERE corrects IS NOT NULL;

-- A model is a name and a pointer to its newest definition revision.
CREATE TABLE models (
    name             TEXT    PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    created_at       INTEGER NOT NULL,
    current_revision INTEGER NOT NULL
) STRICT;

-- Each change to a definition is a new revision; revisions never change.
CREATE TABLE model_revisions (
    model      TEXT    NOT NULL REFERENCES models(name),
    revision   INTEGER NOT NULL,
    definition TEXT    NOT NULL CHECK (json_valid(definition)),
    created_at INTEGER NOT NULL,
    author     TEXT    NOT NULL,
    PRIMARY KEY (model, revision)
) STRICT;

CREATE TRIGGER model_revisions_immutable BEFORE UPDATE ON model_revisions
BEGIN SELECT RAISE(ABORT, 'model revisions are immutable'); END;
CREATE TRIGGER model_revisions_permanent BEFORE DELETE ON model_revisions
BEGIN SELECT RAISE(ABORT, 'model revisions are never deleted'); END;

-- One training run. The state machine lives in store/registry.cpp.
CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY,
    model        TEXT    NOT NULL REFERENCES models(name),
    revision     INTEGER NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed',
                                                   'timed_out', 'cancelled', 'interrupted')),
    trigger      TEXT    NOT NULL,              -- manual, new_labels, interval, requeued, demo
    requested_by TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER,
    progress     REAL    NOT NULL DEFAULT 0,
    message      TEXT    NOT NULL DEFAULT '',
    error        TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    requeued_from INTEGER REFERENCES jobs(id),
    version      INTEGER,                       -- the version it produced
    FOREIGN KEY (model, revision) REFERENCES model_revisions(model, revision)
) STRICT;
CREATE INDEX jobs_by_model ON jobs(model, id);
CREATE INDEX jobs_by_state ON jobs(state, id);

CREATE TABLE job_log (
    job     INTEGER NOT NULL REFERENCES jobs(id),
    seq     INTEGER NOT NULL,
    time    INTEGER NOT NULL,
    level   TEXT    NOT NULL,
    message TEXT    NOT NULL,
    PRIMARY KEY (job, seq)
) STRICT;

-- A trained, evaluated model. Immutable: what was evaluated is what is served.
CREATE TABLE model_versions (
    model            TEXT    NOT NULL REFERENCES models(name),
    version          INTEGER NOT NULL,
    revision         INTEGER NOT NULL,
    job              INTEGER REFERENCES jobs(id),
    algorithm        TEXT    NOT NULL,
    params           TEXT    NOT NULL CHECK (json_valid(params)),
    artifact         BLOB    NOT NULL,
    artifact_sha256  TEXT    NOT NULL,
    artifact_bytes   INTEGER NOT NULL,
    snapshot         TEXT    NOT NULL CHECK (json_valid(snapshot)),
    metrics          TEXT    NOT NULL CHECK (json_valid(metrics)),
    baseline_metrics TEXT    NOT NULL CHECK (json_valid(baseline_metrics)),
    gate             TEXT    NOT NULL CHECK (json_valid(gate)),
    features         TEXT    NOT NULL CHECK (json_valid(features)),
    timings          TEXT    NOT NULL CHECK (json_valid(timings)),
    status           TEXT    NOT NULL CHECK (status IN ('candidate', 'rejected')),
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (model, version),
    FOREIGN KEY (model, revision) REFERENCES model_revisions(model, revision)
) STRICT;

CREATE TRIGGER model_versions_immutable BEFORE UPDATE ON model_versions
BEGIN SELECT RAISE(ABORT, 'model versions are immutable'); END;
CREATE TRIGGER model_versions_permanent BEFORE DELETE ON model_versions
BEGIN SELECT RAISE(ABORT, 'model versions are never deleted'); END;

-- Movable names for versions ("live", "candidate", ...). Every move is
-- recorded in deployments, in the same transaction.
CREATE TABLE aliases (
    model      TEXT    NOT NULL REFERENCES models(name),
    alias      TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (model, alias),
    FOREIGN KEY (model, version) REFERENCES model_versions(model, version)
) STRICT;

CREATE TABLE deployments (
    id               INTEGER PRIMARY KEY,
    model            TEXT    NOT NULL REFERENCES models(name),
    alias            TEXT    NOT NULL,
    version          INTEGER,            -- NULL: the alias was removed
    previous_version INTEGER,
    time             INTEGER NOT NULL,
    actor            TEXT    NOT NULL,   -- a person, or "policy:auto", "supervisor"
    reason           TEXT    NOT NULL
) STRICT;
CREATE INDEX deployments_by_model ON deployments(model, id);

CREATE TRIGGER deployments_append_only BEFORE UPDATE ON deployments
BEGIN SELECT RAISE(ABORT, 'deployment history is append-only'); END;
CREATE TRIGGER deployments_permanent BEFORE DELETE ON deployments
BEGIN SELECT RAISE(ABORT, 'deployment history is append-only'); END;
