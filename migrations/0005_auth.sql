-- Who may do what (issue: admin page): admin users with salted PBKDF2
-- password hashes, and API keys with scopes, stored only as hashes.
CREATE TABLE users (
    name        TEXT    PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    salt        TEXT    NOT NULL,
    iterations  INTEGER NOT NULL,
    hash        TEXT    NOT NULL,           -- hex PBKDF2-HMAC-SHA256
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    prefix      TEXT    NOT NULL,           -- the first characters, to recognise a key
    key_hash    TEXT    NOT NULL UNIQUE,    -- SHA-256 of the whole key
    scopes      TEXT    NOT NULL,           -- comma-separated: ingest, predict, admin
    created_at  INTEGER NOT NULL,
    created_by  TEXT    NOT NULL,
    revoked_at  INTEGER,
    revoked_by  TEXT
) STRICT;
