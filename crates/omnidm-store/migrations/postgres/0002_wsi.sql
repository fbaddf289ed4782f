-- omnidm schema v2 (PostgreSQL): the Web Services Interface. Same shape as the SQLite
-- schema; timestamps are Unix milliseconds (BIGINT), JSON columns are TEXT, keys use the
-- "C" collation.

CREATE TABLE apps (
    id          TEXT COLLATE "C" PRIMARY KEY,    -- AppId slug
    description TEXT NOT NULL,
    role        TEXT NOT NULL,                  -- admin | application
    rate_limit  BIGINT,
    daily_quota BIGINT,
    disabled    BOOLEAN NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT COLLATE "C" PRIMARY KEY,
    app_id     TEXT COLLATE "C" NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    hash       TEXT NOT NULL,                   -- PHC string, never the secret
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX api_keys_by_app ON api_keys (app_id, created_at);

CREATE TABLE groups (
    id          TEXT COLLATE "C" PRIMARY KEY,    -- GroupId slug
    description TEXT NOT NULL,
    kind        TEXT NOT NULL,                  -- static | filter
    filter      TEXT,                           -- JSON GroupFilter when kind = filter
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE group_members (
    group_id  TEXT COLLATE "C" NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    device_id TEXT COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, device_id)
);
CREATE INDEX group_members_by_device ON group_members (device_id, group_id);

CREATE TABLE grants (
    id          BIGSERIAL PRIMARY KEY,
    app_id      TEXT COLLATE "C" NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    permissions TEXT NOT NULL,                  -- JSON [Permission]
    subtrees    TEXT NOT NULL,                  -- JSON [SubtreePattern]
    group_id    TEXT COLLATE "C" NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL
);
CREATE INDEX grants_by_app ON grants (app_id, id);
CREATE INDEX grants_by_group ON grants (group_id);

-- Jobs outlive their application (like the event, charging and audit logs): no FK.
CREATE TABLE jobs (
    id           BIGSERIAL PRIMARY KEY,
    app_id       TEXT COLLATE "C" NOT NULL,
    target       TEXT NOT NULL,                 -- JSON JobTarget
    commands     TEXT NOT NULL,                 -- JSON [OpCommand]
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    notify       BOOLEAN NOT NULL,
    device_count BIGINT NOT NULL
);
CREATE INDEX jobs_by_app ON jobs (app_id, id);

ALTER TABLE operations ADD COLUMN job_id BIGINT;
CREATE INDEX operations_by_job_state ON operations (job_id, state) WHERE job_id IS NOT NULL;
CREATE INDEX operations_by_job_device ON operations (job_id, device_id) WHERE job_id IS NOT NULL;

-- The event log. Ids increase in commit order (every transaction that inserts events takes
-- a transaction-level advisory lock first): readers use them as cursors.
CREATE TABLE events (
    id           BIGSERIAL PRIMARY KEY,
    at           BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    device_id    TEXT COLLATE "C",
    app_id       TEXT COLLATE "C",
    job_id       BIGINT,
    operation_id BIGINT,
    path         TEXT,
    data         TEXT NOT NULL                  -- JSON
);
CREATE INDEX events_by_device ON events (device_id, id) WHERE device_id IS NOT NULL;
CREATE INDEX events_by_job ON events (job_id, id) WHERE job_id IS NOT NULL;
CREATE INDEX events_by_kind ON events (kind, id);

CREATE TABLE charges (
    id           BIGSERIAL PRIMARY KEY,
    at           BIGINT NOT NULL,
    app_id       TEXT COLLATE "C" NOT NULL,
    kind         TEXT NOT NULL,
    quantity     BIGINT NOT NULL,
    device_id    TEXT COLLATE "C",
    job_id       BIGINT,
    operation_id BIGINT
);
CREATE INDEX charges_by_app ON charges (app_id, at);
CREATE INDEX charges_by_at ON charges (at);

CREATE TABLE subscriptions (
    id              BIGSERIAL PRIMARY KEY,
    app_id          TEXT COLLATE "C" NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    secret          TEXT NOT NULL,
    event_types     TEXT NOT NULL,              -- JSON [EventKind]
    devices         TEXT NOT NULL,              -- JSON [DeviceId]
    group_id        TEXT COLLATE "C",
    cursor          BIGINT NOT NULL,
    enabled         BOOLEAN NOT NULL,
    disabled_reason TEXT,
    failures        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX subscriptions_by_app ON subscriptions (app_id, id);

CREATE TABLE deliveries (
    id              BIGSERIAL PRIMARY KEY,
    subscription_id BIGINT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    event_id        BIGINT NOT NULL,
    attempt         BIGINT NOT NULL,
    at              BIGINT NOT NULL,
    status          BIGINT,
    error           TEXT,
    duration_ms     BIGINT NOT NULL
);
CREATE INDEX deliveries_by_subscription ON deliveries (subscription_id, id);

CREATE TABLE audit (
    id      BIGSERIAL PRIMARY KEY,
    at      BIGINT NOT NULL,
    app_id  TEXT COLLATE "C",
    key_id  TEXT,
    method  TEXT NOT NULL,
    path    TEXT NOT NULL,
    target  TEXT,
    status  BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    rule    TEXT
);
CREATE INDEX audit_by_app ON audit (app_id, id);
CREATE INDEX audit_by_at ON audit (at);

CREATE TABLE idempotency (
    app_id       TEXT COLLATE "C" NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    key          TEXT COLLATE "C" NOT NULL,
    request_hash TEXT NOT NULL,
    status       BIGINT NOT NULL,
    location     TEXT,
    body         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (app_id, key)
);
CREATE INDEX idempotency_by_age ON idempotency (created_at);
