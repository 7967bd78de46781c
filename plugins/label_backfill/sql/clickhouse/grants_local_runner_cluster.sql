-- The local runner on a cluster: the job inserts into the Distributed table, which forwards each block to
-- the shards' local tables as the same user (grants_local_runner.sql).
GRANT INSERT ON $database.conversation_with_labels_d TO $user;
