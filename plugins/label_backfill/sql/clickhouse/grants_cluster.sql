-- Added to grants.sql when LABEL_BACKFILL_CLICKHOUSE_CLUSTER is set (same $database, $user).

-- Reads go through the Distributed table (the shards then read the local table as the same user, which
-- grants.sql allows on every server).
GRANT SELECT ON $database.conversation_with_labels_d TO $user;
-- ALTER TABLE ... ON CLUSTER ... DELETE and KILL MUTATION ON CLUSTER (ClickHouse's
-- access_control_improvements.on_cluster_queries_require_cluster_grant, true by default).
GRANT CLUSTER ON *.* TO $user;
-- clusterAllReplicas('<cluster>', system.mutations): the cluster/remote table functions need the REMOTE
-- source (shown as READ ON REMOTE where enable_read_write_grants is on). Global by nature: restrict the
-- hosts it may reach with the server's remote_url_allow_hosts.
GRANT REMOTE ON *.* TO $user;
