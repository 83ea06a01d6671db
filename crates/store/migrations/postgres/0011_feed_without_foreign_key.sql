-- A feed row needs no foreign key to its pool: rows are only written by `apply`, in the
-- transaction that holds the pool's counter row, and a pool's deletion removes its feed
-- first. The key's check ran once per row and cost about as much as the insert itself
-- (docs/change-feed.md, "What the feed costs").
ALTER TABLE feed_events DROP CONSTRAINT feed_events_pool_id_fkey;
