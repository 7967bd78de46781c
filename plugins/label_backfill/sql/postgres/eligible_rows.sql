-- The eligible conversations of a range with their compared columns (generated from sql.COMPARED), for the
-- row-level comparison of drifted days.
WITH c AS ($eligible)
SELECT (c.started_at AT TIME ZONE 'UTC')::date AS day,
       $columns
FROM c
