-- Added to grants.sql only where LABEL_BACKFILL_JOB_RUNNER=local (the embedded stack): the reference job
-- then writes each day from the Airflow worker with the DAGs' user. With the kubernetes runner the job's
-- own user writes and the DAGs' user inserts nothing.
GRANT INSERT ON $database.conversation_with_labels TO $user;
