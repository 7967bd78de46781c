-- The DAGs' ClickHouse user ($user, the Airflow connection clickhouse_conversations) in one customer's
-- database ($database): everything the backfill and the drift check run, and nothing more. Run it for each
-- customer database when it is provisioned, on every server (GRANT ON CLUSTER with a replicated access
-- storage); create the user first. A database without these grants looks missing to the drift check.
-- Printed with `python -m label_backfill.sql grants --database DB --user USER [--cluster] [--local-runner]`.

-- Every read (day summaries, rows, usecases, the range's edge, neighbour fingerprints, row counts); the range
-- delete and a day's clear before its rewrite (delete_range.sql). KILL MUTATION of our own pending delete
-- (kill_mutations.sql) is allowed by ALTER DELETE on the table: ClickHouse checks the killed mutation's command.
GRANT SELECT, ALTER DELETE ON $database.conversation_with_labels TO $user;
-- mutations.sql: the delete's mutations, progress and latest_fail_reason.
GRANT SELECT ON system.mutations TO $user;
-- LabelTable.exists(): is the customer's table there (preflight, drift check status missing_database).
GRANT SELECT ON system.tables TO $user;
