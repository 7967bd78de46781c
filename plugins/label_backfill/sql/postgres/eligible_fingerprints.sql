-- The eligible conversations of a range, one row each: id, UTC start day and fingerprint (generated, with
-- clickhouse/fingerprints.sql's, from sql.COMPARED), for the row-level comparison: no label column is read.
WITH c AS ($eligible)
SELECT c.conversation_id,
       (c.started_at AT TIME ZONE 'UTC')::date AS day,
       $fingerprint AS fingerprint
FROM c
