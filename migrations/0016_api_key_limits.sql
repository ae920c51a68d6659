-- API keys limited to some models and streams. An app's predict key could
-- ask every model, and its ingest key write to every stream: a leaked key
-- reached everything its scope did.
-- models: the models a predict key may ask; streams: those an ingest key
-- may send facts to (comma-separated names, which hold no comma; NULL: any).
ALTER TABLE api_keys ADD COLUMN models TEXT;
ALTER TABLE api_keys ADD COLUMN streams TEXT;
