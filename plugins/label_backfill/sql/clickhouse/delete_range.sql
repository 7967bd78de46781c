-- Exactly the rows the day jobs rewrite: this customer's conversations that START in [start, end), plus every
-- row of the conversations listed in conversation_ids (found by the preflight: their only true place is
-- inside the range, or nowhere, but ClickHouse also holds a copy on a day outside it).
ALTER TABLE $database.conversation_with_labels $on_cluster
DELETE WHERE customer_id = {customer_id:String}
  AND (
      (conversation_start_time >= {start:DateTime64(3, 'UTC')} AND conversation_start_time < {end:DateTime64(3, 'UTC')})
      OR conversation_id IN {conversation_ids:Array(String)}
  )
