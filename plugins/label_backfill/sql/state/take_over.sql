-- Compare-and-set: only if the finished run still holds it (two runs taking over at once: one wins).
UPDATE label_backfill_customer_lease
SET dag_id = %(dag_id)s, run_id = %(run_id)s, claimed_at = now()
WHERE customer_id = %(customer)s AND dag_id = %(old_dag_id)s AND run_id = %(old_run_id)s
RETURNING run_id
