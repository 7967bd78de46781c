-- Per UTC start day: eligible conversations and their fingerprint checksum.
-- The fingerprint text and hash must stay identical to clickhouse/day_summary.sql.
WITH c AS ($eligible)
SELECT (c.started_at AT TIME ZONE 'UTC')::date AS day,
       count(*) AS pg_eligible,
       coalesce(sum(('x' || substr(md5(
           c.conversation_id || '|' || c.agent_user_id || '|' || c.usecase_id || '|' || c.source || '|'
           || floor(extract(epoch FROM c.started_at) * 1000)::bigint || '|'
           || floor(extract(epoch FROM c.ended_at) * 1000)::bigint
       ), 1, 15))::bit(60)::bigint), 0) AS checksum
FROM c
GROUP BY 1
ORDER BY 1
