-- The corrections of a stream by entity: reading an entity's history (an
-- aggregate feature, its stored features) walked the stream's corrections
-- by time and kept those of the entity, so 20,000 corrections of other
-- entities made a 2-fact history cost 15 ms and escaped the request's
-- deadline, which is checked between the rows kept. Partial: only rows
-- that correct a fact, which few do.
CREATE INDEX facts_corrections_by_stream_entity ON facts(stream, entity, id)
  WHERE corrects IS NOT NULL;
