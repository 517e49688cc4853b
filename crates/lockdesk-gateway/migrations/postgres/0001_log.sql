-- 1: the gateway's log on PostgreSQL (crates/lockdesk-gateway/src/store/postgres.rs).
-- Never edit a released migration; add the next file.

-- The log's identity: random, created with the log, never changed (`hello.logId`).
CREATE TABLE log_identity (
    id     integer PRIMARY KEY CHECK (id = 1),
    log_id text    NOT NULL
);
INSERT INTO log_identity (id, log_id) VALUES (1, replace(gen_random_uuid()::text, '-', ''));

-- The end of the log and its counts, updated in every appending transaction (under the append
-- lock): the next seq is last_seq + 1, so the sequence is gapless and follows commit order
-- (a SEQUENCE or identity column would leave gaps on rollback and commit out of order).
CREATE TABLE log_head (
    id             integer PRIMARY KEY CHECK (id = 1),
    last_seq       bigint  NOT NULL CHECK (last_seq >= 0),
    webhook_events bigint  NOT NULL,
    evidence       bigint  NOT NULL
);
INSERT INTO log_head (id, last_seq, webhook_events, evidence) VALUES (1, 0, 0, 0);

CREATE TABLE entries (
    seq             bigint PRIMARY KEY CHECK (seq > 0),
    kind            text   NOT NULL CHECK (kind IN ('webhook', 'evidence')),
    received_at_ms  bigint NOT NULL,
    event_id        text   UNIQUE,
    event_type      text,
    correlation_id  text,
    delivery_id     text,
    provider        text,
    conversation_id text,
    visitor_id      text,
    -- A JSON array of u64, as in the SQLite store.
    operator_ids    text   NOT NULL DEFAULT '[]',
    payload         text   NOT NULL,
    CHECK ((kind = 'webhook') = (event_id IS NOT NULL))
);
-- The `related` bundle: a visitor's (or conversation's) evidence before a push.
CREATE INDEX entries_evidence_visitor ON entries (visitor_id, seq) WHERE kind = 'evidence';
CREATE INDEX entries_evidence_conversation ON entries (conversation_id, seq)
    WHERE kind = 'evidence';

-- Each entry's audience (routing.rs), written in the entry's transaction. Operator ids are
-- stored bit for bit (u64 -> bigint -> u64).
CREATE TABLE audience (
    operator_id bigint  NOT NULL,
    seq         bigint  NOT NULL,
    related     boolean NOT NULL DEFAULT false,
    PRIMARY KEY (operator_id, seq)
);
CREATE INDEX audience_seq ON audience (seq);

-- The open conversations as of log_head.last_seq (routing.rs's state, shared by every
-- instance): their current operators and visitor. Closed conversations are deleted.
CREATE TABLE open_conversations (
    conversation_id text     PRIMARY KEY,
    visitor_id      text,
    owners          bigint[] NOT NULL
);
