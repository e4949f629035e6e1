-- Diagnosis and risk of each finished attempt (docs/diagnosis.md): for a mismatch, one
-- {path, kind, cause, detail, risk} object per differing path, and the file's risk
-- (the worst of them); 'none' for reproducible and equivalent; NULL when nothing was
-- compared (failed, unsupported) or the attempt finished before this migration.

ALTER TABLE attempts
    ADD COLUMN diagnosis jsonb NOT NULL DEFAULT '[]'::jsonb
        CHECK (jsonb_typeof(diagnosis) = 'array'),
    ADD COLUMN risk text CHECK (risk IN ('none', 'packaging', 'review'));

-- The status page's "mismatches to review" list and the campaign gates.
CREATE INDEX attempts_risk ON attempts (risk, id DESC) WHERE risk IN ('packaging', 'review');

