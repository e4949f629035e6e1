"""``rebuilder audit``: do the files a lock pins verify, by the fleet's verdicts?

Every file a requirements or lock file vouches for is looked up on the index (its hash
checked against the lock) and in the database (its latest verdict). Files the fleet
never judged are ``unknown``; ``rebuilder audit --rebuild --wait`` starts a campaign for
the lock first and answers from its verdicts.

A file judged in place of one the lock names (its hash differs from the lock's, or none
of the release's hashes matched) is ``not-vouched``, never ``verified``.

Exit status, as ``rebuilder check``: ``0`` when every pinned file is reproducible,
equivalent or unsupported; ``1`` when any mismatch has risk ``review`` (or no recorded
risk) or a hash in the lock differs from the index's (either means the bytes cannot be
trusted: fail the pipeline); ``2`` when none did but some could not be checked (never
rebuilt, rebuild failed or pending, not on the index). Mismatches whose every difference
was diagnosed as benign packaging (risk ``packaging``, docs/diagnosis.md) are reported
separately and fail the gate only with ``fail_on_packaging`` (``--fail-on-packaging``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from rebuilder.campaigns.model import CampaignFileRow, Finding, FindingKind, not_vouched
from rebuilder.campaigns.selection import LockInput, Selection, resolve
from rebuilder.campaigns.store import CampaignStore, SelectionStore
from rebuilder.index.model import Index
from rebuilder.verdict import Diagnosis, Risk, Verdict

logger = logging.getLogger(__name__)

# The same numbers as ``rebuilder check`` (cli.main).
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
    # The lock's hash is not this file's (a lock-hash finding): the fleet's verdict is
    # about bytes the lock does not vouch for, so it is never shown as verified.
    NOT_VOUCHED = "not-vouched"


@dataclass(frozen=True)
class AuditLine:
    project: str
    version: str
    filename: str
    state: AuditState
    note: str | None = None
    reason: str | None = None
    attempt_id: int | None = None
    risk: Risk | None = None
    why: str | None = None

    @property
    def gate_risk(self) -> Risk | None:
        """The risk a gate acts on: a mismatch with no recorded risk counts as review."""
        if self.state is not AuditState.MISMATCH:
            return self.risk
        return self.risk if self.risk in {Risk.PACKAGING, Risk.REVIEW} else Risk.REVIEW

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "version": self.version,
            "filename": self.filename,
            "state": self.state.value,
            "note": self.note,
            "reason": self.reason,
            "attempt_id": self.attempt_id,
            "risk": None if self.gate_risk is None else self.gate_risk.value,
            "why": self.why,
        }


@dataclass(frozen=True)
class AuditResult:
    lines: tuple[AuditLine, ...]
    findings: tuple[Finding, ...]
    campaign_id: int | None = None
    fail_on_packaging: bool = False

    @property
    def counts(self) -> dict[AuditState, int]:
        found = Counter(line.state for line in self.lines)
        return {state: found.get(state, 0) for state in AuditState}

    @property
    def mismatch_risks(self) -> dict[Risk, int]:
        """Mismatching files by risk (review: no rule showed every difference benign)."""
        found = Counter(line.gate_risk for line in self.lines if line.state is AuditState.MISMATCH)
        return {risk: found.get(risk, 0) for risk in (Risk.REVIEW, Risk.PACKAGING)}

    @property
    def exit_code(self) -> int:
        risks = self.mismatch_risks
        failing = risks[Risk.REVIEW] + (risks[Risk.PACKAGING] if self.fail_on_packaging else 0)
        vouched = any(line.state is AuditState.NOT_VOUCHED for line in self.lines)
        if failing or vouched or any(f.fails_audit for f in self.findings):
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
            "mismatch_risks": {risk.value: n for risk, n in self.mismatch_risks.items()},
            "fail_on_packaging": self.fail_on_packaging,
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
        risk=row.risk,
        why=why_of(row),
    )


def why_of(row: CampaignFileRow, limit: int = 3) -> str | None:
    """One line: the worst diagnosed differences of a mismatch."""
    return why_of_diagnosis(row.diagnosis, limit)


def why_of_diagnosis(diagnosis: Sequence[Diagnosis], limit: int = 3) -> str | None:
    """One line: the worst of ``diagnosis`` (None when there is none)."""
    if not diagnosis:
        return None
    ranked = sorted(diagnosis, key=lambda d: (-d.risk.rank, d.path))
    parts = [f"{d.path}: {d.cause.value} [{d.risk.value}]" for d in ranked[:limit]]
    more = f" (+{len(ranked) - limit} more)" if len(ranked) > limit else ""
    return "; ".join(parts) + more


def audit(
    lock: LockInput, *, store: SelectionStore, index: Index, fail_on_packaging: bool = False
) -> AuditResult:
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
    return AuditResult(
        vouched_lines(lines, resolved.findings),
        tuple(resolved.findings),
        fail_on_packaging=fail_on_packaging,
    )


def audit_campaign(
    store: CampaignStore, campaign_id: int, *, fail_on_packaging: bool = False
) -> AuditResult:
    """The audit answered by a campaign's files (after ``--rebuild``)."""
    row = store.campaign(campaign_id)
    findings: Sequence[Finding] = () if row is None else row.findings
    lines = [_line(f, f.note) for f in store.files(campaign_id)]
    return AuditResult(
        vouched_lines(lines, findings), tuple(findings), campaign_id, fail_on_packaging
    )


def vouched_lines(lines: Sequence[AuditLine], findings: Sequence[Finding]) -> tuple[AuditLine, ...]:
    """The lines, those the lock does not vouch for as ``not-vouched`` (the verdict kept)."""
    out = []
    for line in lines:
        if not_vouched(line.filename, line.note, findings):
            judged = f"the fleet's verdict on the index's file: {line.state.value}"
            reason = "; ".join(x for x in (judged, line.reason) if x)
            line = replace(line, state=AuditState.NOT_VOUCHED, reason=reason)  # noqa: PLW2901
        out.append(line)
    return tuple(out)


def lock_selection(lock: LockInput) -> Selection:
    """The campaign selection ``audit --rebuild`` starts."""
    return Selection(locks=(lock,))
