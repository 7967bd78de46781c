-- The eligible conversations of a range with their labels, for the row-level comparison of drifted days.
WITH c AS ($eligible)
SELECT c.conversation_id,
       (c.started_at AT TIME ZONE 'UTC')::date AS day,
       c.agent_user_id,
       c.usecase_id,
       c.source,
       c.started_at,
       c.ended_at
FROM c
