SELECT usecase_id, count() AS rows
FROM $database.$table
WHERE customer_id = {customer_id:String}
  AND conversation_start_time >= {start:DateTime64(3, 'UTC')}
  AND conversation_start_time < {end:DateTime64(3, 'UTC')}
GROUP BY usecase_id
