-- Cluster mode: reads (and the job's writes) go through this table; deletes go to the local table.
CREATE TABLE IF NOT EXISTS $database.conversation_with_labels_d ON CLUSTER $cluster
AS $database.conversation_with_labels
ENGINE = Distributed($cluster, $database, conversation_with_labels, cityHash64(conversation_id))
