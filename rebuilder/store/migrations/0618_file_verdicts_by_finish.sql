-- The home page's latest rebuilds are the most recently *finished* (an attempt queued
-- early can finish last); this keeps that read an index scan.
CREATE INDEX file_verdicts_finished ON file_verdicts (finished_at DESC, file_id);
