-- Per UTC start day: physical rows, distinct and duplicated conversations, fingerprint checksum.
-- The fingerprint text and hash must stay identical to postgres/eligible_day_summary.sql:
-- the first 60 bits of md5('id|agent|usecase|source|start_ms|end_ms') as an integer, summed.
SELECT day,
       sum(copies) AS ch_rows,
       count() AS ch_distinct,
       countIf(copies > 1) AS duplicates,
       sum(fingerprints) AS checksum
FROM
(
    SELECT toDate(conversation_start_time) AS day,
           conversation_id,
           count() AS copies,
           sum(toUInt128(bitShiftRight(reinterpretAsUInt64(reverse(substring(MD5(concat(
               conversation_id, '|', agent_user_id, '|', usecase_id, '|', toString(source), '|',
               toString(toUnixTimestamp64Milli(conversation_start_time)), '|',
               toString(toUnixTimestamp64Milli(conversation_end_time)))), 1, 8))), 4))) AS fingerprints
    FROM $database.$table
    WHERE customer_id = {customer_id:String}
      AND conversation_start_time >= {start:DateTime64(3, 'UTC')}
      AND conversation_start_time < {end:DateTime64(3, 'UTC')}
    GROUP BY day, conversation_id
)
GROUP BY day
ORDER BY day
