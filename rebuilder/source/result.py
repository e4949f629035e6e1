"""What tracing a release back to its source found (``SourceResult.to_json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class SourceVerdict(StrEnum):
    """The judgement on a release's sdist against the git tag it claims to come from."""

    CONSISTENT = "consistent"  # every sdist file is in git, identical or explained
    # some file is not in git, differs unexplained, or is a generated file that could
    # not be regenerated (kind ``unexplained``: never taken on trust)
    INCONSISTENT = "inconsistent"
    NO_SOURCE = "no-source"  # no repository, no tag naming the version, or unusable


class DiffKind(StrEnum):
    SDIST_ONLY = "sdist-only"  # in the sdist, not at the tagged commit
    CONTENT = "content"  # in both, different bytes
    # a generated file (PKG-INFO, egg-info, ...) that could not be regenerated to check it
    UNEXPLAINED = "unexplained"


@dataclass(frozen=True, order=True)
class ExplainedFile:
    path: str
    rule: str  # name@version
    reproduced: str = ""  # what the rule regenerated or proved the file from

    def to_json(self) -> dict[str, str]:
        found = {"path": self.path, "rule": self.rule}
        if self.reproduced:
            found["reproduced"] = self.reproduced
        return found


@dataclass(frozen=True, order=True)
class DifferingFile:
    path: str
    kind: DiffKind
    detail: str = ""  # the differing fields or lines, or why the file was not regenerated

    def to_json(self) -> dict[str, str]:
        found = {"path": self.path, "kind": self.kind.value}
        if self.detail:
            found["detail"] = self.detail
        return found


@dataclass(frozen=True)
class GitBuild:
    """One artifact rebuilt from the git checkout, judged against the published file."""

    filename: str  # the published file compared with
    verdict: str  # a rebuild verdict: reproducible, equivalent, mismatch, failed, ...
    rebuilt_sha256: str | None = None
    stabilizers: tuple[str, ...] = ()
    differences: tuple[str, ...] = ()
    reason: str | None = None
    # The wheel's input: "sdist" (the sdist built from the tagged tree, as `python -m
    # build` does) or "tree" (the tagged tree itself, as a wheel built from a checkout).
    built_from: str = "sdist"

    def to_json(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "verdict": self.verdict,
            "rebuilt_sha256": self.rebuilt_sha256,
            "stabilizers": list(self.stabilizers),
            "differences": list(self.differences),
            "reason": self.reason,
            "built_from": self.built_from,
        }


@dataclass(frozen=True)
class SourceResult:
    """The source check of one release."""

    project: str
    version: str
    verdict: SourceVerdict
    sdist: str | None = None  # the published sdist's file name
    sdist_sha256: str | None = None
    repository: str | None = None  # the URL fetched (after mirrors)
    declared_repository: str | None = None  # as found in the metadata or configured
    found_in: str | None = None
    tag: str | None = None
    commit: str | None = None
    subdir: str = ""  # the project's folder inside the repository ("" = its root)
    explained: tuple[ExplainedFile, ...] = ()
    differing: tuple[DifferingFile, ...] = ()
    repo_only: tuple[str, ...] = ()
    tried: tuple[str, ...] = ()  # tag forms looked for, or URLs considered
    reason: str | None = None
    from_git: tuple[GitBuild, ...] = ()
    evidence: str | None = None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``source`` object of ``rebuilder check --source --json``."""
        return {
            "project": self.project,
            "version": self.version,
            "verdict": self.verdict.value,
            "sdist": self.sdist,
            "sdist_sha256": self.sdist_sha256,
            "repository": self.repository,
            "declared_repository": self.declared_repository,
            "found_in": self.found_in,
            "tag": self.tag,
            "commit": self.commit,
            "subdir": self.subdir,
            "explained": [e.to_json() for e in self.explained],
            "differing": [d.to_json() for d in self.differing],
            "repo_only_count": len(self.repo_only),
            "repo_only": list(self.repo_only[:200]),
            "tried": list(self.tried),
            "reason": self.reason,
            "from_git": [b.to_json() for b in self.from_git],
            "evidence": self.evidence,
            "seconds": round(self.seconds, 3),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }
