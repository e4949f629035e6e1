"""Rows of the fleet's tables, as frozen dataclasses (built by ``class_row``).

Columns stored as text or JSON are turned into the domain's types in ``__post_init__``,
so a row read from PostgreSQL and one made by the in-memory store compare equal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from rebuilder.errors import FailureReason
from rebuilder.index.model import FileKind, IndexFile, refused_name
from rebuilder.verdict import (
    Diagnosis,
    Difference,
    DifferenceKind,
    Risk,
    StabilizerUse,
    Verdict,
)


class AttemptStatus(StrEnum):
    """Where an attempt is in its life: queued, then running, then done (once)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


@dataclass(frozen=True)
class ProjectRow:
    """A project the fleet knows of; ``watched`` ones are polled for new releases."""

    name: str  # normalized (PEP 503)
    watched: bool
    added_at: datetime


@dataclass(frozen=True)
class FileRow:
    """One published file of a release, as recorded when it was discovered."""

    id: int
    release_id: int
    project: str
    version: str
    filename: str
    kind: FileKind
    url: str
    sha256: str
    size: int | None
    upload_time: datetime | None
    yanked: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", FileKind(self.kind))

    @classmethod
    def from_index_file(
        cls,
        file: IndexFile,
        *,
        id: int,
        release_id: int,
        project: str,
        version: str,
    ) -> FileRow:
        """The row recording ``file`` (the in-memory stores' twin of the SQL insert)."""
        return cls(
            id=id,
            release_id=release_id,
            project=project,
            version=version,
            filename=file.filename,
            kind=file.kind,
            url=file.url,
            sha256=file.sha256.lower(),
            size=file.size,
            upload_time=file.upload_time,
            yanked=file.yanked,
        )

    def to_index_file(self) -> IndexFile:
        """The file as the index client describes it (what the rebuild pipeline takes)."""
        return IndexFile(
            project=self.project,
            version=self.version,
            filename=self.filename,
            url=self.url,
            sha256=self.sha256,
            kind=self.kind,
            upload_time=self.upload_time,
            size=self.size,
            yanked=self.yanked,
        )


def judged_on_discovery(rows: Iterable[FileRow]) -> list[int]:
    """The ids of the new files the fleet queues for a verdict as soon as they are recorded.

    Every wheel that is not yanked, and every file whose name is refused (``../x.whl``,
    ``a/b.whl``): the worker gives it a ``failed`` verdict saying why, without downloading
    it, so an unsafe name on the index shows on the status page instead of vanishing.
    """
    return [
        r.id
        for r in rows
        if not r.yanked and (r.kind is FileKind.WHEEL or refused_name(r.filename) is not None)
    ]


@dataclass(frozen=True)
class AttemptRow:
    """One rebuild attempt of one file, and its outcome once ``status`` is done."""

    id: int
    file_id: int
    status: AttemptStatus
    priority: int
    campaign_id: int | None
    requested_at: datetime
    started_at: datetime | None = None
    heartbeat_at: datetime | None = None
    finished_at: datetime | None = None
    tries: int = 0
    worker: str | None = None
    image_digest: str | None = None
    strategy: Mapping[str, Any] | None = None
    verdict: Verdict | None = None
    reason_class: FailureReason | None = None
    reason: str | None = None
    stabilizers: tuple[StabilizerUse, ...] = ()
    differences: tuple[Difference, ...] = ()
    timings: Mapping[str, float] = field(default_factory=dict)
    seconds: float | None = None
    evidence: str | None = None
    evidence_manifest: Mapping[str, str] | None = None
    rebuilt_sha256: str | None = None
    image: str | None = None  # the sandbox image asked for; None: the worker's default
    diagnosis: tuple[Diagnosis, ...] = ()
    risk: Risk | None = None

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "status", AttemptStatus(self.status))
        if self.verdict is not None:
            put(self, "verdict", Verdict(self.verdict))
        if self.reason_class is not None:
            put(self, "reason_class", FailureReason(self.reason_class))
        put(self, "stabilizers", stabilizers_from_json(self.stabilizers))
        put(self, "differences", differences_from_json(self.differences))
        put(self, "diagnosis", diagnosis_from_json(self.diagnosis or ()))
        if self.risk is not None:
            put(self, "risk", Risk(self.risk))


@dataclass(frozen=True)
class VerdictRow:
    """The latest recorded verdict of one file."""

    file_id: int
    project: str
    version: str
    filename: str
    attempt_id: int
    verdict: Verdict
    reason_class: FailureReason | None
    finished_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", Verdict(self.verdict))
        if self.reason_class is not None:
            object.__setattr__(self, "reason_class", FailureReason(self.reason_class))


@dataclass(frozen=True)
class RunningRow:
    """An attempt a worker is running now."""

    attempt_id: int
    project: str
    version: str
    filename: str
    worker: str
    started_at: datetime


def stabilizers_to_json(uses: Iterable[StabilizerUse]) -> list[dict[str, Any]]:
    """The JSON kept in ``attempts.stabilizers``."""
    return [{"name": u.name, "version": u.version} for u in uses]


def stabilizers_from_json(data: Iterable[Any]) -> tuple[StabilizerUse, ...]:
    """Stabilizers from JSON objects (or already made ones, passed through)."""
    return tuple(
        d if isinstance(d, StabilizerUse) else StabilizerUse(str(d["name"]), int(d["version"]))
        for d in data
    )


def differences_to_json(differences: Iterable[Difference]) -> list[dict[str, str]]:
    """The JSON kept in ``attempts.differences``."""
    return [d.to_json() for d in differences]


def diagnosis_to_json(diagnosis: Iterable[Diagnosis]) -> list[dict[str, str]]:
    """The JSON kept in ``attempts.diagnosis``."""
    return [d.to_json() for d in diagnosis]


def diagnosis_from_json(data: Iterable[Any]) -> tuple[Diagnosis, ...]:
    """Diagnoses from JSON objects (or already made ones, passed through)."""
    return tuple(Diagnosis.from_json(d) for d in data)


def differences_from_json(data: Iterable[Any]) -> tuple[Difference, ...]:
    """Differences from JSON objects (or already made ones, passed through)."""
    return tuple(
        d if isinstance(d, Difference) else Difference(str(d["path"]), DifferenceKind(d["kind"]))
        for d in data
    )
