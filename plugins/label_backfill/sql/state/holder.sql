SELECT dag_id, run_id, claimed_at
FROM label_backfill_customer_lease
WHERE customer_id = %(customer)s
