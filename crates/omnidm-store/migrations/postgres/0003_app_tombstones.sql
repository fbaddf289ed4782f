-- omnidm schema v3 (PostgreSQL): application ids are never reused (issue 8 item 12). A
-- deleted application leaves a tombstone, so a new application cannot take its id and with
-- it the old one's operations, results, events and charging records (which keep the id as
-- text).

CREATE TABLE deleted_apps (
    id         TEXT COLLATE "C" PRIMARY KEY,    -- AppId slug
    deleted_at BIGINT NOT NULL
);

-- Applications deleted before this migration: every id the logs still name.
INSERT INTO deleted_apps (id, deleted_at)
SELECT app_id, (extract(epoch FROM now()) * 1000)::BIGINT
FROM (
    SELECT app_id COLLATE "C" AS app_id FROM jobs
    UNION SELECT app_id COLLATE "C" FROM charges
    UNION SELECT app_id COLLATE "C" FROM events WHERE app_id IS NOT NULL
    UNION SELECT app_id COLLATE "C" FROM audit WHERE app_id IS NOT NULL
) AS named
WHERE app_id NOT IN (SELECT id FROM apps)
ON CONFLICT (id) DO NOTHING;
