"""How a source check reads for a person (``rebuilder check --source``).

Every differing file is listed with why (the differing fields or lines, or why it could
not be regenerated) up to :data:`MAX_LISTED`, then "+N more" and where the full list is
(``report.json`` in the evidence folder). The from-git builds are listed with their
reasons.
"""

from __future__ import annotations

from rebuilder.source.result import SourceResult, SourceVerdict

MAX_LISTED = 20
_DETAIL_CHARS = 240

#: rich styles of the source verdicts (the table of ``rebuilder check``).
SOURCE_STYLE = {
    SourceVerdict.CONSISTENT: "green",
    SourceVerdict.INCONSISTENT: "bold red",
    SourceVerdict.NO_SOURCE: "yellow",
}


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 3] + "..."


def source_summary(result: SourceResult) -> str:
    """Where the check looked and how many files it found in each state (one line)."""
    parts = [
        result.repository or "",
        f"tag {result.tag}" if result.tag else "",
        f"commit {result.commit[:12]}" if result.commit else "",
    ]
    if result.differing:
        parts.append(f"{len(result.differing)} differing")
    if result.explained:
        rules = sorted({e.rule for e in result.explained})
        parts.append(f"{len(result.explained)} explained ({', '.join(rules)})")
    if result.repo_only:
        parts.append(f"{len(result.repo_only)} only in git")
    if result.reason:
        parts.append(_cut(result.reason))
    if result.tried and result.tag is None:
        parts.append("tried " + ", ".join(result.tried[:6]))
    return "; ".join(p for p in parts if p)


def source_details(result: SourceResult) -> list[str]:
    """One line per differing file (up to MAX_LISTED, then where the rest is), per build."""
    lines = [
        f"{d.kind.value}: {d.path}" + (f" ({_cut(d.detail)})" if d.detail else "")
        for d in result.differing[:MAX_LISTED]
    ]
    more = len(result.differing) - MAX_LISTED
    if more > 0:
        where = f"{result.evidence}/report.json" if result.evidence else "the --json output"
        lines.append(f"+{more} more: every file is in {where}")
    for build in result.from_git:
        why = build.reason or ", ".join(build.differences[:5]) or ", ".join(build.stabilizers)
        extra = len(build.differences) - 5
        if not build.reason and extra > 0:
            why += f", +{extra} more"
        note = f" ({_cut(why)})" if why else ""
        lines.append(f"from git {build.filename}: {build.verdict}{note}")
    return lines


def source_line(result: SourceResult) -> str:
    """``source <verdict> <project> <version> ...``, then one indented line per finding."""
    head = f"source {result.verdict.value:<12} {result.project} {result.version}"
    summary = source_summary(result)
    first = f"{head}  {summary}" if summary else head
    return "\n".join([first, *(f"  {line}" for line in source_details(result))])


def source_row(result: SourceResult) -> tuple[str, str, str]:
    """The source check as a row of the verdict table: file, verdict, details."""
    name = f"source of {result.sdist or f'{result.project} {result.version}'}"
    details = "\n".join([source_summary(result), *source_details(result)]).strip()
    return name, result.verdict.value, details
