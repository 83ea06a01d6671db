-- Parked deletions: at most one pending entry per (connection, object). Before this, every
-- reconciliation parked the same deletions again (two reconciliations of the demo: 3,932
-- pending rows for 1,975 objects).

-- When a job last planned the deletion (a later job refreshes the entry instead of adding
-- one), and how a resolved entry was resolved.
ALTER TABLE parked_deletions ADD COLUMN last_parked_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE parked_deletions ADD COLUMN resolution TEXT;
UPDATE parked_deletions SET last_parked_at = created_at;

-- Collapse the duplicates: the oldest entry stays (its id may be known to an admin) and takes
-- the newest one's job, names, reason and time; the others go.
CREATE INDEX parked_dupes ON parked_deletions (connection_id, kind, object_id, state, id);
WITH dupes AS (
    SELECT MIN(id) AS keep, MAX(id) AS newest
    FROM parked_deletions WHERE state = 'pending'
    GROUP BY connection_id, kind, object_id HAVING COUNT(*) > 1
)
UPDATE parked_deletions SET job_id = n.job_id, external_id = n.external_id, name = n.name,
    reason = n.reason, last_parked_at = n.created_at
FROM dupes JOIN parked_deletions AS n ON n.id = dupes.newest
WHERE parked_deletions.id = dupes.keep;
DELETE FROM parked_deletions WHERE state = 'pending' AND id NOT IN (
    SELECT MIN(id) FROM parked_deletions WHERE state = 'pending'
    GROUP BY connection_id, kind, object_id
);
DROP INDEX parked_dupes;

-- The rule itself, and the upsert's conflict target.
CREATE UNIQUE INDEX parked_pending_once ON parked_deletions (connection_id, kind, object_id)
    WHERE state = 'pending';
-- Bulk decisions and counts by job.
CREATE INDEX parked_by_job ON parked_deletions (job_id, state, id);
