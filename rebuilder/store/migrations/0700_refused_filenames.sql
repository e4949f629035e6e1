-- A file the index lists under a name that is unsafe on disk ("../x.whl", "a/b.whl") is
-- recorded as listed, so that it gets a verdict (failed, saying why) like any other file
-- instead of making the whole release unrecordable. Names never become paths unchecked:
-- rebuilder.index.model.refused_name guards every use on disk; the status page escapes.
-- What stays refused here: the empty name and absurd lengths.

ALTER TABLE files DROP CONSTRAINT files_filename_check;
ALTER TABLE files ADD CONSTRAINT files_filename_check
    CHECK (filename <> '' AND length(filename) <= 1024);
