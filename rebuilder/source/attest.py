"""Sign what a source check found: ``source.intoto.jsonl`` beside the sdist's bundle.

The bundle at ``pypi/{project}/{version}/{sdist}/source.intoto.jsonl`` holds:

1. our *source-check* statement about the published sdist (its verdict, the commit it
   was compared with as a ``gitCommit`` resource descriptor, the explained and differing
   files, the from-git rebuild verdicts);
2. when the wheel was rebuilt from git, a SLSA Provenance v1 for that rebuilt wheel whose
   resolved dependencies name the git commit (role ``source-commit``) next to the
   published sdist whose strategy the build followed, the image and every build
   dependency.

A separate file, not a line in ``rebuild.intoto.jsonl``: that bundle keeps the layout
other rebuilders' consumers read, and the source check is a claim about the release's
origin, not about one rebuild (docs/source-tracing.md).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rebuilder.attest.bundle import bundle_path, dumps_bundle, sign_bundle
from rebuilder.attest.errors import AttestationError
from rebuilder.attest.keys import Signer
from rebuilder.attest.statements import (
    BuildRun,
    GitSource,
    Verification,
    provenance_statement,
    source_check_statement,
)
from rebuilder.plan.strategy import Strategy
from rebuilder.source.result import SourceResult
from rebuilder.verdict import FileResult, Verdict

logger = logging.getLogger(__name__)

SOURCE_BUNDLE_NAME = "source.intoto.jsonl"


def git_source(result: SourceResult) -> GitSource | None:
    """The commit the check compared with, if it got that far."""
    if result.repository is None or result.commit is None:
        return None
    return GitSource(result.repository, result.commit, result.tag)


def source_statements(result: SourceResult, builder_id: str, now: datetime) -> list[dict[str, Any]]:
    """The statements of the source bundle (see the module documentation)."""
    if result.sdist is None or result.sdist_sha256 is None:
        raise AttestationError(f"{result.project} {result.version}: no sdist to attest about")
    details = result.to_json()
    for key in ("project", "version", "verdict", "sdist", "sdist_sha256", "evidence"):
        details.pop(key, None)
    verification = Verification(verifier_id=builder_id, time_verified=now)
    statements = [
        source_check_statement(
            project=result.project,
            version=result.version,
            sdist_filename=result.sdist,
            sdist_sha256=result.sdist_sha256,
            verdict=result.verdict.value,
            git_source=git_source(result),
            details=details,
            verification=verification,
        )
    ]
    provenance = _from_git_provenance(result, builder_id, now)
    if provenance is not None:
        statements.append(provenance)
    return statements


def _from_git_provenance(
    result: SourceResult, builder_id: str, now: datetime
) -> dict[str, Any] | None:
    source = git_source(result)
    wheel = next((b for b in result.from_git if b.filename.endswith(".whl")), None)
    if source is None or wheel is None or wheel.rebuilt_sha256 is None or not result.evidence:
        return None
    path = Path(result.evidence) / "from-git" / "strategy.json"
    if not path.is_file():
        return None
    strategy = Strategy.from_json(json.loads(path.read_text(encoding="utf-8")))
    rebuilt = FileResult(
        result.project,
        result.version,
        wheel.filename,
        Verdict(wheel.verdict),
        None,
        rebuilt_sha256=wheel.rebuilt_sha256,
    )
    run = BuildRun(
        builder_id=builder_id,
        invocation_id=f"urn:uuid:{uuid.uuid4()}",
        started_on=now - timedelta(seconds=result.timings.get("from_git", 0.0)),
        finished_on=now,
    )
    return provenance_statement(rebuilt, strategy, run, git_source=source)


def write_source_bundle(
    root: Path, result: SourceResult, signer: Signer, builder_id: str, now: datetime
) -> Path:
    """Sign the source statements and write them (atomically) below ``root``; the path."""
    envelopes = sign_bundle(source_statements(result, builder_id, now), signer)
    relative = bundle_path(result.project, result.version, result.sdist or "")
    root.mkdir(parents=True, exist_ok=True)
    folder = root
    for part in relative.parts[:-1]:
        folder = folder / part
        if folder.is_symlink():
            raise AttestationError(f"{folder} is a symbolic link; refusing to write through it")
        folder.mkdir(exist_ok=True)
    target = folder / SOURCE_BUNDLE_NAME
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".source-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(dumps_bundle(envelopes))
        Path(tmp).chmod(0o644)
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info("wrote source bundle %s", target)
    return target
