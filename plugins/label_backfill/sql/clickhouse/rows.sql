-- Every row of the range (duplicates included) with its compared columns (generated from sql.COMPARED), for
-- the row-level comparison.
SELECT toDate(conversation_start_time) AS day,
       $columns
FROM $database.$table
WHERE customer_id = {customer_id:String}
  AND conversation_start_time >= {start:DateTime64(3, 'UTC')}
  AND conversation_start_time < {end:DateTime64(3, 'UTC')}
