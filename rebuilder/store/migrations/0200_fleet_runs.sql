-- What the running fleet records beside attempts: the signed statements each attempt
-- produced (pointing into the transparency log), the workers and their health, the
-- WHEEL Generator of each published wheel (incident selections by build backend), and
-- an attempt's requested sandbox image (a campaign may ask to rebuild elsewhere).

-- One row per statement an attempt signed. The envelope bytes live once, in the log
-- (log_entries.entry); a file's bundle is its latest attempt's rows in `position` order.
CREATE TABLE attestations (
    attempt_id  bigint  NOT NULL REFERENCES attempts (id),
    file_id     bigint  NOT NULL REFERENCES files (id),
    position    integer NOT NULL CHECK (position >= 0),
    kind        text    NOT NULL CHECK (kind IN ('provenance', 'vsa', 'failure')),
    log_origin  text    NOT NULL,
    leaf_index  bigint  NOT NULL,
    PRIMARY KEY (attempt_id, position),
    FOREIGN KEY (log_origin, leaf_index) REFERENCES log_entries (origin, leaf_index)
);

CREATE INDEX attestations_file ON attestations (file_id, attempt_id DESC);

-- Workers announce themselves and beat; the status page shows who is alive.
CREATE TABLE workers (
    name             text        PRIMARY KEY CHECK (name <> ''),
    host             text        NOT NULL,
    pid              integer     NOT NULL,
    version          text        NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT now(),
    heartbeat_at     timestamptz NOT NULL DEFAULT now(),
    current_attempt  bigint,
    stopped_at       timestamptz
);

-- The published wheel's WHEEL "Generator" line (e.g. "hatchling 1.26.3"), filled in by
-- the worker that reads the wheel; NULL until then and for sdists.
ALTER TABLE files ADD COLUMN generator text;
CREATE INDEX files_generator ON files (generator) WHERE generator IS NOT NULL;

-- A sandbox image reference (pinned by digest) this attempt must use instead of the
-- worker's default; NULL for the default.
ALTER TABLE attempts ADD COLUMN image text;

-- When the attempt's id was last handed to the broker. NULL on a queued attempt means
-- it was never sent (the process died between commit and send) or was taken back from
-- a silent worker: the scheduler sends those again, so nothing queued is forgotten.
ALTER TABLE attempts ADD COLUMN dispatched_at timestamptz;
CREATE INDEX attempts_undispatched ON attempts (priority DESC, id)
    WHERE status = 'queued' AND dispatched_at IS NULL;
