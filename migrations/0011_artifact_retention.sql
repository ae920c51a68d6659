-- Retention: the artifact of an old version may be removed (`serve
-- --keep-versions`), so that a model retrained every few minutes does not
-- fill the disk. The row stays, with its metrics, gate, features and
-- history; only the bytes go, and the time they went is recorded. That is
-- the one change a version ever takes: any other stays refused.
ALTER TABLE model_versions ADD COLUMN artifact_removed_at INTEGER;

DROP TRIGGER model_versions_immutable;
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
