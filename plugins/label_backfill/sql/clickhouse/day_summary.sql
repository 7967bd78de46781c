-- Per UTC start day: physical rows, distinct and duplicated conversations, fingerprint checksum.
-- The fingerprint is generated, with postgres/eligible_day_summary.sql's, from one definition (sql.COMPARED).
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
           sum($fingerprint) AS fingerprints
    FROM $database.$table
    WHERE customer_id = {customer_id:String}
      AND conversation_start_time >= {start:DateTime64(3, 'UTC')}
      AND conversation_start_time < {end:DateTime64(3, 'UTC')}
    GROUP BY day, conversation_id
)
GROUP BY day
ORDER BY day
