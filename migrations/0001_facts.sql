-- The append-only fact log (issue: foundation).
-- Facts are never updated or deleted: the triggers below make the database
-- itself refuse, whatever code runs against it.
CREATE TABLE facts (
    id              INTEGER PRIMARY KEY,
    idempotency_key TEXT    NOT NULL UNIQUE,
    stream          TEXT    NOT NULL CHECK (length(stream) BETWEEN 1 AND 128),
    entity          TEXT    NOT NULL CHECK (length(entity) BETWEEN 1 AND 256),
    event_time      INTEGER NOT NULL,          -- microseconds since the epoch, UTC
    ingest_time     INTEGER NOT NULL,          -- microseconds since the epoch, UTC
    data            TEXT    NOT NULL CHECK (json_valid(data) AND json_type(data) = 'object'),
    corrects        INTEGER REFERENCES facts(id)  -- the fact this one corrects, if any
) STRICT;

-- Point-in-time reads: the latest fact for an entity at or before a time.
CREATE INDEX facts_by_stream_entity_time ON facts(stream, entity, event_time, id);
-- Range reads over a stream regardless of entity.
CREATE INDEX facts_by_stream_time ON facts(stream, event_time, id);

CREATE TRIGGER facts_reject_update BEFORE UPDATE ON facts
BEGIN
    SELECT RAISE(ABORT, 'facts are immutable: send a correcting fact instead');
END;

CREATE TRIGGER facts_reject_delete BEFORE DELETE ON facts
BEGIN
    SELECT RAISE(ABORT, 'facts are immutable: they cannot be deleted');
END;

-- Per-stream counts and time range, kept by a trigger in the same transaction
-- as the insert so listing streams never scans the log.
CREATE TABLE stream_stats (
    stream           TEXT    PRIMARY KEY,
    fact_count       INTEGER NOT NULL,
    first_event_time INTEGER NOT NULL,
    last_event_time  INTEGER NOT NULL,
    last_ingest_time INTEGER NOT NULL,
    max_fact_id      INTEGER NOT NULL
) STRICT;

CREATE TRIGGER facts_count_stream AFTER INSERT ON facts
BEGIN
    INSERT INTO stream_stats (stream, fact_count, first_event_time, last_event_time,
                              last_ingest_time, max_fact_id)
    VALUES (NEW.stream, 1, NEW.event_time, NEW.event_time, NEW.ingest_time, NEW.id)
    ON CONFLICT (stream) DO UPDATE SET
        fact_count       = fact_count + 1,
        first_event_time = min(first_event_time, excluded.first_event_time),
        last_event_time  = max(last_event_time, excluded.last_event_time),
        last_ingest_time = max(last_ingest_time, excluded.last_ingest_time),
        max_fact_id      = max(max_fact_id, excluded.max_fact_id);
END;
