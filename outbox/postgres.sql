-- Transactional outbox of github.com/msgkit/messaging/outbox, PostgreSQL 14+.
--
-- Creates its objects in the current schema (the first of search_path);
-- outbox.Migrate runs this file with search_path set to the configured
-- schema. Idempotent: running it again changes nothing. An operator may run
-- it by hand instead of calling Migrate:
--
--   psql "$DSN" -c 'SET search_path TO myschema' -f postgres.sql
--
-- The number of partitions (16) is the unit of ordering and of handover
-- between relays. It appears twice below (the part expression and the lease
-- rows); change both together, and only with every relay stopped and the
-- outbox drained.

-- One row per message. seq orders the messages of a key: a relay forwards a
-- partition's unforwarded rows in seq order.
CREATE TABLE IF NOT EXISTS messaging_outbox (
    seq          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    msg_id       text        NOT NULL,
    topic        text        NOT NULL,
    msg_key      bytea       NOT NULL DEFAULT '',
    payload      bytea       NOT NULL DEFAULT '',
    headers      bytea,                        -- encoded by the outbox package
    msg_time     timestamptz NOT NULL,
    enqueued_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The key's partition (the message ID's when the key is empty).
    part         smallint    NOT NULL GENERATED ALWAYS AS (
                     ((hashtextextended(CASE WHEN msg_key = '' THEN msg_id
                                             ELSE encode(msg_key, 'hex') END, 0) % 16) + 16) % 16
                 ) STORED,
    forwarded_at timestamptz                   -- set when kept for retention
);

-- Relays read unforwarded rows in seq order, filtered by their partitions
-- (an index on (part, seq) cannot return several partitions in seq order,
-- and with it prepared statements' generic plans sorted the whole backlog).
CREATE INDEX IF NOT EXISTS messaging_outbox_unforwarded
    ON messaging_outbox (seq) WHERE forwarded_at IS NULL;
CREATE INDEX IF NOT EXISTS messaging_outbox_forwarded
    ON messaging_outbox (forwarded_at) WHERE forwarded_at IS NOT NULL;

-- One lease per partition: only the owner forwards the partition's rows,
-- until expires_at; a relay that stops renewing loses it then.
CREATE TABLE IF NOT EXISTS messaging_outbox_leases (
    part       smallint    PRIMARY KEY,
    owner      text,
    expires_at timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO messaging_outbox_leases (part)
    SELECT generate_series(0, 15) ON CONFLICT DO NOTHING;

-- Live relays (heartbeats), for sharing the partitions and for status.
CREATE TABLE IF NOT EXISTS messaging_outbox_relays (
    relay_id     text        PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);

-- Wakes listening relays when a transaction that enqueued commits
-- (NOTIFY is delivered at commit, once per transaction and channel). The
-- channel is 'outbox.' and the schema's name, cut to its first 63 bytes
-- (a channel name is shorter than NAMEDATALEN, 64 bytes) on a character
-- boundary, as PostgreSQL cuts the identifier of the relay's LISTEN;
-- left(..., 63) would count characters, and a longer channel makes
-- pg_notify, so the INSERT, fail.
CREATE OR REPLACE FUNCTION messaging_outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ch text := 'outbox.' || TG_TABLE_SCHEMA;
BEGIN
    WHILE octet_length(ch) > 63 LOOP
        ch := left(ch, -1);
    END LOOP;
    PERFORM pg_notify(ch, '');
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER messaging_outbox_notify
    AFTER INSERT ON messaging_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION messaging_outbox_notify();
