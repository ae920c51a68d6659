-- Where each correction's chain began. A correction takes the place, and
-- the time, of the fact it corrects; of several corrections of one fact
-- (directly or through each other) the newest stands. Training, totals,
-- the label prior and the outcome join all read that one rule from here
-- instead of each walking `corrects` its own way (they disagreed on two
-- corrections of one fact and on a correction's time).
--
-- One row per correction whose chain stays in its stream (a correction is
-- refused in another stream; older ones there stand on their own). A fact
-- without a row is its own origin, at its own time. Facts stay immutable:
-- the rows are written by a trigger in the insert's transaction.
CREATE TABLE fact_origins (
    fact        INTEGER PRIMARY KEY REFERENCES facts(id),
    stream      TEXT    NOT NULL,
    origin      INTEGER NOT NULL REFERENCES facts(id),  -- the first fact of the chain
    origin_time INTEGER NOT NULL                        -- its event time: the chain's time
) STRICT;

-- The newest fact of a chain, and a stream's corrections by their chain's time.
CREATE INDEX fact_origins_by_origin ON fact_origins(origin, fact);
CREATE INDEX fact_origins_by_stream_time ON fact_origins(stream, origin_time, fact);

CREATE TRIGGER facts_record_origin AFTER INSERT ON facts WHEN NEW.corrects IS NOT NULL
BEGIN
    INSERT INTO fact_origins (fact, stream, origin, origin_time)
    SELECT NEW.id, NEW.stream, coalesce(o.origin, p.id), coalesce(o.origin_time, p.event_time)
    FROM facts p LEFT JOIN fact_origins o ON o.fact = p.id
    WHERE p.id = NEW.corrects AND p.stream = NEW.stream;
END;

-- The corrections already stored. A chain only goes back to smaller ids (a
-- correction names a fact stored before it), so its origin is the smallest
-- fact it reaches.
WITH RECURSIVE chain(fact, stream, at) AS (
    SELECT c.id, c.stream, p.id
    FROM facts c JOIN facts p ON p.id = c.corrects AND p.stream = c.stream
    WHERE c.corrects IS NOT NULL
    UNION ALL
    SELECT chain.fact, chain.stream, p.id
    FROM chain JOIN facts cur ON cur.id = chain.at
    JOIN facts p ON p.id = cur.corrects AND p.stream = chain.stream
)
INSERT INTO fact_origins (fact, stream, origin, origin_time)
SELECT m.fact, m.stream, m.origin, f.event_time
FROM (SELECT fact, stream, min(at) AS origin FROM chain GROUP BY fact) m
JOIN facts f ON f.id = m.origin
ORDER BY m.fact;

-- The newest fact id when a job was queued: the every-N-new-labels trigger
-- counts labels stored after it. It compared ingest times with the job's
-- creation time, so a wall clock stepped back stopped retraining until the
-- clock caught up. NULL for jobs queued before: those still go by time.
ALTER TABLE jobs ADD COLUMN facts_seen INTEGER;
