-- Cluster mode: the local table on every replica of every shard.
CREATE TABLE IF NOT EXISTS $database.conversation_with_labels ON CLUSTER $cluster
(
    customer_id String,
    conversation_id String,
    agent_user_id String,
    usecase_id String,
    source LowCardinality(String),
    conversation_start_time DateTime64(3, 'UTC'),
    conversation_end_time DateTime64(3, 'UTC'),
    labeled_at DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/conversation_with_labels', '{replica}', labeled_at)
ORDER BY (customer_id, agent_user_id, toStartOfHour(conversation_end_time), conversation_id)
