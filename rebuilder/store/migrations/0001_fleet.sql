-- The fleet's state: watched projects, releases, published files, rebuild attempts and
-- poll cursors (rebuilder/store/projects.py, attempts.py, cursors.py).
--
-- Constraints, not code, make duplicates impossible: one row per project, per
-- (project, version), per filename, and at most one queued-or-running attempt per file.

CREATE TABLE projects (
    -- PEP 503 normalized: lower case, runs of "-", "_" and "." folded into one "-".
    name      text        PRIMARY KEY CHECK (name ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    watched   boolean     NOT NULL DEFAULT false,
    added_at  timestamptz NOT NULL DEFAULT now()
);

-- "Projects whose name starts with ..." (the status page's search box).
CREATE INDEX projects_name_prefix ON projects (name text_pattern_ops);
CREATE INDEX projects_watched ON projects (name) WHERE watched;

CREATE TABLE releases (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project        text        NOT NULL REFERENCES projects (name),
    version        text        NOT NULL CHECK (version <> '' AND version !~ '[[:space:]/]'),
    discovered_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT releases_one_per_version UNIQUE (project, version)
);

CREATE TABLE files (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    release_id     bigint      NOT NULL REFERENCES releases (id),
    -- An index never serves two files under one name, whatever the release.
    filename       text        NOT NULL CHECK (filename <> '' AND filename !~ '[/\\[:cntrl:]]'),
    kind           text        NOT NULL CHECK (kind IN ('wheel', 'sdist', 'other')),
    url            text        NOT NULL CHECK (url <> ''),
    sha256         text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size           bigint      CHECK (size >= 0),
    upload_time    timestamptz,
    yanked         boolean     NOT NULL DEFAULT false,
    discovered_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT files_one_per_filename UNIQUE (filename)
);

CREATE INDEX files_release ON files (release_id);
-- Backfills and "what was uploaded in this window" (incident campaigns).
CREATE INDEX files_upload_time ON files (upload_time DESC NULLS LAST, id);

CREATE TABLE attempts (
    id                 bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    file_id            bigint      NOT NULL REFERENCES files (id),
    status             text        NOT NULL DEFAULT 'queued'
                                   CHECK (status IN ('queued', 'running', 'done')),
    priority           smallint    NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 255),
    campaign_id        bigint,
    requested_at       timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    heartbeat_at       timestamptz,
    finished_at        timestamptz,
    tries              integer     NOT NULL DEFAULT 0 CHECK (tries >= 0),
    worker             text,
    image_digest       text,
    strategy           jsonb,
    verdict            text        CHECK (verdict IN
                                   ('reproducible', 'equivalent', 'mismatch', 'failed',
                                    'unsupported')),
    reason_class       text        CHECK (reason_class IN
                                   ('no-source', 'resolve', 'build', 'timeout', 'sandbox',
                                    'infrastructure')),
    reason             text,
    stabilizers        jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(stabilizers) = 'array'),
    differences        jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(differences) = 'array'),
    timings            jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(timings) = 'object'),
    seconds            double precision CHECK (seconds >= 0),
    -- Where the evidence folder was written, and {relative path: sha256} of its files
    -- in the blob store; the blobs themselves never enter the database.
    evidence           text,
    evidence_manifest  jsonb       CHECK (jsonb_typeof(evidence_manifest) = 'object'),
    rebuilt_sha256     text        CHECK (rebuilt_sha256 ~ '^[0-9a-f]{64}$'),
    CONSTRAINT attempts_running_has_worker
        CHECK (status <> 'running' OR (worker IS NOT NULL AND started_at IS NOT NULL)),
    CONSTRAINT attempts_done_has_verdict
        CHECK ((status = 'done') = (verdict IS NOT NULL AND finished_at IS NOT NULL)),
    CONSTRAINT attempts_failed_has_reason
        CHECK (verdict IS DISTINCT FROM 'failed' OR reason_class IS NOT NULL)
);

-- At most one attempt per file is waiting or running: a second request is a no-op, so
-- a duplicate discovery or a double click never runs the same rebuild twice.
CREATE UNIQUE INDEX attempts_one_active_per_file
    ON attempts (file_id) WHERE status IN ('queued', 'running');
-- The latest attempt of a file.
CREATE INDEX attempts_file_latest ON attempts (file_id, id DESC);
-- Verdicts by kind and time (status page, reports).
CREATE INDEX attempts_verdict_time ON attempts (verdict, finished_at DESC) WHERE status = 'done';
-- Queue depth, the running list and stale-claim recovery.
CREATE INDEX attempts_active ON attempts (status, priority DESC, id) WHERE status <> 'done';
CREATE INDEX attempts_campaign ON attempts (campaign_id) WHERE campaign_id IS NOT NULL;

-- Where each poller stopped (an XML-RPC serial, an RSS timestamp ...), advanced in the
-- same transaction as the releases it recorded, so a restart resumes exactly there.
CREATE TABLE poll_cursors (
    name        text        PRIMARY KEY CHECK (name <> ''),
    value       text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
