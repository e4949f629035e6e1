"""``rebuilder audit``: do the files a lock pins verify, by the fleet's verdicts?

Every file a requirements or lock file vouches for is looked up on the index (its hash
checked against the lock) and in the database (its latest verdict). Files the fleet
never judged are ``unknown``; ``rebuilder audit --rebuild --wait`` starts a campaign for
the lock first and answers from its verdicts.

Exit status, as ``rebuilder check``: ``0`` when every pinned file is reproducible,
equivalent or unsupported; ``1`` when any mismatches or a hash in the lock differs from
the index's (either means the bytes cannot be trusted: fail the pipeline); ``2`` when
none did but some could not be checked (never rebuilt, rebuild failed or pending, not
on the index).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rebuilder.index.model import Index
from rebuilder.verdict import Verdict
from scheduler.campaigns.selection import LockInput, Selection, resolve
from scheduler.campaigns.store import CampaignFileRow, CampaignStore, Finding, FindingKind

logger = logging.getLogger(__name__)

# The same numbers as ``rebuilder check`` (rebuilder.cli).
EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_UNCHECKED = 2


class AuditState(StrEnum):
    VERIFIED = "verified"  # reproducible or equivalent
    MISMATCH = "mismatch"
    FAILED = "failed"
    UNSUPPORTED = "unsupported"  # out of scope (platform wheel, sdist): not a failure
    PENDING = "pending"  # a rebuild is queued or running
    UNKNOWN = "unknown"  # the fleet never judged this file


@dataclass(frozen=True)
class AuditLine:
    project: str
    version: str
    filename: str
    state: AuditState
    note: str | None = None
    reason: str | None = None
    attempt_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "version": self.version,
            "filename": self.filename,
            "state": self.state.value,
            "note": self.note,
            "reason": self.reason,
            "attempt_id": self.attempt_id,
        }


@dataclass(frozen=True)
class AuditResult:
    lines: tuple[AuditLine, ...]
    findings: tuple[Finding, ...]
    campaign_id: int | None = None

    @property
    def counts(self) -> dict[AuditState, int]:
        found = Counter(line.state for line in self.lines)
        return {state: found.get(state, 0) for state in AuditState}

    @property
    def exit_code(self) -> int:
        if any(line.state is AuditState.MISMATCH for line in self.lines) or any(
            f.fails_audit for f in self.findings
        ):
            return EXIT_MISMATCH
        unchecked = {AuditState.FAILED, AuditState.PENDING, AuditState.UNKNOWN}
        if any(line.state in unchecked for line in self.lines) or any(
            f.kind is FindingKind.NOT_FOUND for f in self.findings
        ):
            return EXIT_UNCHECKED
        return EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "campaign_id": self.campaign_id,
            "counts": {state.value: n for state, n in self.counts.items()},
            "files": [line.to_json() for line in self.lines],
            "findings": [f.to_json() for f in self.findings],
        }


def state_of(row: CampaignFileRow | None) -> AuditState:
    """What one file's answering attempt says."""
    if row is None or row.attempt_id is None:
        return AuditState.UNKNOWN
    if row.verdict is None:
        return AuditState.PENDING
    return state_for(row.verdict)


def state_for(verdict: Verdict) -> AuditState:
    """The audit state of a verdict (the fleet's and ``audit --local``'s alike)."""
    return {
        Verdict.REPRODUCIBLE: AuditState.VERIFIED,
        Verdict.EQUIVALENT: AuditState.VERIFIED,
        Verdict.MISMATCH: AuditState.MISMATCH,
        Verdict.FAILED: AuditState.FAILED,
        Verdict.UNSUPPORTED: AuditState.UNSUPPORTED,
    }[verdict]


def _line(row: CampaignFileRow, note: str | None) -> AuditLine:
    return AuditLine(
        project=row.project,
        version=row.version,
        filename=row.filename,
        state=state_of(row),
        note=note,
        reason=row.reason,
        attempt_id=row.attempt_id,
    )


def audit(lock: LockInput, *, store: CampaignStore, index: Index) -> AuditResult:
    """The lock's pinned files and the fleet's latest verdict on each (reads only)."""
    resolved = resolve(Selection(locks=(lock,)), store, index)
    ids = [p.file_id for p in resolved.picks.values() if p.file_id is not None]
    latest = store.latest_for(ids)
    lines = []
    for pick in sorted(resolved.picks.values(), key=lambda p: p.file.filename):
        row = None if pick.file_id is None else latest.get(pick.file_id)
        if row is None:
            f = pick.file
            lines.append(AuditLine(f.project, f.version, f.filename, AuditState.UNKNOWN, pick.note))
        else:
            lines.append(_line(row, pick.note))
    return AuditResult(tuple(lines), tuple(resolved.findings))


def audit_campaign(store: CampaignStore, campaign_id: int) -> AuditResult:
    """The audit answered by a campaign's files (after ``--rebuild``)."""
    row = store.campaign(campaign_id)
    findings: Sequence[Finding] = () if row is None else row.findings
    lines = [_line(f, f.note) for f in store.files(campaign_id)]
    return AuditResult(tuple(lines), tuple(findings), campaign_id)


def lock_selection(lock: LockInput) -> Selection:
    """The campaign selection ``audit --rebuild`` starts."""
    return Selection(locks=(lock,))
