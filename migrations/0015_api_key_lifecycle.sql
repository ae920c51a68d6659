-- API keys that end by themselves, say when each was last used, and may be
-- limited to some models and streams.
-- A key handed to a contractor or a one-off script worked until someone
-- remembered to revoke it, nothing told an operator which keys were still
-- in use before revoking one, and an app's predict key could ask every
-- model (its ingest key write to every stream).
-- expires_at: when the key stops working (microseconds since the epoch;
-- NULL: never). last_used_at: the newest request it authenticated, as
-- the server last wrote it (once a minute and at a stop; NULL: never).
ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;
ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;
-- models: the models a predict key may ask; streams: those an ingest key
-- may send facts to (comma-separated names, which hold no comma; NULL: any).
ALTER TABLE api_keys ADD COLUMN models TEXT;
ALTER TABLE api_keys ADD COLUMN streams TEXT;
