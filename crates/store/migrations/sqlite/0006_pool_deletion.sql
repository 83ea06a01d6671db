-- Deleting a user pool removes its rows by pool id. The jobs were only indexed by connection,
-- and the jobs of a connection deleted earlier are reachable by their pool alone. (The inbox
-- is reachable by pool through `inbox_by_pool` of migration 0005.)
CREATE INDEX jobs_by_pool ON jobs (pool_id);
