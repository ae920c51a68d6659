-- The prediction log in segments. One B-tree row per prediction cost the
-- writer about 2.4 us of SQLite work per prediction (bench/predict, perf):
-- a tenth of a single prediction's CPU, and under batched requests the
-- writer could not keep up and dropped half of the log. The log is now
-- written a flush at a time (every few milliseconds): one row per model
-- holding that flush's predictions as a JSON array, one array per
-- prediction in the order of the view's columns below. Live metrics read
-- segments by model and time; the view `predictions` keeps the log
-- readable row by row with plain SQL, as before.
CREATE TABLE prediction_segments (
    id         INTEGER PRIMARY KEY,
    model      TEXT    NOT NULL,
    first_time INTEGER NOT NULL,  -- the earliest and the latest prediction in it
    last_time  INTEGER NOT NULL,
    size       INTEGER NOT NULL,  -- predictions in it
    -- [[id, version, arm, shadow, entity, time, value, label, probabilities,
    --   fallback, reason, latency_us, features_hash], ...]
    entries    TEXT    NOT NULL
) STRICT;
CREATE INDEX prediction_segments_by_model_time ON prediction_segments (model, last_time);

-- Existing rows move into segments of up to 1,000 predictions per model.
INSERT INTO prediction_segments (model, first_time, last_time, size, entries)
SELECT model, min(time), max(time), count(*),
       json_group_array(json_array(id, version, arm, shadow, entity, time, value, label,
                                   json(probabilities), fallback, reason, latency_us,
                                   features_hash))
FROM (SELECT *, (row_number() OVER (PARTITION BY model ORDER BY time, id) - 1) / 1000 AS chunk
      FROM predictions ORDER BY model, time, id)
GROUP BY model, chunk;
DROP TABLE predictions;

CREATE VIEW predictions AS
SELECT s.model                                  AS model,
       json_extract(e.value, '$[5]')            AS time,
       json_extract(e.value, '$[0]')            AS id,
       json_extract(e.value, '$[1]')            AS version,
       json_extract(e.value, '$[2]')            AS arm,
       json_extract(e.value, '$[3]')            AS shadow,
       json_extract(e.value, '$[4]')            AS entity,
       CAST(json_extract(e.value, '$[6]') AS REAL) AS value,
       json_extract(e.value, '$[7]')            AS label,
       json_extract(e.value, '$[8]')            AS probabilities,
       json_extract(e.value, '$[9]')            AS fallback,
       json_extract(e.value, '$[10]')           AS reason,
       json_extract(e.value, '$[11]')           AS latency_us,
       json_extract(e.value, '$[12]')           AS features_hash
FROM prediction_segments s, json_each(s.entries) e;
