-- The tamper-evident transparency log (rebuilder/store/log.py, docs/transparency-log.md).
--
-- One append-only RFC 6962 Merkle log per origin. Written so that running it a second
-- time changes nothing: it may be applied directly by a test fixture before a
-- migration runner records it.

-- One row per log. Appenders lock this row (UPDATE ... tree_size + 1), which
-- serializes appends to one origin across every worker and process, and the
-- committed tree_size is always the number of entries, so proofs never see a gap.
CREATE TABLE IF NOT EXISTS log_heads (
    origin      text        PRIMARY KEY CHECK (origin <> '' AND origin !~ '[[:cntrl:]]'),
    tree_size   bigint      NOT NULL DEFAULT 0 CHECK (tree_size >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The leaves. `entry` is the exact bytes of one envelope line (UTF-8, no line break);
-- the leaf hash is kept beside it so proofs read 32 bytes per leaf, not the envelope.
-- An envelope is logged once per origin: appending the same bytes again returns the
-- first entry (same bytes make the same claim, and retried workers stay idempotent).
CREATE TABLE IF NOT EXISTS log_entries (
    origin       text        NOT NULL REFERENCES log_heads (origin),
    leaf_index   bigint      NOT NULL CHECK (leaf_index >= 0),
    leaf_hash    bytea       NOT NULL,
    entry        bytea       NOT NULL CHECK (octet_length(entry) > 0),
    appended_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (origin, leaf_index),
    CONSTRAINT log_entries_leaf_hash_unique UNIQUE (origin, leaf_hash),
    CONSTRAINT log_entries_leaf_hash_matches CHECK (leaf_hash = sha256('\x00'::bytea || entry))
);

-- Signed tree heads. The note is the source of truth; tree_size and root_hash are
-- copies for queries and are checked against the note when read.
CREATE TABLE IF NOT EXISTS log_checkpoints (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    origin      text        NOT NULL REFERENCES log_heads (origin),
    tree_size   bigint      NOT NULL CHECK (tree_size >= 0),
    root_hash   bytea       NOT NULL CHECK (octet_length(root_hash) = 32),
    key_name    text        NOT NULL,
    note        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS log_checkpoints_latest
    ON log_checkpoints (origin, tree_size DESC, id DESC);

-- Guards against mistakes, not against an attacker who owns the database (the signed
-- checkpoints and proofs catch that): entries are never changed or removed, and a
-- log never shrinks.
CREATE OR REPLACE FUNCTION log_refuse_rewrite() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'log_heads' AND TG_OP = 'UPDATE' THEN
        IF NEW.origin = OLD.origin AND NEW.tree_size >= OLD.tree_size THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'the transparency log is append-only (% on %)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

DROP TRIGGER IF EXISTS log_entries_append_only ON log_entries;
CREATE TRIGGER log_entries_append_only
    BEFORE UPDATE OR DELETE ON log_entries
    FOR EACH ROW EXECUTE FUNCTION log_refuse_rewrite();

DROP TRIGGER IF EXISTS log_entries_no_truncate ON log_entries;
CREATE TRIGGER log_entries_no_truncate
    BEFORE TRUNCATE ON log_entries
    FOR EACH STATEMENT EXECUTE FUNCTION log_refuse_rewrite();

DROP TRIGGER IF EXISTS log_heads_grow_only ON log_heads;
CREATE TRIGGER log_heads_grow_only
    BEFORE UPDATE OR DELETE ON log_heads
    FOR EACH ROW EXECUTE FUNCTION log_refuse_rewrite();
