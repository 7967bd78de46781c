-- Every row of the range (duplicates included) with its labels, for the row-level comparison.
SELECT conversation_id,
       toDate(conversation_start_time) AS day,
       agent_user_id,
       usecase_id,
       toString(source) AS source,
       toUnixTimestamp64Milli(conversation_start_time) AS start_ms,
       toUnixTimestamp64Milli(conversation_end_time) AS end_ms
FROM $database.$table
WHERE customer_id = {customer_id:String}
  AND conversation_start_time >= {start:DateTime64(3, 'UTC')}
  AND conversation_start_time < {end:DateTime64(3, 'UTC')}
