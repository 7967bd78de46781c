-- The DAGs' Postgres role ($role, the Airflow connection postgres_conversations) in the conversations
-- database ($database). Every query the package runs on Postgres is a SELECT on these three tables. Create
-- the role first (CREATE ROLE $role LOGIN PASSWORD '...'), then run this as the tables' owner.
-- Printed with `python -m label_backfill.sql readonly-role --role ROLE --database DB`.
GRANT CONNECT ON DATABASE $database TO $role;
GRANT USAGE ON SCHEMA public TO $role;
GRANT SELECT ON TABLE profiles, users, conversations TO $role;
-- Not a permission (a session may SET it off again) but a second line: every session starts read-only,
-- so even a table the role were later granted more on is not written by mistake.
ALTER ROLE $role SET default_transaction_read_only = on;
