-- A binary answer's decision as served, the fourteenth element of a
-- prediction log entry (entries written before it have thirteen: the
-- column reads NULL for them). Decision rules (ml/decision.h) set each
-- version's threshold, and a fallback decides at its own: live metrics
-- measure the decisions made, not a replay of them at one threshold.
DROP VIEW predictions;
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
       json_extract(e.value, '$[12]')           AS features_hash,
       json_extract(e.value, '$[13]')           AS decision
FROM prediction_segments s, json_each(s.entries) e;
