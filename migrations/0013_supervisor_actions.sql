-- What the supervisor did, kept across restarts. Its actions (a version
-- taken out of service, a version whose inputs drifted) were held in memory
-- only: /v1/serving and the deployments page lost them at every restart, and
-- a drift report then survived only as a log line. A version's disabling
-- is also in version_events, and a live move in deployments; this is the
-- supervisor's own account, with the outcome it saw.
CREATE TABLE supervisor_actions (
    id      INTEGER PRIMARY KEY,
    time    INTEGER NOT NULL,
    kind    TEXT    NOT NULL CHECK (kind IN ('disable', 'drift')),
    model   TEXT    NOT NULL,
    version INTEGER NOT NULL,
    reason  TEXT    NOT NULL,
    outcome TEXT    NOT NULL
) STRICT;
-- Rows are never changed; the oldest are deleted past the newest 10,000
-- (store/registry.cpp), so that a drift reported hourly on many versions
-- for years cannot grow the file without bound.
CREATE TRIGGER supervisor_actions_append_only BEFORE UPDATE ON supervisor_actions
BEGIN SELECT RAISE(ABORT, 'supervisor actions are append-only'); END;
