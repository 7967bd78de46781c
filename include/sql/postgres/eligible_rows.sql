-- The eligible conversations of a range with their labels, for the row-level comparison of drifted days.
SELECT c.conversation_id,
       (c.started_at AT TIME ZONE 'UTC')::date AS day,
       c.agent_user_id,
       c.usecase_id,
       c.source,
       c.started_at,
       c.ended_at
FROM conversations c
JOIN users u ON u.user_id = c.agent_user_id AND NOT u.is_dev_user
WHERE c.customer_id = %(customer_id)s
  AND c.ended_at IS NOT NULL
  AND c.source IN ('voice', 'chat')
  AND c.started_at >= %(start)s
  AND c.started_at < %(end)s
