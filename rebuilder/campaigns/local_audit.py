"""``rebuilder audit FILE --local``: the audit without a fleet.

The files a lock pins are found on the index exactly as the fleet audit finds them
(:func:`rebuilder.campaigns.selection.resolve`, hashes checked against the index), then
every one is judged here by the one-shot engine (``Rebuilder.judge_file``, the code path
of ``rebuilder check``), a bounded number at a time. No database, no broker.

Verdicts are kept in a cache folder, one JSON file per published file named by its
sha256, together with the sandbox image that produced them: a file whose bytes were
judged on the same image is not rebuilt again. Only settled verdicts are kept
(reproducible, equivalent, mismatch, unsupported); a ``failed`` rebuild may be an outage
and is tried again next time.

The answer is an :class:`~rebuilder.campaigns.audit.AuditResult`, so the states and the
exit status are the fleet audit's own (one gate, one place).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rebuilder.campaigns.audit import (
    AuditLine,
    AuditResult,
    state_for,
    vouched_lines,
    why_of_diagnosis,
)
from rebuilder.campaigns.memory import MemoryCampaignStore
from rebuilder.campaigns.selection import LockInput, Selection, resolve
from rebuilder.errors import RebuilderError, UsageError
from rebuilder.index.model import Index, IndexFile
from rebuilder.verdict import Diagnosis, FileResult, Verdict, file_risk

logger = logging.getLogger(__name__)

# Verdicts that do not change when asked again on the same image.
_SETTLED = frozenset(
    {Verdict.REPRODUCIBLE, Verdict.EQUIVALENT, Verdict.MISMATCH, Verdict.UNSUPPORTED}
)
_CACHE_FORMAT = 2  # 2: the diagnosis is kept (risk and why)

Judge = Callable[[IndexFile], FileResult]
# Called once per file when it is answered: the file, its line, whether from the cache.
Report = Callable[[IndexFile, AuditLine, bool], None]


@dataclass(frozen=True)
class CachedVerdict:
    """What the cache keeps of one judged file."""

    sha256: str
    filename: str
    image: str
    verdict: Verdict
    reason: str | None
    evidence: str | None
    diagnosis: tuple[Diagnosis, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "format": _CACHE_FORMAT,
            "sha256": self.sha256,
            "filename": self.filename,
            "image": self.image,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "evidence": self.evidence,
            "diagnosis": [d.to_json() for d in self.diagnosis],
        }


class VerdictCache:
    """Settled verdicts by the published file's sha256, in a folder (safe to delete)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise UsageError(f"not a sha256: {sha256!r}")
        return self.root / f"{sha256}.json"

    def get(self, sha256: str, image: str) -> CachedVerdict | None:
        path = self._path(sha256.lower())
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            entry = CachedVerdict(
                sha256=data["sha256"],
                filename=data["filename"],
                image=data["image"],
                verdict=Verdict(data["verdict"]),
                reason=data["reason"],
                evidence=data["evidence"],
                diagnosis=tuple(Diagnosis.from_json(d) for d in data["diagnosis"]),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring unreadable cache entry %s: %s", path, exc)
            return None
        if data.get("format") != _CACHE_FORMAT or entry.sha256 != sha256.lower():
            return None
        if entry.image != image or entry.verdict not in _SETTLED:
            return None
        return entry

    def put(self, entry: CachedVerdict) -> None:
        if entry.verdict not in _SETTLED:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        path = self._path(entry.sha256.lower())
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=self.root)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(entry.to_json(), out, sort_keys=True)
        Path(tmp).replace(path)  # atomic: a reader sees the old entry or the new one


def _line(
    file: IndexFile,
    verdict: Verdict,
    reason: str | None,
    note: str | None,
    diagnosis: tuple[Diagnosis, ...] = (),
) -> AuditLine:
    return AuditLine(
        project=file.project,
        version=file.version,
        filename=file.filename,
        state=state_for(verdict),
        note=note,
        reason=reason,
        risk=file_risk(verdict, diagnosis),
        why=why_of_diagnosis(diagnosis),
    )


def _judge_safely(judge: Judge, file: IndexFile) -> FileResult:
    try:
        return judge(file)
    except RebuilderError as exc:  # judge_file reports its own failures; belt and braces
        return FileResult(
            file.project,
            file.version,
            file.filename,
            Verdict.FAILED,
            file.sha256,
            reason=exc.diagnostics(),
            reason_class=exc.reason,
        )


def audit_local(
    lock: LockInput,
    *,
    index: Index,
    judge: Judge,
    cache: VerdictCache,
    image: str,
    jobs: int = 2,
    report: Report | None = None,
    on_plan: Callable[[Sequence[IndexFile]], None] | None = None,
    fail_on_packaging: bool = False,
) -> AuditResult:
    """Judge every file ``lock`` pins here, at most ``jobs`` at a time."""
    if jobs < 1:
        raise UsageError("--jobs must be at least 1")
    resolved = resolve(Selection(locks=(lock,)), MemoryCampaignStore(), index)
    picks = sorted(resolved.picks.values(), key=lambda p: p.file.filename)
    if on_plan is not None:
        on_plan([p.file for p in picks])
    lines: dict[str, AuditLine] = {}
    todo = []
    for pick in picks:
        hit = cache.get(pick.file.sha256, image)
        if hit is None:
            todo.append(pick)
            continue
        line = _line(pick.file, hit.verdict, hit.reason, pick.note, hit.diagnosis)
        lines[pick.file.filename] = line
        if report is not None:
            report(pick.file, line, True)

    def work(file: IndexFile) -> FileResult:
        return _judge_safely(judge, file)

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="audit") as pool:
        futures = {pool.submit(work, pick.file): pick for pick in todo}
        for future in as_completed(futures):  # progress in the order answers come
            pick = futures[future]
            result = future.result()
            cache.put(
                CachedVerdict(
                    sha256=pick.file.sha256.lower(),
                    filename=pick.file.filename,
                    image=image,
                    verdict=result.verdict,
                    reason=result.reason,
                    evidence=result.evidence,
                    diagnosis=result.diagnosis,
                )
            )
            line = _line(pick.file, result.verdict, result.reason, pick.note, result.diagnosis)
            lines[pick.file.filename] = line
            if report is not None:
                report(pick.file, line, False)
    ordered = [lines[p.file.filename] for p in picks]
    findings = tuple(resolved.findings)
    return AuditResult(
        vouched_lines(ordered, findings), findings, fail_on_packaging=fail_on_packaging
    )
