"""A campaign's report: a summary, then one entry per file; Markdown, JSON, CSV or HTML.

Every name in a report comes from package uploads and is hostile until escaped: the
Markdown escapes its punctuation and angle brackets, the HTML page escapes everything
(and carries no script), the CSV neutralizes cells a spreadsheet would run as formulas.

Links: the attestation bundle of a file is published at
``{base}/pypi/{project}/{version}/{filename}/rebuild.intoto.jsonl`` (the layout other
rebuilders use) and its evidence (verdict, differences, diffoscope, build log) on the
file's page ``{base}/files/{file_id}``; ``base`` is the status site's URL (empty: links
relative to the site's root).
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from rebuilder.campaigns.model import (
    CampaignFileRow,
    CampaignRow,
    CampaignStatus,
    Finding,
    FindingKind,
    Progress,
    not_vouched,
)
from rebuilder.campaigns.store import CampaignStore
from rebuilder.errors import UsageError
from rebuilder.store.records import AttemptStatus
from rebuilder.verdict import Verdict
from reports.formats import ReportFormat

logger = logging.getLogger(__name__)


MEDIA_TYPES = {
    ReportFormat.MD: "text/markdown; charset=utf-8",
    ReportFormat.JSON: "application/json",
    ReportFormat.CSV: "text/csv; charset=utf-8",
    ReportFormat.HTML: "text/html; charset=utf-8",
}


@dataclass(frozen=True)
class Summary:
    """The top of a report: how many files verified, mismatched, failed, ..."""

    total: int
    verified: int  # reproducible or equivalent
    mismatched: int
    failed: int
    not_rebuildable: int  # unsupported (platform wheels, sdists, ...)
    pending: int  # queued or running
    cancelled: int  # withdrawn by a cancel before a worker took them
    lock_hash_findings: int
    not_vouched: int = 0  # judged in place of a file the lock names: never verified
    mismatch_review: int = 0  # mismatches with risk review (or no recorded risk)
    mismatch_packaging: int = 0  # mismatches whose every difference is benign packaging

    def to_json(self) -> dict[str, int]:
        return {
            "mismatch_review": self.mismatch_review,
            "mismatch_packaging": self.mismatch_packaging,
            "total": self.total,
            "verified": self.verified,
            "mismatched": self.mismatched,
            "failed": self.failed,
            "not_rebuildable": self.not_rebuildable,
            "pending": self.pending,
            "cancelled": self.cancelled,
            "lock_hash_findings": self.lock_hash_findings,
            "not_vouched": self.not_vouched,
        }


def summarize(files: Sequence[CampaignFileRow], findings: Sequence[Finding] = ()) -> Summary:
    verdicts = [f.verdict for f in files]
    disowned = [not_vouched(f.filename, f.note, findings) for f in files]
    return Summary(
        total=len(files),
        verified=sum(
            v in (Verdict.REPRODUCIBLE, Verdict.EQUIVALENT) and not d
            for v, d in zip(verdicts, disowned, strict=True)
        ),
        mismatched=verdicts.count(Verdict.MISMATCH),
        failed=verdicts.count(Verdict.FAILED),
        not_rebuildable=verdicts.count(Verdict.UNSUPPORTED),
        pending=sum(
            f.attempt_status in (AttemptStatus.QUEUED, AttemptStatus.RUNNING) for f in files
        ),
        cancelled=sum(f.attempt_id is None for f in files),
        lock_hash_findings=sum(f.kind is FindingKind.LOCK_HASH for f in findings),
        not_vouched=sum(disowned),
        mismatch_review=sum(file_risk(f) == "review" for f in files),
        mismatch_packaging=sum(file_risk(f) == "packaging" for f in files),
    )


def file_risk(row: CampaignFileRow) -> str | None:
    """The file's risk; a mismatch without one counts as review (nothing showed it benign)."""
    if row.verdict is Verdict.MISMATCH and row.risk is None:
        return "review"
    return None if row.risk is None else row.risk.value


_RISK_RANK = {"review": 0, "packaging": 1}


def ranked(files: Sequence[CampaignFileRow]) -> list[CampaignFileRow]:
    """Mismatches to review first, then packaging-only ones, then the rest (order kept)."""
    return sorted(files, key=lambda f: _RISK_RANK.get(file_risk(f) or "", 2))


@dataclass(frozen=True)
class CampaignReport:
    campaign: CampaignRow
    progress: Progress
    files: tuple[CampaignFileRow, ...]
    base_url: str = ""

    @property
    def summary(self) -> Summary:
        return summarize(self.files, self.campaign.findings)


def build_report(store: CampaignStore, campaign_id: int, *, base_url: str = "") -> CampaignReport:
    """Read a campaign's report; UsageError when there is no such campaign."""
    row = store.campaign(campaign_id)
    if row is None:
        raise UsageError(f"no campaign {campaign_id}")
    return CampaignReport(
        row, store.progress(campaign_id), tuple(store.files(campaign_id)), base_url.rstrip("/")
    )


