"""Bundles: the signed statements about one published file, as JSON lines.

A bundle lives at ``pypi/{project}/{version}/{filename}/rebuild.intoto.jsonl`` below a
publishing root, one DSSE envelope per line. Project, version and file names come from
the package index and are untrusted: :func:`bundle_path` accepts only the characters
those names may have, so no name can climb out of the root.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from rebuilder.attest.dsse import Envelope, parse_envelope, sign_statement
from rebuilder.attest.errors import AttestationError
from rebuilder.attest.keys import Signer
from rebuilder.attest.statements import (
    BuildEnvironment,
    BuildRun,
    Verification,
    failure_statement,
    git_route,
    provenance_statement,
    verification_summary_statement,
)
from rebuilder.plan.strategy import Strategy
from rebuilder.verdict import FileResult, Verdict

logger = logging.getLogger(__name__)

BUNDLE_NAME = "rebuild.intoto.jsonl"
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
_PROJECT = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,198}[A-Za-z0-9])?")
_VERSION = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.+!_-]{0,126}[A-Za-z0-9])?")
_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]{0,254}")


def normalize_project(project: str) -> str:
    """The PEP 503 normalized project name (lowercase, runs of ``-_.`` become ``-``)."""
    if not _PROJECT.fullmatch(project):
        raise AttestationError(f"{project!r} is not a valid project name")
    return re.sub(r"[-_.]+", "-", project).lower()


def bundle_path(project: str, version: str, filename: str) -> PurePosixPath:
    """The bundle's path relative to the publishing root.

    Raises:
        AttestationError: a name has characters an index name cannot have (``/``, ``..``, ...).
    """
    name = normalize_project(project)
    if not _VERSION.fullmatch(version):
        raise AttestationError(f"{version!r} is not a valid version")
    if not _FILENAME.fullmatch(filename) or ".." in filename:
        raise AttestationError(f"{filename!r} is not a valid distribution file name")
    return PurePosixPath("pypi", name, version, filename, BUNDLE_NAME)


def statement_kinds(verdict: Verdict) -> tuple[str, ...]:
    """What the statements of :func:`statements_for` are, in bundle order."""
    if verdict in {Verdict.FAILED, Verdict.UNSUPPORTED}:
        return ("failure",)
    return ("provenance", "vsa")


def statements_for(
    result: FileResult,
    strategy: Strategy | None,
    run: BuildRun | None,
    verification: Verification,
    environment: BuildEnvironment | None = None,
) -> list[dict[str, Any]]:
    """The statements a judged file gets, in bundle order.

    Reproducible, equivalent and mismatch: the provenance of the rebuild, then the VSA
    about the published file (both need ``strategy`` and ``run``). When the git-tag route
    is the result's strategy (:func:`git_route`), the provenance names the git commit
    (role ``source-commit``) and the VSA records ``source: git`` with tag and commit. Failed and
    unsupported: one failure statement.
    """
    if result.verdict in {Verdict.FAILED, Verdict.UNSUPPORTED}:
        return [failure_statement(result, verification, strategy)]
    if strategy is None or run is None:
        raise AttestationError(f"{result.filename}: a judged rebuild needs its strategy and run")
    route = git_route(result)
    provenance = provenance_statement(
        result, strategy, run, git_source=route[0] if route else None, environment=environment
    )
    where = str(bundle_path(result.project, result.version, result.filename))
    return [provenance, verification_summary_statement(result, verification, provenance, where)]


def sign_bundle(
    statements: Sequence[dict[str, Any]], signers: Signer | Sequence[Signer]
) -> list[Envelope]:
    """Sign every statement; the envelopes in the same order."""
    return [sign_statement(s, signers) for s in statements]


def dumps_bundle(envelopes: Sequence[Envelope]) -> str:
    """JSON lines: one envelope per line, each line ending in a newline."""
    return "".join(e.dumps() + "\n" for e in envelopes)


def loads_bundle(text: str | bytes) -> list[Envelope]:
    """Parse untrusted JSON lines into envelopes (blank lines are skipped, nothing verified)."""
    if len(text) > MAX_BUNDLE_BYTES:
        raise AttestationError("bundle too large")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AttestationError("a bundle is UTF-8 JSON lines") from exc
    envelopes = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            envelopes.append(parse_envelope(line))
        except AttestationError as exc:
            raise AttestationError(f"bundle line {number}: {exc}") from exc
    if not envelopes:
        raise AttestationError("the bundle holds no envelope")
    return envelopes


def write_bundle(
    root: Path, project: str, version: str, filename: str, envelopes: Sequence[Envelope]
) -> Path:
    """Write (atomically replace) the bundle of one file below ``root``; its path."""
    if not envelopes:
        raise AttestationError("refusing to write an empty bundle")
    relative = bundle_path(project, version, filename)
    parent = _make_parents(root, relative.parts[:-1])
    target = parent / relative.name
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".bundle-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(dumps_bundle(envelopes))
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).chmod(0o644)
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info("wrote bundle %s (%d envelopes)", target, len(envelopes))
    return target


def _make_parents(root: Path, parts: Sequence[str]) -> Path:
    # bundle_path already forbids separators and "..", but a symlink planted below the
    # root could still redirect the write, so none is followed.
    current = root
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise AttestationError(f"{current} is a symbolic link; refusing to write through it")
        current.mkdir(exist_ok=True)
    return current


def read_bundle(path: Path) -> list[Envelope]:
    """Read the envelopes of a bundle file (untrusted: verify before use)."""
    with path.open("rb") as fh:
        data = fh.read(MAX_BUNDLE_BYTES + 1)
    return loads_bundle(data)
