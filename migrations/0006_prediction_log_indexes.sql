-- The prediction log is written for every answer; each index is one more
-- random B-tree insert per prediction. Live metrics join outcomes by the
-- facts' own indexes and read predictions by model and time only, so the
-- per-entity index is not worth its cost (bench/predict: the log's commits
-- were a fifth to a third of Kennel's CPU under load).
DROP INDEX predictions_by_entity;
