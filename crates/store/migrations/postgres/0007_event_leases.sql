-- One event worker per connection at a time, across instances (so a connection's events keep
-- their order), independent of the job lease in `leases`: events keep being applied while an
-- import or reconciliation of the connection runs.
CREATE TABLE event_leases (
    connection_id  TEXT PRIMARY KEY REFERENCES connections (id),
    holder         TEXT NOT NULL,
    expires_at     BIGINT NOT NULL
);
