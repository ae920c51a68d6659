-- API keys that end by themselves, and when each was last used.
-- A key handed to a contractor or a one-off script worked until someone
-- remembered to revoke it, and nothing told an operator which keys were
-- still in use before revoking one.
-- expires_at: when the key stops working (microseconds since the epoch;
-- NULL: never). last_used_at: the newest request it authenticated, as
-- the server last wrote it (once a minute and at a stop; NULL: never).
ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;
ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;
