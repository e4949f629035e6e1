-- Source checks in the fleet (rebuilder/store/sources.py): once per recorded release
-- with an sdist, a worker judges that sdist against the git tag naming the version
-- (rebuilder/source/). The life of a check is the life of an attempt: queued -> running
-- -> done, at most one queued-or-running check per release, claimed once, finished once.

CREATE TABLE source_checks (
    id                 bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    release_id         bigint      NOT NULL REFERENCES releases (id),
    -- The published sdist the check judges (chosen when the check was requested).
    sdist_id           bigint      NOT NULL REFERENCES files (id),
    status             text        NOT NULL DEFAULT 'queued'
                                   CHECK (status IN ('queued', 'running', 'done')),
    priority           smallint    NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 255),
    requested_at       timestamptz NOT NULL DEFAULT now(),
    dispatched_at      timestamptz,
    started_at         timestamptz,
    heartbeat_at       timestamptz,
    finished_at        timestamptz,
    tries              integer     NOT NULL DEFAULT 0 CHECK (tries >= 0),
    worker             text,
    -- failed: the worker could not finish the check (a bug, or trouble that outlasted
    -- the retries); the three others are SourceVerdict values.
    verdict            text        CHECK (verdict IN
                                   ('consistent', 'inconsistent', 'no-source', 'failed')),
    reason             text,
    repository         text,
    tag                text,
    commit           text        CHECK (commit ~ '^[0-9a-f]{40}([0-9a-f]{24})?$'),
    -- SourceResult.to_json() as the worker produced it.
    result             jsonb       CHECK (jsonb_typeof(result) = 'object'),
    seconds            double precision CHECK (seconds >= 0),
    -- {relative path: sha256} of the evidence folder's files in the blob store.
    evidence_manifest  jsonb       CHECK (jsonb_typeof(evidence_manifest) = 'object'),
    CONSTRAINT source_checks_running_has_worker
        CHECK (status <> 'running' OR (worker IS NOT NULL AND started_at IS NOT NULL)),
    CONSTRAINT source_checks_done_has_verdict
        CHECK ((status = 'done') = (verdict IS NOT NULL AND finished_at IS NOT NULL)),
    CONSTRAINT source_checks_failed_has_reason
        CHECK (verdict IS DISTINCT FROM 'failed' OR reason IS NOT NULL)
);

-- At most one check per release is waiting or running: a second request is a no-op.
CREATE UNIQUE INDEX source_checks_one_active_per_release
    ON source_checks (release_id) WHERE status IN ('queued', 'running');
-- The latest check of a release.
CREATE INDEX source_checks_release_latest ON source_checks (release_id, id DESC);
-- Verdicts by kind and time (status page, reports).
CREATE INDEX source_checks_verdict_time
    ON source_checks (verdict, finished_at DESC) WHERE status = 'done';
-- Queue depth, the running list and stale-claim recovery.
CREATE INDEX source_checks_active
    ON source_checks (status, priority DESC, id) WHERE status <> 'done';
-- Queued checks never handed to the broker (or taken back): the scheduler sends them.
CREATE INDEX source_checks_undispatched ON source_checks (priority DESC, id)
    WHERE status = 'queued' AND dispatched_at IS NULL;
-- "Which releases were traced to this commit / repository" (incident response).
CREATE INDEX source_checks_commit ON source_checks (commit) WHERE commit IS NOT NULL;

-- One row per statement a source check signed; the envelope bytes live once, in the
-- log. A release's source bundle is its latest attested check's rows in position order.
CREATE TABLE source_attestations (
    check_id    bigint  NOT NULL REFERENCES source_checks (id),
    release_id  bigint  NOT NULL REFERENCES releases (id),
    position    integer NOT NULL CHECK (position >= 0),
    kind        text    NOT NULL CHECK (kind IN ('source-check', 'provenance')),
    log_origin  text    NOT NULL,
    leaf_index  bigint  NOT NULL,
    PRIMARY KEY (check_id, position),
    FOREIGN KEY (log_origin, leaf_index) REFERENCES log_entries (origin, leaf_index)
);

CREATE INDEX source_attestations_release ON source_attestations (release_id, check_id DESC);
