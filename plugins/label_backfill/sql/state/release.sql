DELETE FROM label_backfill_customer_lease
WHERE customer_id = %(customer)s AND dag_id = %(dag_id)s AND run_id = %(run_id)s
RETURNING run_id
