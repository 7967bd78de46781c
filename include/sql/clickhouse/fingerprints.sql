-- Every row of the range (duplicates included): id, start day and fingerprint (see day_summary.sql).
SELECT conversation_id,
       toDate(conversation_start_time) AS day,
       bitShiftRight(reinterpretAsUInt64(reverse(substring(MD5(concat(
           conversation_id, '|', agent_user_id, '|', usecase_id, '|', toString(source), '|',
           toString(toUnixTimestamp64Milli(conversation_start_time)), '|',
           toString(toUnixTimestamp64Milli(conversation_end_time)))), 1, 8))), 4) AS fingerprint
FROM $database.$table
WHERE customer_id = {customer_id:String}
  AND conversation_start_time >= {start:DateTime64(3, 'UTC')}
  AND conversation_start_time < {end:DateTime64(3, 'UTC')}
