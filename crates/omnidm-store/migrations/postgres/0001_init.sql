-- omnidm schema v1 (PostgreSQL). Same shape as the SQLite schema; timestamps are Unix
-- milliseconds (BIGINT). Keys and paths use the "C" collation so ordering and range scans
-- are bytewise, exactly as in SQLite.

CREATE TABLE devices (
    id               TEXT COLLATE "C" PRIMARY KEY,
    protocol         TEXT NOT NULL,
    manufacturer     TEXT,
    model            TEXT,
    firmware_version TEXT,
    info             TEXT NOT NULL,
    tags             TEXT NOT NULL,
    dm_client_auth   TEXT,
    dm_client_name   TEXT,
    dm_client_key    TEXT,
    dm_server_id     TEXT,
    dm_server_key    TEXT,
    dm_client_nonce  BYTEA,
    dm_server_nonce  BYTEA,
    quirk_profile    TEXT,
    first_seen       BIGINT,
    last_seen        BIGINT,
    session_count    BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL
);
CREATE INDEX devices_by_model ON devices (manufacturer, model, id);
CREATE INDEX devices_by_model_only ON devices (model, id);
CREATE INDEX devices_by_firmware ON devices (firmware_version, id);

CREATE TABLE device_tags (
    device_id TEXT COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    tag       TEXT NOT NULL,
    PRIMARY KEY (device_id, tag)
);
CREATE INDEX device_tags_by_tag ON device_tags (tag, device_id);

CREATE TABLE tree_nodes (
    device_id  TEXT COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    path       TEXT COLLATE "C" NOT NULL,
    depth      BIGINT NOT NULL,
    format     TEXT NOT NULL,
    mime_type  TEXT,
    value      TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, path)
);

CREATE TABLE operations (
    id           BIGSERIAL PRIMARY KEY,
    device_id    TEXT COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    state        TEXT NOT NULL,
    commands     TEXT NOT NULL,
    outcomes     TEXT NOT NULL,
    sent         TEXT NOT NULL,
    session      TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    notify       BOOLEAN NOT NULL,
    attempts     BIGINT NOT NULL,
    submitted_by TEXT
);
CREATE INDEX operations_by_device ON operations (device_id, state, id);
CREATE INDEX operations_by_state ON operations (state, expires_at);
CREATE INDEX operations_by_session ON operations (session) WHERE session IS NOT NULL;
