-- One row per customer being repaired: the run that may delete and rewrite its ClickHouse labels.
-- The primary key is the mutual exclusion (INSERT ... ON CONFLICT DO NOTHING is atomic in Postgres).
CREATE TABLE IF NOT EXISTS label_backfill_customer_lease (
    customer_id text PRIMARY KEY,
    dag_id text NOT NULL,
    run_id text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now()
);
