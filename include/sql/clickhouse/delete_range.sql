-- Exactly the rows the day jobs rewrite: this customer's conversations that START in [start, end).
ALTER TABLE $database.conversation_with_labels $on_cluster
DELETE WHERE customer_id = {customer_id:String}
  AND conversation_start_time >= {start:DateTime64(3, 'UTC')}
  AND conversation_start_time < {end:DateTime64(3, 'UTC')}
