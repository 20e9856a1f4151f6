-- Inbox of github.com/msgkit/messaging/inbox, PostgreSQL 11+.
--
-- Creates its objects in the current schema (the first of search_path);
-- inbox.Migrate runs this file with search_path set to the configured
-- schema. Idempotent. An operator may run it by hand:
--
--   psql "$DSN" -c 'SET search_path TO myschema' -f postgres.sql

-- One row per (consumer group, message ID) handled: inserted in the
-- handler's transaction, so it commits exactly when the handler's effects do.
CREATE TABLE IF NOT EXISTS messaging_inbox (
    group_name   text        NOT NULL,
    msg_id       text        NOT NULL,
    topic        text        NOT NULL,
    handled_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_name, msg_id)
);

CREATE INDEX IF NOT EXISTS messaging_inbox_handled_at
    ON messaging_inbox (handled_at);
