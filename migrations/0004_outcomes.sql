-- Outcomes name the prediction they resolve with a "prediction_id" field;
-- this partial index makes that join a lookup instead of a scan.
CREATE INDEX facts_by_prediction_id ON facts(json_extract(data, '$.prediction_id'))
    WHERE json_type(data, '$.prediction_id') = 'text';
