-- The prediction log in one B-tree. A rowid table with a TEXT primary key and
-- an index on (model, time) put every logged prediction into three B-trees;
-- live metrics read the log only by model and time, so the rows themselves
-- are now kept in (model, time, id) order (WITHOUT ROWID): one append per
-- prediction, at the right edge of its model's range. The id stays unique in
-- practice (microseconds and 72 random bits) and stays in every row.
CREATE TABLE predictions_in_time_order (
    model         TEXT    NOT NULL,
    time          INTEGER NOT NULL,
    id            TEXT    NOT NULL,
    version       INTEGER,              -- NULL: answered by a constant fallback
    arm           TEXT    NOT NULL,     -- "live", an experiment arm, or "fallback"
    shadow        INTEGER NOT NULL DEFAULT 0,
    entity        TEXT,
    value         REAL,
    label         TEXT,
    probabilities TEXT,
    fallback      INTEGER NOT NULL,
    reason        TEXT,
    latency_us    INTEGER NOT NULL,
    features_hash TEXT    NOT NULL,
    PRIMARY KEY (model, time, id)
) STRICT, WITHOUT ROWID;
INSERT INTO predictions_in_time_order
    (model, time, id, version, arm, shadow, entity, value, label, probabilities, fallback, reason,
     latency_us, features_hash)
SELECT model, time, id, version, arm, shadow, entity, value, label, probabilities, fallback, reason,
       latency_us, features_hash
FROM predictions;
DROP TABLE predictions;
ALTER TABLE predictions_in_time_order RENAME TO predictions;
