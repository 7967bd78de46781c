-- One row per eligible conversation of the range: its id and fingerprint hash (see eligible_day_summary.sql).
SELECT c.conversation_id,
       (c.started_at AT TIME ZONE 'UTC')::date AS day,
       ('x' || substr(md5(
           c.conversation_id || '|' || c.agent_user_id || '|' || c.usecase_id || '|' || c.source || '|'
           || floor(extract(epoch FROM c.started_at) * 1000)::bigint || '|'
           || floor(extract(epoch FROM c.ended_at) * 1000)::bigint
       ), 1, 15))::bit(60)::bigint AS fingerprint
FROM conversations c
JOIN users u ON u.user_id = c.agent_user_id AND NOT u.is_dev_user
WHERE c.customer_id = %(customer_id)s
  AND c.ended_at IS NOT NULL
  AND c.source IN ('voice', 'chat')
  AND c.started_at >= %(start)s
  AND c.started_at < %(end)s
