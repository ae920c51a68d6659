-- A version's artifact moves to the end of its row. SQLite stores a row's
-- columns in order, a large BLOB in a chain of overflow pages, and reads a
-- column after it by walking that chain: with a 361 MB forest stored, every
-- read of a version's metrics, gate or status (GET /v1/models/{name}, which
-- the admin page polls) took 0.9 s. The table is rebuilt with the same
-- columns, constraints and triggers; the rows are copied as they are. The
-- migration runner turns foreign keys off for the rebuild and checks them
-- all before it commits (SQLite's procedure for a changed table).
CREATE TABLE model_versions_rebuilt (
    model               TEXT    NOT NULL REFERENCES models(name),
    version             INTEGER NOT NULL,
    revision            INTEGER NOT NULL,
    job                 INTEGER REFERENCES jobs(id),
    algorithm           TEXT    NOT NULL,
    params              TEXT    NOT NULL CHECK (json_valid(params)),
    artifact_sha256     TEXT    NOT NULL,
    artifact_bytes      INTEGER NOT NULL,
    snapshot            TEXT    NOT NULL CHECK (json_valid(snapshot)),
    metrics             TEXT    NOT NULL CHECK (json_valid(metrics)),
    baseline_metrics    TEXT    NOT NULL CHECK (json_valid(baseline_metrics)),
    gate                TEXT    NOT NULL CHECK (json_valid(gate)),
    features            TEXT    NOT NULL CHECK (json_valid(features)),
    timings             TEXT    NOT NULL CHECK (json_valid(timings)),
    status              TEXT    NOT NULL CHECK (status IN ('candidate', 'rejected')),
    created_at          INTEGER NOT NULL,
    baseline            TEXT    NOT NULL DEFAULT 'null',
    artifact_removed_at INTEGER,
    artifact            BLOB    NOT NULL,
    PRIMARY KEY (model, version),
    FOREIGN KEY (model, revision) REFERENCES model_revisions(model, revision)
) STRICT;
INSERT INTO model_versions_rebuilt
    (model, version, revision, job, algorithm, params, artifact_sha256, artifact_bytes, snapshot,
     metrics, baseline_metrics, gate, features, timings, status, created_at, baseline,
     artifact_removed_at, artifact)
SELECT model, version, revision, job, algorithm, params, artifact_sha256, artifact_bytes, snapshot,
       metrics, baseline_metrics, gate, features, timings, status, created_at, baseline,
       artifact_removed_at, artifact
FROM model_versions;
DROP TABLE model_versions;
ALTER TABLE model_versions_rebuilt RENAME TO model_versions;

CREATE TRIGGER model_versions_permanent BEFORE DELETE ON model_versions
BEGIN SELECT RAISE(ABORT, 'model versions are never deleted'); END;
CREATE TRIGGER model_versions_immutable BEFORE UPDATE ON model_versions
WHEN NOT (old.artifact_removed_at IS NULL AND new.artifact_removed_at IS NOT NULL
          AND new.artifact = x''
          AND new.model IS old.model AND new.version IS old.version
          AND new.revision IS old.revision AND new.job IS old.job
          AND new.algorithm IS old.algorithm AND new.params IS old.params
          AND new.artifact_sha256 IS old.artifact_sha256
          AND new.artifact_bytes IS old.artifact_bytes AND new.snapshot IS old.snapshot
          AND new.metrics IS old.metrics AND new.baseline_metrics IS old.baseline_metrics
          AND new.gate IS old.gate AND new.features IS old.features
          AND new.timings IS old.timings AND new.status IS old.status
          AND new.created_at IS old.created_at AND new.baseline IS old.baseline)
BEGIN SELECT RAISE(ABORT, 'model versions are immutable (only an old artifact may be removed)'); END;
