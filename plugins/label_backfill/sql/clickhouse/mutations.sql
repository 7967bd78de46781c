-- Mutations of the label table on every replica ($mutations_source is system.mutations on a single
-- node, clusterAllReplicas('<cluster>', system.mutations) on a cluster).
SELECT hostName() AS host,
       mutation_id,
       command,
       create_time,
       is_done,
       parts_to_do,
       latest_fail_reason
FROM $mutations_source
WHERE database = {database:String} AND table = 'conversation_with_labels'
ORDER BY host, create_time, mutation_id
