-- omnidm schema v4 (SQLite): secrets the server generates once and every node shares
-- (issue 8). `correlator_key`: the HMAC key that binds an Exec's wire correlator to its
-- device, operation and command, so that a Generic Alert cannot report for another device.

CREATE TABLE server_secrets (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,                   -- hex
    created_at INTEGER NOT NULL
);
