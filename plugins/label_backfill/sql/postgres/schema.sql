-- Source of truth (the data contract). Extra columns are allowed; none may be required.
CREATE TABLE IF NOT EXISTS profiles (
    customer_id text PRIMARY KEY,
    region      text NOT NULL
);

CREATE TABLE IF NOT EXISTS users (
    user_id     text PRIMARY KEY,
    customer_id text NOT NULL,
    is_dev_user boolean NOT NULL DEFAULT false
);

CREATE TABLE IF NOT EXISTS conversations (
    conversation_id text PRIMARY KEY,
    customer_id     text NOT NULL,
    agent_user_id   text NOT NULL,
    usecase_id      text NOT NULL,
    source          text NOT NULL,
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz NULL
);

CREATE INDEX IF NOT EXISTS conversations_customer_started_idx ON conversations (customer_id, started_at);
