-- No table changes. Model definitions may now hold drift keys
-- (supervision.max_feature_drift, drift_window_seconds, min_drift_samples;
-- retrain.on_drift), and a version's features JSON a drift profile and
-- permutation importance. A Kennel from before cannot parse such a
-- definition and would skip the model while serving the rest; with the
-- schema version raised it refuses the database as newer than itself.
SELECT 1;
