INSERT INTO label_backfill_customer_lease (customer_id, dag_id, run_id)
VALUES (%(customer)s, %(dag_id)s, %(run_id)s)
ON CONFLICT (customer_id) DO NOTHING
RETURNING run_id
