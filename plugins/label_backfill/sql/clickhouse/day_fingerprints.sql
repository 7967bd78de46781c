-- ClickHouse alone, per UTC start day: rows and a checksum of every stored column (labeled_at included),
-- leaving out the listed conversations. Equal before and after a repair = the day was not touched. FINAL,
-- because background merges of the ReplacingMergeTree collapse same-key copies at any time on their own.
SELECT toDate(conversation_start_time) AS day,
       count() AS rows,
       sum(cityHash64(conversation_id, agent_user_id, usecase_id, toString(source),
                      conversation_start_time, conversation_end_time, labeled_at)) AS checksum
FROM $database.$table FINAL
WHERE customer_id = {customer_id:String}
  AND toDate(conversation_start_time) IN {days:Array(Date)}
  AND conversation_id NOT IN {exclude:Array(String)}
GROUP BY day
ORDER BY day
