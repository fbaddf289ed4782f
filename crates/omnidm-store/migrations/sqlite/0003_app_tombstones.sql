-- omnidm schema v3 (SQLite): application ids are never reused (issue 8 item 12). A deleted
-- application leaves a tombstone, so a new application cannot take its id and with it the
-- old one's operations, results, events and charging records (which keep the id as text).

CREATE TABLE deleted_apps (
    id         TEXT PRIMARY KEY,                -- AppId slug
    deleted_at INTEGER NOT NULL
);

-- Applications deleted before this migration: every id the logs still name.
INSERT OR IGNORE INTO deleted_apps (id, deleted_at)
SELECT app_id, CAST(strftime('%s', 'now') AS INTEGER) * 1000
FROM (
    SELECT app_id FROM jobs
    UNION SELECT app_id FROM charges
    UNION SELECT app_id FROM events WHERE app_id IS NOT NULL
    UNION SELECT app_id FROM audit WHERE app_id IS NOT NULL
)
WHERE app_id NOT IN (SELECT id FROM apps);