def state_text(row: CampaignFileRow, campaign: CampaignRow) -> str:
    """The verdict, or what stands in for one (``not-vouched`` before any verdict)."""
    if not_vouched(row.filename, row.note, campaign.findings):
        return "not-vouched"
    if row.verdict is not None:
        return row.verdict.value
    if row.attempt_id is None:
        return "cancelled" if campaign.status is CampaignStatus.CANCELLED else "not queued"
    return row.attempt_status.value if row.attempt_status else "pending"


def attestation_link(base: str, row: CampaignFileRow) -> str | None:
    if not row.attested:
        return None
    parts = (row.project, row.version, row.filename)
    return base + "/pypi/" + "/".join(quote(p, safe="") for p in parts) + "/rebuild.intoto.jsonl"


def evidence_link(base: str, row: CampaignFileRow) -> str | None:
    if row.attempt_id is None or row.verdict is None:
        return None
    return f"{base}/files/{row.file_id}"


def file_json(report: CampaignReport, row: CampaignFileRow) -> dict[str, Any]:
    return {
        "project": row.project,
        "version": row.version,
        "filename": row.filename,
        "kind": row.kind.value,
        "sha256": row.sha256,
        "state": state_text(row, report.campaign),
        "verdict": None if row.verdict is None else row.verdict.value,
        "reason_class": None if row.reason_class is None else row.reason_class.value,
        "reason": row.reason,
        "rebuilt_sha256": row.rebuilt_sha256,
        "stabilizers": [str(s) for s in row.stabilizers],
        "differences": [d.to_json() for d in row.differences],
        "risk": file_risk(row),
        "diagnosis": [d.to_json() for d in row.diagnosis],
        "note": row.note,
        "file_id": row.file_id,
        "attempt_id": row.attempt_id,
        "finished_at": _iso(row.finished_at),
        "evidence": evidence_link(report.base_url, row),
        "attestation": attestation_link(report.base_url, row),
    }


