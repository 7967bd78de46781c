-- ClickHouse side of a drift sample: every row of the named conversations.
SELECT conversation_id, agent_user_id, usecase_id, toString(source) AS source,
       conversation_start_time, conversation_end_time, labeled_at
FROM $database.$table
WHERE customer_id = {customer_id:String}
  AND conversation_id IN {conversation_ids:Array(String)}
ORDER BY conversation_id, labeled_at
