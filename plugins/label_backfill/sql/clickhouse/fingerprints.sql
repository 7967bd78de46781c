-- Every row of the range (duplicates included): id, UTC start day and fingerprint (generated, with
-- postgres/eligible_fingerprints.sql's, from sql.COMPARED), for the row-level comparison.
SELECT conversation_id,
       toDate(conversation_start_time) AS day,
       toInt64($fingerprint) AS fingerprint
FROM $database.$table
WHERE customer_id = {customer_id:String}
  AND conversation_start_time >= {start:DateTime64(3, 'UTC')}
  AND conversation_start_time < {end:DateTime64(3, 'UTC')}
