-- Postgres side of a drift sample: labels and eligibility of the named conversations.
SELECT c.conversation_id,
       c.agent_user_id,
       c.usecase_id,
       c.source,
       c.started_at,
       c.ended_at,
       (c.ended_at IS NOT NULL AND c.source IN ('voice', 'chat') AND u.user_id IS NOT NULL AND NOT u.is_dev_user) AS eligible,
       coalesce(u.is_dev_user, false) AS agent_is_dev_user
FROM conversations c
LEFT JOIN users u ON u.user_id = c.agent_user_id
WHERE c.customer_id = %(customer_id)s
  AND c.conversation_id = ANY(%(conversation_ids)s)
