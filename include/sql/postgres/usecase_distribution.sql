SELECT c.usecase_id, count(*) AS conversations
FROM conversations c
JOIN users u ON u.user_id = c.agent_user_id AND NOT u.is_dev_user
WHERE c.customer_id = %(customer_id)s
  AND c.ended_at IS NOT NULL
  AND c.source IN ('voice', 'chat')
  AND c.started_at >= %(start)s
  AND c.started_at < %(end)s
GROUP BY 1
