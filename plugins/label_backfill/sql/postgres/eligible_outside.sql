-- Of the named conversations, the eligible ones (the same rule as eligible.sql) that start outside
-- [start, end), with their UTC start day: the conversations a repair of the range would delete without
-- rewriting (the preflight refuses those).
SELECT c.conversation_id,
       (c.started_at AT TIME ZONE 'UTC')::date AS day
FROM conversations c
JOIN users u ON u.user_id = c.agent_user_id AND NOT u.is_dev_user
WHERE c.customer_id = %(customer_id)s
  AND c.conversation_id = ANY(%(conversation_ids)s)
  AND c.ended_at IS NOT NULL
  AND c.source IN ('voice', 'chat')
  AND (c.started_at < %(start)s OR c.started_at >= %(end)s)