def campaign_json(report: CampaignReport) -> dict[str, Any]:
    c = report.campaign
    return {
        "id": c.id,
        "name": c.name,
        "status": c.status.value,
        "force": c.force,
        "image": c.image,
        "selection": dict(c.selection),
        "created_at": _iso(c.created_at),
        "finished_at": _iso(c.finished_at),
        "progress": report.progress.to_json(),
        "summary": report.summary.to_json(),
        "findings": [f.to_json() for f in c.findings],
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def render(report: CampaignReport, fmt: ReportFormat | str) -> str:
    """The report in one format."""
    chosen = ReportFormat(fmt)
    if chosen is ReportFormat.JSON:
        data = campaign_json(report)
        data["files"] = [file_json(report, f) for f in report.files]
        return json.dumps(data, indent=2, sort_keys=False) + "\n"
    if chosen is ReportFormat.CSV:
        return _csv(report)
    if chosen is ReportFormat.MD:
        return _markdown(report)
    return _html(report)


# -- Markdown ----------------------------------------------------------------------------

# Never at the start of a line (cells, list items, the title come after text), so only
# inline markup needs escaping; with "[" and "]" escaped no link or image can form.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md_escape(text: str) -> str:
    """Text safe inside a Markdown table cell: no markup, no HTML, one line."""
    one_line = re.sub(r"[\r\n\t]+", " ", text)
    escaped = _MD_SPECIAL.sub(r"\\\1", one_line)
    return escaped.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _md_link(label: str, url: str | None) -> str:
    if url is None:
        return ""
    return f"[{label}](<{url.replace('>', '%3E').replace(' ', '%20')}>)"


def _markdown(report: CampaignReport) -> str:
    c, s = report.campaign, report.summary
    out = [
        f"# Campaign {c.id}: {md_escape(c.name)}",
        "",
        f"Status: **{c.status.value}** · started {_iso(c.created_at)}"
        + (f" · finished {_iso(c.finished_at)}" if c.finished_at else ""),
        "",
        "| verified | mismatched | failed | not rebuildable | pending | cancelled | total |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {s.verified} | {s.mismatched} | {s.failed} | {s.not_rebuildable} | {s.pending} "
        f"| {s.cancelled} | {s.total} |",
        "",
        f"Mismatches: **{s.mismatch_review} to review**, {s.mismatch_packaging} packaging only "
        "(every difference diagnosed benign; docs/diagnosis.md).",
        "",
    ]
    if c.findings:
        out += ["## Findings of the selection", ""]
        out += [
            f"- **{f.kind.value}** {md_escape(f.subject)}: {md_escape(f.detail)}"
            for f in c.findings
        ]
        out.append("")
    out += [
        "## Files",
        "",
        "| project | version | file | verdict | risk | details | evidence |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in ranked(report.files):
        links = " ".join(
            x
            for x in (
                _md_link("evidence", evidence_link(report.base_url, row)),
                _md_link("attestation", attestation_link(report.base_url, row)),
            )
            if x
        )
        out.append(
            f"| {md_escape(row.project)} | {md_escape(row.version)} | {md_escape(row.filename)} "
            f"| {state_text(row, c)} | {file_risk(row) or ''} | {md_escape(_details(row))} "
            f"| {links} |"
        )
    return "\n".join(out) + "\n"


def _details(row: CampaignFileRow) -> str:
    parts = []
    if row.note:
        parts.append(row.note)
    if row.diagnosis:
        worst = sorted(row.diagnosis, key=lambda d: (-d.risk.rank, d.path))
        shown = "; ".join(f"{d.path}: {d.cause.value} ({d.detail})" for d in worst[:10])
        more = len(worst) - 10
        parts.append(shown + (f" (+{more} more)" if more > 0 else ""))
    elif row.differences:
        shown = ", ".join(f"{d.kind.value} {d.path}" for d in row.differences[:20])
        more = len(row.differences) - 20
        parts.append(shown + (f" (+{more} more)" if more > 0 else ""))
    if row.stabilizers:
        parts.append("stabilizers: " + ", ".join(str(s) for s in row.stabilizers))
    if row.reason:
        parts.append(f"{row.reason_class.value}: {row.reason}" if row.reason_class else row.reason)
    return "; ".join(parts)


# -- CSV ---------------------------------------------------------------------------------

CSV_COLUMNS = (
    "project",
    "version",
    "filename",
    "kind",
    "state",
    "verdict",
    "risk",
    "reason_class",
    "reason",
    "differences",
    "stabilizers",
    "note",
    "sha256",
    "rebuilt_sha256",
    "attempt_id",
    "evidence",
    "attestation",
)


def csv_cell(value: object) -> str:
    """A cell no spreadsheet runs as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(report: CampaignReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in ranked(report.files):
        data = file_json(report, row)
        data["differences"] = " ".join(f"{d.kind.value}:{d.path}" for d in row.differences)
        data["stabilizers"] = " ".join(data["stabilizers"])
        writer.writerow([csv_cell(data[column]) for column in CSV_COLUMNS])
    return buffer.getvalue()


# -- HTML --------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #ccc;padding:.3rem .5rem;
text-align:left;vertical-align:top}td.n{text-align:right}.mismatch{color:#b00;font-weight:bold}
.failed{color:#a60}.reproducible,.equivalent{color:#070}.unsupported{color:#777}
code{word-break:break-all}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _html_link(label: str, url: str | None) -> str:
    return "" if url is None else f'<a href="{_e(url)}">{_e(label)}</a>'


def _html(report: CampaignReport) -> str:
    c, s = report.campaign, report.summary
    rows = []
    for row in ranked(report.files):
        state = state_text(row, c)
        links = " ".join(
            x
            for x in (
                _html_link("evidence", evidence_link(report.base_url, row)),
                _html_link("attestation", attestation_link(report.base_url, row)),
            )
            if x
        )
        rows.append(
            f"<tr><td>{_e(row.project)}</td><td>{_e(row.version)}</td>"
            f"<td><code>{_e(row.filename)}</code></td>"
            f'<td class="{_e(state)}">{_e(state)}</td><td>{_e(file_risk(row) or "")}</td>'
            f"<td>{_e(_details(row))}</td><td>{links}</td></tr>"
        )
    findings = "".join(
        f"<li><strong>{_e(f.kind.value)}</strong> {_e(f.subject)}: {_e(f.detail)}</li>"
        for f in c.findings
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Campaign {c.id}: {_e(c.name)}</title><style>{_CSS}</style></head>
<body>
<h1>Campaign {c.id}: {_e(c.name)}</h1>
<p>Status: <strong>{_e(c.status.value)}</strong> · started {_e(_iso(c.created_at))}
{"· finished " + _e(_iso(c.finished_at)) if c.finished_at else ""}</p>
<table class="summary"><tr><th>verified</th><th>mismatched</th><th>failed</th>
<th>not rebuildable</th><th>pending</th><th>cancelled</th><th>total</th></tr>
<tr><td class="n">{s.verified}</td><td class="n">{s.mismatched}</td>
<td class="n">{s.failed}</td><td class="n">{s.not_rebuildable}</td>
<td class="n">{s.pending}</td><td class="n">{s.cancelled}</td><td class="n">{s.total}</td></tr>
</table>
<p>Mismatches: <strong>{s.mismatch_review} to review</strong>, {s.mismatch_packaging}
packaging only (every difference diagnosed benign).</p>
{"<h2>Findings of the selection</h2><ul>" + findings + "</ul>" if findings else ""}
<h2>Files</h2>
<table><tr><th>project</th><th>version</th><th>file</th><th>verdict</th><th>risk</th>
<th>details</th><th>links</th></tr>
{"".join(rows)}
</table>
</body></html>
"""
