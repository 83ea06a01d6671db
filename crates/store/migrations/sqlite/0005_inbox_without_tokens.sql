-- Stored event payloads carry no Verification Token (docs/secrets.md): remove it from the
-- rows written before. Only payloads that are JSON and hold a token change; json_remove keeps
-- everything else of the document, in its order. secure_delete zeroes the old copies of the
-- rewritten rows in the database pages; the store truncates the WAL after migrating.
PRAGMA secure_delete = ON;
UPDATE inbox
SET payload = json_remove(payload, '$.token', '$.header.token')
WHERE CASE
    WHEN json_valid(payload) THEN json_type(payload, '$.token') IS NOT NULL
        OR json_type(payload, '$.header.token') IS NOT NULL
    ELSE 0
END;
PRAGMA secure_delete = OFF;

-- The event list counts its matches (GET /api/v1/events answers `total`), filtered by
-- connection or pool and by state; these serve that count and the list's order.
CREATE INDEX inbox_by_connection ON inbox (connection_id, state, id);
CREATE INDEX inbox_by_pool ON inbox (pool_id, state, id);
