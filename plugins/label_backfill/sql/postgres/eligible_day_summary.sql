-- Per UTC start day: eligible conversations and their fingerprint checksum.
-- The fingerprint is generated, with clickhouse/day_summary.sql's, from one definition (sql.COMPARED).
WITH c AS ($eligible)
SELECT (c.started_at AT TIME ZONE 'UTC')::date AS day,
       count(*) AS pg_eligible,
       coalesce(sum($fingerprint), 0) AS checksum
FROM c
GROUP BY 1
ORDER BY 1
