"""Verdicts: what a rebuild found about one published file."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from rebuilder.errors import FailureReason


class Verdict(StrEnum):
    """The judgement on one published file (see ARCHITECTURE.md)."""

    REPRODUCIBLE = "reproducible"
    EQUIVALENT = "equivalent"
    MISMATCH = "mismatch"
    FAILED = "failed"
    UNSUPPORTED = "unsupported"

    @property
    def is_ok(self) -> bool:
        """True when the verdict does not fail a check (exit status 0)."""
        return self in {Verdict.REPRODUCIBLE, Verdict.EQUIVALENT, Verdict.UNSUPPORTED}


class DifferenceKind(StrEnum):
    """How one path differs between the published file and the rebuild.

    Seen from the published file: ``added`` is a path the published file has and the
    rebuild does not (someone added it), ``removed`` one the rebuild has and the
    published file lacks, ``content`` a differing package file, ``metadata`` a differing
    file of the ``*.dist-info`` folder (METADATA, WHEEL, RECORD, entry points ...).
    """

    ADDED = "added"
    REMOVED = "removed"
    CONTENT = "content"
    METADATA = "metadata"


@dataclass(frozen=True, order=True)
class Difference:
    """One path whose content differs after every stabilizer was applied."""

    path: str
    kind: DifferenceKind

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "kind": self.kind.value}


class Risk(StrEnum):
    """What a file's differences can do to whoever installs it (docs/diagnosis.md).

    ``none``: reproducible or equivalent. ``packaging``: every difference was proven
    benign (order, line endings, description text, a lossless transform, metadata no
    installer acts on). ``review``: something that changes what gets installed or run,
    or a difference no rule could explain.
    """

    NONE = "none"
    PACKAGING = "packaging"
    REVIEW = "review"

    @property
    def rank(self) -> int:
        """Higher is worse: review > packaging > none."""
        return {Risk.NONE: 0, Risk.PACKAGING: 1, Risk.REVIEW: 2}[self]


class Cause(StrEnum):
    """Why one path differs: the diagnosis taxonomy, version ``DIAGNOSIS_VERSION``."""

    ORDER_ONLY = "order-only"
    LINE_ENDINGS = "line-endings"
    WHITESPACE = "whitespace"
    TRANSFORMED_EQUAL = "transformed-equal"
    ONLY_PUBLISHED = "only-published"
    ONLY_REBUILT = "only-rebuilt"
    METADATA_FIELD = "metadata-field"
    RECORD = "record"
    CODE = "code"
    DATA = "data"
    UNKNOWN = "unknown"


DIAGNOSIS_VERSION = 1


@dataclass(frozen=True, order=True)
class Diagnosis:
    """Why one path of a mismatch differs, and what that can do (``risk``)."""

    path: str
    kind: DifferenceKind
    cause: Cause
    detail: str
    risk: Risk

    def to_json(self) -> dict[str, str]:
        return {
            "path": self.path,
            "kind": self.kind.value,
            "cause": self.cause.value,
            "detail": self.detail,
            "risk": self.risk.value,
        }

    @classmethod
    def from_json(cls, data: Diagnosis | dict[str, Any]) -> Diagnosis:
        if isinstance(data, Diagnosis):
            return data
        return cls(
            str(data["path"]),
            DifferenceKind(data["kind"]),
            Cause(data["cause"]),
            str(data.get("detail", "")),
            Risk(data["risk"]),
        )


def file_risk(verdict: Verdict, diagnosis: tuple[Diagnosis, ...]) -> Risk | None:
    """A file's risk: the worst of its diagnoses; ``review`` for an unexplained mismatch.

    ``None`` when nothing was compared (failed, unsupported).
    """
    if verdict in {Verdict.REPRODUCIBLE, Verdict.EQUIVALENT}:
        return Risk.NONE
    if verdict is not Verdict.MISMATCH:
        return None
    if not diagnosis:
        return Risk.REVIEW
    return max((d.risk for d in diagnosis), key=lambda r: r.rank)


@dataclass(frozen=True)
class StabilizerUse:
    """A stabilizer that was needed to call two archives equivalent."""

    name: str
    version: int

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class FileResult:
    """The outcome for one published file: the line ``rebuilder check`` prints."""

    project: str
    version: str
    filename: str
    verdict: Verdict
    upstream_sha256: str | None
    rebuilt_sha256: str | None = None
    stabilizers: tuple[StabilizerUse, ...] = ()
    differences: tuple[Difference, ...] = ()
    reason: str | None = None
    reason_class: FailureReason | None = None
    seconds: float = 0.0
    evidence: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    diagnosis: tuple[Diagnosis, ...] = ()
    second_opinion: dict[str, Any] | None = None

    @property
    def risk(self) -> Risk | None:
        """See :func:`file_risk`."""
        return file_risk(self.verdict, self.diagnosis)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the ``--json`` output (one per line)."""
        return {
            "project": self.project,
            "version": self.version,
            "filename": self.filename,
            "verdict": self.verdict.value,
            "upstream_sha256": self.upstream_sha256,
            "rebuilt_sha256": self.rebuilt_sha256,
            "stabilizers": [str(s) for s in self.stabilizers],
            "differences": [d.to_json() for d in self.differences],
            "reason": self.reason,
            "reason_class": self.reason_class.value if self.reason_class else None,
            "seconds": round(self.seconds, 3),
            "evidence": self.evidence,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "diagnosis": [d.to_json() for d in self.diagnosis],
            "diagnosis_version": DIAGNOSIS_VERSION,
            "risk": None if self.risk is None else self.risk.value,
            "second_opinion": self.second_opinion,
        }
