-- omnidm schema v1 (SQLite). Timestamps are Unix milliseconds (INTEGER).
-- JSON columns (TEXT) hold serde_json of omnidm-core types; only omnidm-store reads them.

CREATE TABLE devices (
    id               TEXT PRIMARY KEY,          -- DevId, e.g. IMEI:493005100592800
    protocol         TEXT NOT NULL,             -- oma_dm | tr069 | lwm2m
    manufacturer     TEXT,                      -- copied from info, for filters
    model            TEXT,
    firmware_version TEXT,
    info             TEXT NOT NULL,             -- JSON DeviceInfo
    tags             TEXT NOT NULL,             -- JSON array; device_tags mirrors it for filters
    dm_client_auth   TEXT,                      -- NULL = no DM account
    dm_client_name   TEXT,
    dm_client_key    TEXT,                      -- b64(md5(name:secret)), never the secret
    dm_server_id     TEXT,
    dm_server_key    TEXT,
    dm_client_nonce  BLOB,
    dm_server_nonce  BLOB,
    quirk_profile    TEXT,
    first_seen       INTEGER,
    last_seen        INTEGER,
    session_count    INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL
);
CREATE INDEX devices_by_model ON devices (manufacturer, model, id);
CREATE INDEX devices_by_model_only ON devices (model, id);
CREATE INDEX devices_by_firmware ON devices (firmware_version, id);

CREATE TABLE device_tags (
    device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    tag       TEXT NOT NULL,
    PRIMARY KEY (device_id, tag)
) WITHOUT ROWID;
CREATE INDEX device_tags_by_tag ON device_tags (tag, device_id);

-- Tree cache: last known value of every node the server has seen.
-- path is NodePath's canonical text; subtree reads are range scans on it.
CREATE TABLE tree_nodes (
    device_id  TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    path       TEXT NOT NULL,
    depth      INTEGER NOT NULL,
    format     TEXT NOT NULL,
    mime_type  TEXT,
    value      TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, path)
) WITHOUT ROWID;

CREATE TABLE operations (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id    TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    state        TEXT NOT NULL,                 -- queued | in_session | succeeded | failed | expired | cancelled
    commands     TEXT NOT NULL,                 -- JSON [OpCommand]
    outcomes     TEXT NOT NULL,                 -- JSON [CommandOutcome]
    sent         TEXT NOT NULL,                 -- JSON [bool], per top-level command
    session      TEXT,                          -- holder while in_session
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    notify       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL,
    submitted_by TEXT
);
CREATE INDEX operations_by_device ON operations (device_id, state, id);
CREATE INDEX operations_by_state ON operations (state, expires_at);
CREATE INDEX operations_by_session ON operations (session) WHERE session IS NOT NULL;
