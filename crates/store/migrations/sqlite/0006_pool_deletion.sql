-- Deleting a user pool removes its rows by pool id. The inbox and the jobs were only indexed
-- by connection, and the finished events and the jobs of a connection deleted earlier are
-- reachable by their pool alone.
CREATE INDEX inbox_by_pool ON inbox (pool_id);
CREATE INDEX jobs_by_pool ON jobs (pool_id);
