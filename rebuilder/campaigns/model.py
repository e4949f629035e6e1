"""A campaign's records: its row, its files, its progress, what starting one created."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from rebuilder.errors import FailureReason
from rebuilder.index.model import FileKind
from rebuilder.store.records import (
    AttemptStatus,
    diagnosis_from_json,
    differences_from_json,
    stabilizers_from_json,
)
from rebuilder.verdict import Diagnosis, Difference, Risk, StabilizerUse, Verdict

logger = logging.getLogger(__name__)


class CampaignStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"


class FindingKind(StrEnum):
    """What a selection found besides files to rebuild."""

    LOCK_HASH = "lock-hash"  # a hash in the lock differs from the index's: a finding in itself
    NOT_FOUND = "not-found"  # a pinned release or file the index does not have
    SKIPPED = "skipped"  # a lock entry naming no index release (VCS, path, unpinned)
    NO_GENERATOR = "no-generator"  # wheels whose Generator is not known yet


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    subject: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind.value, "subject": self.subject, "detail": self.detail}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Finding:
        return cls(FindingKind(data["kind"]), str(data["subject"]), str(data["detail"]))

    @property
    def fails_audit(self) -> bool:
        """A lock whose hash differs from the index's is as bad as a mismatch."""
        return self.kind is FindingKind.LOCK_HASH

    def disowns(self, filename: str, note: str | None) -> bool:
        """True when this lock-hash finding means the lock does not vouch for the file.

        The file the index serves was judged in place of bytes the lock names (its hash
        differs, or none of the release's hashes matched): whatever the fleet found about
        it, it is not the file the lock pins.
        """
        if self.kind is not FindingKind.LOCK_HASH:
            return False
        return self.subject == filename or (note is not None and self.detail in note)


def not_vouched(filename: str, note: str | None, findings: Sequence[Finding]) -> bool:
    """True when a lock-hash finding disowns the file (never show it as verified)."""
    return any(f.disowns(filename, note) for f in findings)


@dataclass(frozen=True)
class CampaignRow:
    id: int
    name: str
    selection: Mapping[str, Any]
    force: bool
    image: str | None
    status: CampaignStatus
    created_at: datetime
    finished_at: datetime | None
    findings: tuple[Finding, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", CampaignStatus(self.status))
        object.__setattr__(
            self,
            "findings",
            tuple(f if isinstance(f, Finding) else Finding.from_json(f) for f in self.findings),
        )


@dataclass(frozen=True)
class CampaignFileRow:
    """One file a campaign answers for, with the attempt that answers (if any)."""

    file_id: int
    project: str
    version: str
    filename: str
    kind: FileKind
    sha256: str
    note: str | None
    attempt_id: int | None
    attempt_status: AttemptStatus | None
    attempt_campaign: int | None = None  # the campaign that queued the attempt
    verdict: Verdict | None = None
    reason_class: FailureReason | None = None
    reason: str | None = None
    stabilizers: tuple[StabilizerUse, ...] = ()
    differences: tuple[Difference, ...] = ()
    rebuilt_sha256: str | None = None
    evidence: str | None = None
    finished_at: datetime | None = None
    attested: bool = False
    diagnosis: tuple[Diagnosis, ...] = ()
    risk: Risk | None = None

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "kind", FileKind(self.kind))
        if self.attempt_status is not None:
            put(self, "attempt_status", AttemptStatus(self.attempt_status))
        if self.verdict is not None:
            put(self, "verdict", Verdict(self.verdict))
        if self.reason_class is not None:
            put(self, "reason_class", FailureReason(self.reason_class))
        put(self, "stabilizers", stabilizers_from_json(self.stabilizers or ()))
        put(self, "differences", differences_from_json(self.differences or ()))
        put(self, "diagnosis", diagnosis_from_json(self.diagnosis or ()))
        if self.risk is not None:
            put(self, "risk", Risk(self.risk))


@dataclass(frozen=True)
class Progress:
    """How far a campaign is: files by attempt state, finished ones by verdict."""

    total: int
    queued: int
    running: int
    done: int
    cancelled: int  # files left without an attempt by a cancel
    verdicts: Mapping[Verdict, int] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.queued == 0 and self.running == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "queued": self.queued,
            "running": self.running,
            "done": self.done,
            "cancelled": self.cancelled,
            "verdicts": {v.value: self.verdicts.get(v, 0) for v in Verdict},
        }


@dataclass(frozen=True)
class NewCampaign:
    """What :meth:`CampaignStore.create` records."""

    name: str
    selection: Mapping[str, Any]
    files: Mapping[int, str | None]  # file id -> note
    findings: Sequence[Finding] = ()
    force: bool = False
    image: str | None = None


@dataclass(frozen=True)
class Created:
    campaign_id: int
    queued: list[int]  # attempts made by this campaign
    adopted: list[int]  # attempts of others it waits for (lifted to campaign priority)
    reused: int  # files answered by an existing verdict

    @property
    def to_dispatch(self) -> list[int]:
        return sorted(self.queued + self.adopted)


def progress_of(rows: Iterable[tuple[str | None, str | None, int]]) -> Progress:
    counts = {"queued": 0, "running": 0, "done": 0, None: 0}
    verdicts = dict.fromkeys(Verdict, 0)
    total = 0
    for status, verdict, n in rows:
        total += n
        counts[status] = counts.get(status, 0) + n
        if verdict is not None:
            verdicts[Verdict(verdict)] += n
    return Progress(
        total=total,
        queued=counts["queued"],
        running=counts["running"],
        done=counts["done"],
        cancelled=counts[None],
        verdicts=verdicts,
    )


# -- in memory (tests) -----------------------------------------------------------------
