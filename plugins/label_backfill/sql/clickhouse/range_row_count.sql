SELECT count() FROM $database.$table
WHERE customer_id = {customer_id:String}
  AND conversation_start_time >= {start:DateTime64(3, 'UTC')}
  AND conversation_start_time < {end:DateTime64(3, 'UTC')}
