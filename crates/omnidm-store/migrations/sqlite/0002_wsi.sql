-- omnidm schema v2 (SQLite): the Web Services Interface. Timestamps are Unix milliseconds
-- (INTEGER); JSON columns (TEXT) hold serde_json of omnidm-core types.

CREATE TABLE apps (
    id          TEXT PRIMARY KEY,               -- AppId slug
    description TEXT NOT NULL,
    role        TEXT NOT NULL,                  -- admin | application
    rate_limit  INTEGER,
    daily_quota INTEGER,
    disabled    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    app_id     TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    hash       TEXT NOT NULL,                   -- PHC string, never the secret
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX api_keys_by_app ON api_keys (app_id, created_at);

CREATE TABLE groups (
    id          TEXT PRIMARY KEY,               -- GroupId slug
    description TEXT NOT NULL,
    kind        TEXT NOT NULL,                  -- static | filter
    filter      TEXT,                           -- JSON GroupFilter when kind = filter
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE group_members (
    group_id  TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, device_id)
) WITHOUT ROWID;
CREATE INDEX group_members_by_device ON group_members (device_id, group_id);

CREATE TABLE grants (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    permissions TEXT NOT NULL,                  -- JSON [Permission]
    subtrees    TEXT NOT NULL,                  -- JSON [SubtreePattern]
    group_id    TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL
);
CREATE INDEX grants_by_app ON grants (app_id, id);
CREATE INDEX grants_by_group ON grants (group_id);

-- Jobs outlive their application (like the event, charging and audit logs): no FK.
CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id       TEXT NOT NULL,
    target       TEXT NOT NULL,                 -- JSON JobTarget
    commands     TEXT NOT NULL,                 -- JSON [OpCommand]
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    notify       INTEGER NOT NULL,
    device_count INTEGER NOT NULL
);
CREATE INDEX jobs_by_app ON jobs (app_id, id);

ALTER TABLE operations ADD COLUMN job_id INTEGER;
CREATE INDEX operations_by_job_state ON operations (job_id, state) WHERE job_id IS NOT NULL;
CREATE INDEX operations_by_job_device ON operations (job_id, device_id) WHERE job_id IS NOT NULL;

-- The event log. Ids increase in commit order (one writer): readers use them as cursors.
CREATE TABLE events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    device_id    TEXT,
    app_id       TEXT,
    job_id       INTEGER,
    operation_id INTEGER,
    path         TEXT,
    data         TEXT NOT NULL                  -- JSON
);
CREATE INDEX events_by_device ON events (device_id, id) WHERE device_id IS NOT NULL;
CREATE INDEX events_by_job ON events (job_id, id) WHERE job_id IS NOT NULL;
CREATE INDEX events_by_kind ON events (kind, id);

CREATE TABLE charges (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    app_id       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    quantity     INTEGER NOT NULL,
    device_id    TEXT,
    job_id       INTEGER,
    operation_id INTEGER
);
CREATE INDEX charges_by_app ON charges (app_id, at);
CREATE INDEX charges_by_at ON charges (at);

CREATE TABLE subscriptions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id          TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    secret          TEXT NOT NULL,
    event_types     TEXT NOT NULL,              -- JSON [EventKind]
    devices         TEXT NOT NULL,              -- JSON [DeviceId]
    group_id        TEXT,
    cursor          INTEGER NOT NULL,
    enabled         INTEGER NOT NULL,
    disabled_reason TEXT,
    failures        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX subscriptions_by_app ON subscriptions (app_id, id);

CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id INTEGER NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    event_id        INTEGER NOT NULL,
    attempt         INTEGER NOT NULL,
    at              INTEGER NOT NULL,
    status          INTEGER,
    error           TEXT,
    duration_ms     INTEGER NOT NULL
);
CREATE INDEX deliveries_by_subscription ON deliveries (subscription_id, id);

CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    app_id  TEXT,
    key_id  TEXT,
    method  TEXT NOT NULL,
    path    TEXT NOT NULL,
    target  TEXT,
    status  INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    rule    TEXT
);
CREATE INDEX audit_by_app ON audit (app_id, id);
CREATE INDEX audit_by_at ON audit (at);

CREATE TABLE idempotency (
    app_id       TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    location     TEXT,
    body         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (app_id, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_by_age ON idempotency (created_at);
