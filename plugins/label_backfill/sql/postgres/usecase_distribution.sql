WITH c AS ($eligible)
SELECT c.usecase_id, count(*) AS conversations
FROM c
GROUP BY 1
