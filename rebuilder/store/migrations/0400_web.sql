-- What the status page and JSON API read (reports/): summaries kept up to date by
-- triggers, so that no page aggregates a million attempts on a request.
--
-- file_verdicts: the latest finished attempt of each file (highest id among status
-- 'done', the same rule as rebuilder.store.attempts.latest_verdicts), with the verdict it
-- had before, so "newly mismatching" is one index scan.
-- verdict_days: finished attempts per day and verdict (the reproducibility chart).
-- project_verdicts: latest verdicts counted per project; attempt_projects: each
-- attempt's project (a project's history without visiting each of its files).

CREATE TABLE file_verdicts (
    file_id           bigint      PRIMARY KEY REFERENCES files (id),
    attempt_id        bigint      NOT NULL REFERENCES attempts (id),
    verdict           text        NOT NULL,
    previous_verdict  text,
    finished_at       timestamptz NOT NULL
);

CREATE INDEX file_verdicts_verdict ON file_verdicts (verdict);
-- The latest rebuilds (home page, /api/v1/verdicts), newest first, with stable keys.
CREATE INDEX file_verdicts_recent ON file_verdicts (attempt_id DESC);
CREATE INDEX file_verdicts_by_verdict ON file_verdicts (verdict, attempt_id DESC);
-- Newly mismatching: mismatch now, something else (or nothing) before.
CREATE INDEX file_verdicts_new_mismatch ON file_verdicts (finished_at DESC, file_id)
    WHERE verdict = 'mismatch' AND previous_verdict IS DISTINCT FROM 'mismatch';

CREATE TABLE verdict_days (
    day      date   NOT NULL,
    verdict  text   NOT NULL,
    n        bigint NOT NULL CHECK (n >= 0),
    PRIMARY KEY (day, verdict)
);

-- Latest verdicts counted per project (badges, project pages; their sum is the home
-- page's counts), moved by the same trigger.
CREATE TABLE project_verdicts (
    project  text   NOT NULL REFERENCES projects (name),
    verdict  text   NOT NULL,
    n        bigint NOT NULL CHECK (n >= 0),
    PRIMARY KEY (project, verdict)
);

-- Every attempt with its project: a project's attempt history newest first is one index
-- range, however many files the project has.
CREATE TABLE attempt_projects (
    attempt_id  bigint PRIMARY KEY REFERENCES attempts (id) ON DELETE CASCADE,
    project     text   NOT NULL
);
CREATE INDEX attempt_projects_recent ON attempt_projects (project, attempt_id DESC);

CREATE FUNCTION web_attempt_done() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    old_attempt bigint;
    old_verdict text;
    the_project text;
BEGIN
    INSERT INTO verdict_days AS vd (day, verdict, n)
        VALUES ((NEW.finished_at AT TIME ZONE 'UTC')::date, NEW.verdict, 1)
    ON CONFLICT (day, verdict) DO UPDATE SET n = vd.n + 1;

    SELECT attempt_id, verdict INTO old_attempt, old_verdict
        FROM file_verdicts WHERE file_id = NEW.file_id FOR UPDATE;
    IF FOUND AND old_attempt >= NEW.id THEN
        RETURN NULL;  -- an older attempt finishing late: the file's latest verdict stays
    END IF;
    IF FOUND THEN
        UPDATE file_verdicts
            SET attempt_id = NEW.id, verdict = NEW.verdict, previous_verdict = old_verdict,
                finished_at = NEW.finished_at
            WHERE file_id = NEW.file_id;
    ELSE
        INSERT INTO file_verdicts (file_id, attempt_id, verdict, finished_at)
            VALUES (NEW.file_id, NEW.id, NEW.verdict, NEW.finished_at);
    END IF;
    IF old_verdict IS NOT DISTINCT FROM NEW.verdict THEN
        RETURN NULL;
    END IF;
    SELECT r.project INTO the_project
        FROM files f JOIN releases r ON r.id = f.release_id WHERE f.id = NEW.file_id;
    IF old_verdict IS NOT NULL THEN
        UPDATE project_verdicts SET n = n - 1
            WHERE project = the_project AND verdict = old_verdict;
    END IF;
    INSERT INTO project_verdicts AS pv (project, verdict, n) VALUES (the_project, NEW.verdict, 1)
    ON CONFLICT (project, verdict) DO UPDATE SET n = pv.n + 1;
    RETURN NULL;
END;
$$;

CREATE TRIGGER attempts_web_done_insert
    AFTER INSERT ON attempts
    FOR EACH ROW WHEN (NEW.status = 'done')
    EXECUTE FUNCTION web_attempt_done();

CREATE TRIGGER attempts_web_done_update
    AFTER UPDATE OF status ON attempts
    FOR EACH ROW WHEN (NEW.status = 'done' AND OLD.status IS DISTINCT FROM 'done')
    EXECUTE FUNCTION web_attempt_done();

CREATE FUNCTION web_attempt_project() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO attempt_projects (attempt_id, project)
        SELECT n.id, r.project FROM new_attempts n
        JOIN files f ON f.id = n.file_id JOIN releases r ON r.id = f.release_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER attempts_web_project
    AFTER INSERT ON attempts
    REFERENCING NEW TABLE AS new_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION web_attempt_project();

-- What was finished before this migration.
INSERT INTO file_verdicts (file_id, attempt_id, verdict, previous_verdict, finished_at)
SELECT file_id, id, verdict, previous_verdict, finished_at FROM (
    SELECT file_id, id, verdict, finished_at,
           lag(verdict) OVER (PARTITION BY file_id ORDER BY id) AS previous_verdict,
           row_number() OVER (PARTITION BY file_id ORDER BY id DESC) AS nth
    FROM attempts WHERE status = 'done'
) ranked
WHERE nth = 1;

INSERT INTO verdict_days (day, verdict, n)
SELECT (finished_at AT TIME ZONE 'UTC')::date, verdict, count(*)
FROM attempts WHERE status = 'done'
GROUP BY 1, 2;

INSERT INTO project_verdicts (project, verdict, n)
SELECT r.project, fv.verdict, count(*)
FROM file_verdicts fv JOIN files f ON f.id = fv.file_id JOIN releases r ON r.id = f.release_id
GROUP BY 1, 2;

INSERT INTO attempt_projects (attempt_id, project)
SELECT a.id, r.project
FROM attempts a JOIN files f ON f.id = a.file_id JOIN releases r ON r.id = f.release_id;

-- A project's releases, newest first (search by prefix uses projects_name_prefix).
CREATE INDEX releases_project_recent ON releases (project, id DESC);
