-- 2: the open conversations as deltas (crates/lockdesk-gateway/src/store/postgres.rs).
-- Never edit a released migration; add the next file.
--
-- An instance that did not write last used to reload the whole open_conversations table in its
-- appending transaction. It now applies only what changed since the seq its copy is valid for:
-- the rows with changed_seq above it, and the conversations closed since (closed_conversations,
-- a tombstone per closed conversation, purged once older than the writers' reach).

-- The seq of the group that last wrote the row (0 for rows written before this migration).
ALTER TABLE open_conversations ADD COLUMN changed_seq bigint NOT NULL DEFAULT 0;
CREATE INDEX open_conversations_changed ON open_conversations (changed_seq);

-- A conversation closed by the group that ended at closed_seq (it may have been opened again
-- since: then its open_conversations row is newer).
CREATE TABLE closed_conversations (
    conversation_id text   PRIMARY KEY,
    closed_seq      bigint NOT NULL
);
CREATE INDEX closed_conversations_seq ON closed_conversations (closed_seq);

-- delta_seq: the last_seq written by the last appender that keeps the deltas (every appending
-- transaction of this gateway sets it to its new last_seq). When it differs from last_seq, an
-- appender that does not keep them (an older gateway still running, or `gateway migrate`) wrote
-- last, and the deltas are complete only after that point: delta_since. A copy of the open
-- conversations older than delta_since is reloaded whole.
ALTER TABLE log_head ADD COLUMN delta_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE log_head ADD COLUMN delta_since bigint NOT NULL DEFAULT 0;
