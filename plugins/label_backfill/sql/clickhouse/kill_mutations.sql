-- Stop our own delete when the run stops before rewriting, so no queued delete can empty the range later.
KILL MUTATION $on_cluster
WHERE database = {database:String}
  AND table = 'conversation_with_labels'
  AND mutation_id IN {mutation_ids:Array(String)}
