-- Incident-response campaigns (scheduler/campaigns): a named selection of files rebuilt at
-- top priority, resumable, cancellable, with a report at the end.

CREATE TABLE campaigns (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text        NOT NULL CHECK (name <> ''),
    -- The selection as the responder gave it (kinds and arguments), kept to be shown
    -- and replayed; the files it picked are campaign_files.
    selection     jsonb       NOT NULL CHECK (jsonb_typeof(selection) = 'object'),
    force         boolean     NOT NULL DEFAULT false,
    image         text,
    -- What the selection found that belongs to no recorded file: a pinned release the
    -- index does not have, a lock hash that matches no file of the release, ...
    -- [{"kind": ..., "subject": ..., "detail": ...}]
    findings      jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(findings) = 'array'),
    status        text        NOT NULL DEFAULT 'running'
                              CHECK (status IN ('running', 'done', 'cancelled')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    CONSTRAINT campaigns_finished CHECK ((status = 'running') = (finished_at IS NULL))
);

-- The files a campaign answers for. attempt_id is the attempt whose verdict counts for
-- this campaign: one it queued, or (without `force`) the file's latest finished one.
-- note: what the selection found about this file (e.g. "hash in lock file differs").
CREATE TABLE campaign_files (
    campaign_id  bigint NOT NULL REFERENCES campaigns (id),
    file_id      bigint NOT NULL REFERENCES files (id),
    attempt_id   bigint REFERENCES attempts (id),
    note         text,
    PRIMARY KEY (campaign_id, file_id)
);

CREATE INDEX campaign_files_attempt ON campaign_files (attempt_id);

ALTER TABLE attempts
    ADD CONSTRAINT attempts_campaign_fk FOREIGN KEY (campaign_id) REFERENCES campaigns (id);
