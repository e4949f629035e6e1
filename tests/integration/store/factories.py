"""Small builders of the records the store takes (index files, rebuild results)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from rebuilder.errors import FailureReason
from rebuilder.index.model import FileKind, IndexFile
from rebuilder.verdict import (
    Cause,
    Diagnosis,
    Difference,
    DifferenceKind,
    FileResult,
    Risk,
    StabilizerUse,
    Verdict,
)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def index_file(project: str, version: str, filename: str, **changes: object) -> IndexFile:
    values: dict[str, object] = {
        "project": project,
        "version": version,
        "filename": filename,
        "url": f"http://127.0.0.1:9/files/{filename}",
        "sha256": sha(filename),
        "kind": FileKind.WHEEL if filename.endswith(".whl") else FileKind.SDIST,
        "upload_time": datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        "size": 1234,
    }
    values.update(changes)
    return IndexFile(**values)  # type: ignore[arg-type]


def wheel(project: str, version: str, tag: str = "py3-none-any") -> IndexFile:
    return index_file(project, version, f"{project.replace('-', '_')}-{version}-{tag}.whl")


def result_for(file: IndexFile | str, verdict: Verdict = Verdict.REPRODUCIBLE) -> FileResult:
    filename = file if isinstance(file, str) else file.filename
    failed = verdict is Verdict.FAILED
    return FileResult(
        project="p",
        version="1",
        filename=filename,
        verdict=verdict,
        upstream_sha256=sha(filename),
        rebuilt_sha256=None if failed else sha("rebuilt " + filename),
        stabilizers=(StabilizerUse("zip-order", 1), StabilizerUse("mtime", 2))
        if verdict is Verdict.EQUIVALENT
        else (),
        differences=(Difference("pkg/__init__.py", DifferenceKind.CONTENT),)
        if verdict is Verdict.MISMATCH
        else (),
        reason="backend crashed" if failed else None,
        reason_class=FailureReason.BUILD if failed else None,
        seconds=12.5,
        evidence=f"evidence/{filename}",
        timings={"build": 10.25, "compare": 2.0},
        diagnosis=(
            Diagnosis(
                "pkg/__init__.py", DifferenceKind.CONTENT, Cause.CODE, "module differs", Risk.REVIEW
            ),
        )
        if verdict is Verdict.MISMATCH
        else (),
    )
