-- Single node (the embedded stack): only the local table; everything reads and deletes it directly.
-- $table_settings lets the embedded stack add non_replicated_deduplication_window to reproduce the
-- insert-deduplication hazard of Replicated tables.
CREATE TABLE IF NOT EXISTS $database.conversation_with_labels
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
ENGINE = ReplacingMergeTree(labeled_at)
ORDER BY (customer_id, agent_user_id, toStartOfHour(conversation_end_time), conversation_id)
$table_settings
