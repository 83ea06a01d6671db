-- Stored event payloads carry no Verification Token (docs/secrets.md): remove it from the
-- rows written before. Only payloads that are JSON objects and hold a token change (as jsonb
-- text: same content, keys in jsonb's order). One statement for all rows; if some payload is
-- not JSON that jsonb reads (e.g. one holding \u0000), row by row, leaving such rows as they
-- are. Old row versions stay until vacuumed (docs/secrets.md).
DO $$
DECLARE
    row_id BIGINT;
BEGIN
    BEGIN
        UPDATE inbox
        SET payload = ((payload::jsonb - 'token') #- '{header,token}')::text
        WHERE payload LIKE '%"token"%'
          AND jsonb_typeof(payload::jsonb) = 'object'
          AND (payload::jsonb ? 'token' OR (payload::jsonb -> 'header') ? 'token');
    EXCEPTION WHEN others THEN
        FOR row_id IN SELECT id FROM inbox WHERE payload LIKE '%"token"%' LOOP
            BEGIN
                UPDATE inbox
                SET payload = ((payload::jsonb - 'token') #- '{header,token}')::text
                WHERE id = row_id
                  AND jsonb_typeof(payload::jsonb) = 'object'
                  AND (payload::jsonb ? 'token' OR (payload::jsonb -> 'header') ? 'token');
            EXCEPTION WHEN others THEN
                NULL;
            END;
        END LOOP;
    END;
END
$$;

-- The event list counts its matches (GET /api/v1/events answers `total`), filtered by
-- connection or pool and by state; these serve that count and the list's order.
CREATE INDEX inbox_by_connection ON inbox (connection_id, state, id);
CREATE INDEX inbox_by_pool ON inbox (pool_id, state, id);
