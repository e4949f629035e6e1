"""How a source check reads for a person (one line of ``rebuilder check --source``)."""

from __future__ import annotations

from rebuilder.source.result import SourceResult


def source_line(result: SourceResult) -> str:
    """``source <verdict> <project> <version> ...`` with what matters for the verdict."""
    head = f"source {result.verdict.value:<12} {result.project} {result.version}"
    where = " ".join(
        part
        for part in (
            result.repository or "",
            f"tag {result.tag}" if result.tag else "",
            f"commit {result.commit[:12]}" if result.commit else "",
        )
        if part
    )
    details: list[str] = []
    if result.differing:
        details.append(
            "differs: " + ", ".join(f"{d.kind.value}:{d.path}" for d in result.differing[:5])
        )
    if result.explained:
        rules = sorted({e.rule for e in result.explained})
        details.append(f"{len(result.explained)} explained ({', '.join(rules)})")
    if result.repo_only:
        details.append(f"{len(result.repo_only)} only in git")
    details += [f"from git {b.filename}: {b.verdict}" for b in result.from_git]
    if result.reason:
        details.append(result.reason)
    if result.tried and result.tag is None:
        details.append("tried " + ", ".join(result.tried[:6]))
    return "  ".join(p for p in (head, where, "; ".join(details)) if p)
