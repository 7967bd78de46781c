-- Conversations of the customer with rows both inside [start, end) and outside it, with the outside days.
-- After a repair there must be none: a second row outside the range is a conversation counted twice.
SELECT conversation_id,
       arraySort(groupUniqArrayIf(toDate(conversation_start_time), NOT in_range)) AS outside_days
FROM
(
    SELECT conversation_id,
           conversation_start_time,
           conversation_start_time >= {start:DateTime64(3, 'UTC')}
               AND conversation_start_time < {end:DateTime64(3, 'UTC')} AS in_range
    FROM $database.$table
    WHERE customer_id = {customer_id:String}
)
GROUP BY conversation_id
HAVING countIf(in_range) > 0 AND countIf(NOT in_range) > 0
ORDER BY conversation_id
