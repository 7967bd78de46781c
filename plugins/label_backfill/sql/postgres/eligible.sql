-- THE definition of an eligible conversation (the data contract): the customer's, ended, voice or chat, and
-- handled by a known agent who is not a dev user; restricted to starts in [start, end). The comparison's
-- other Postgres queries select from it ($eligible); the job keeps its own copy, as the Go image does.
SELECT c.*
FROM conversations c
JOIN users u ON u.user_id = c.agent_user_id AND NOT u.is_dev_user
WHERE c.customer_id = %(customer_id)s
  AND c.ended_at IS NOT NULL
  AND c.source IN ('voice', 'chat')
  AND c.started_at >= %(start)s
  AND c.started_at < %(end)s
