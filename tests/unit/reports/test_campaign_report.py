"""Campaign reports: the summary counts, every format, and hostile names kept inert."""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser

import pytest

from rebuilder.campaigns import campaign as campaigns
from rebuilder.campaigns.memory import MemoryCampaignStore
from rebuilder.campaigns.selection import Selection
from rebuilder.errors import UsageError
from rebuilder.index.model import FileKind, IndexFile
from rebuilder.store.records import AttemptStatus
from rebuilder.verdict import Cause, Diagnosis, Difference, DifferenceKind, Risk, Verdict
from reports.campaign_report import (
    CSV_COLUMNS,
    ReportFormat,
    build_report,
    csv_cell,
    md_escape,
    render,
)
from tests.support.fakes import FakeIndex
from tests.unit.campaigns.fakes import sha, wheel, when

HOSTILE_PATH = "<script>alert(1)</script>|x](javascript:alert(2))\n# title"


def hostile_file() -> IndexFile:
    # A filename can't hold "<" on a real index, but the report must not trust that.
    filename = "evil-1.0-py3-none-any<img src=x onerror=alert(1)>.whl"
    return IndexFile(
        "evil", "1.0", filename, "http://h/e.whl", sha(filename), FileKind.WHEEL, when(1)
    )


@pytest.fixture
def store() -> MemoryCampaignStore:
    return MemoryCampaignStore()


def campaign(store: MemoryCampaignStore) -> int:
    files = [
        wheel("good", "1.0"),
        wheel("bad", "1.0"),
        wheel("plat", "1.0", tag="cp311-cp311-linux_x86_64"),
        hostile_file(),
        wheel("slow", "1.0"),
    ]
    index = FakeIndex(files)
    started = campaigns.start(
        '<b>"Backend X" & co</b>',
        Selection(specs=("good==1.0", "bad==1.0", "plat==1.0", "evil==1.0", "slow==1.0")),
        store=store,
        index=index,
        dispatcher=None,
    )
    by_name = {f.filename: f.attempt_id for f in store.files(started.campaign_id)}
    store.finish(by_name["good-1.0-py3-none-any.whl"], Verdict.REPRODUCIBLE)
    store.finish(
        by_name["bad-1.0-py3-none-any.whl"],
        Verdict.MISMATCH,
        differences=(Difference("bad/__init__.py", DifferenceKind.CONTENT),),
    )
    store.finish(by_name["plat-1.0-cp311-cp311-linux_x86_64.whl"], Verdict.UNSUPPORTED)
    store.finish(
        by_name[hostile_file().filename],
        Verdict.MISMATCH,
        differences=(Difference(HOSTILE_PATH, DifferenceKind.ADDED),),
        reason='=HYPERLINK("http://evil")',
    )
    store.set_status(by_name["slow-1.0-py3-none-any.whl"], AttemptStatus.RUNNING)
    return started.campaign_id


def test_summary_counts(store: MemoryCampaignStore) -> None:
    report = build_report(store, campaign(store))
    s = report.summary
    assert (s.total, s.verified, s.mismatched, s.failed, s.not_rebuildable, s.pending) == (
        5,
        1,
        2,
        0,
        1,
        1,
    )


def test_json_has_summary_and_files(store: MemoryCampaignStore) -> None:
    data = json.loads(
        render(build_report(store, campaign(store), base_url="https://r.example/"), "json")
    )
    assert data["summary"]["mismatched"] == 2
    assert data["name"] == '<b>"Backend X" & co</b>'  # data stays data in JSON
    bad = next(f for f in data["files"] if f["project"] == "bad")
    assert bad["differences"] == [{"path": "bad/__init__.py", "kind": "content"}]
    assert bad["evidence"] == f"https://r.example/files/{bad['file_id']}"
    assert bad["attestation"] is None  # nothing signed for it in memory
    slow = next(f for f in data["files"] if f["project"] == "slow")
    assert slow["state"] == "running" and slow["evidence"] is None


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)


def test_html_escapes_every_hostile_name(store: MemoryCampaignStore) -> None:
    page = render(build_report(store, campaign(store)), ReportFormat.HTML)
    parser = _Collect()
    parser.feed(page)
    assert "script" not in parser.tags and "img" not in parser.tags and "b" not in parser.tags
    assert not any(name.startswith("on") for name, _ in parser.attrs)
    assert not any((value or "").startswith("javascript:") for _, value in parser.attrs)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;&quot;Backend X&quot; &amp; co&lt;/b&gt;" in page
    assert "Content-Security-Policy" in page


def test_markdown_escapes_markup_and_keeps_one_row_per_file(store: MemoryCampaignStore) -> None:
    text = render(build_report(store, campaign(store)), ReportFormat.MD)
    assert "<script>" not in text and "<img" not in text and "<b>" not in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "whl" in line]
    assert len(rows) == 5  # the newline in the hostile path did not break a row
    evil = next(r for r in rows if "evil" in r)
    # the "|" of the hostile path is escaped: the row keeps its 7 cells (risk included)
    assert len(re.findall(r"(?<!\\)\|", evil)) == 8
    assert not re.search(r"(?<!\\)\]\(javascript", evil)  # the "]" is escaped: no link
    assert md_escape("a|b") == "a\\|b"


def test_csv_parses_back_and_defuses_formulas(store: MemoryCampaignStore) -> None:
    text = render(build_report(store, campaign(store)), ReportFormat.CSV)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert len(rows) == 5
    evil = next(r for r in rows if r["project"] == "evil")
    assert evil["reason"].startswith("'=")
    assert evil["differences"].startswith("added:<script>")
    assert csv_cell("-1") == "'-1" and csv_cell("ok") == "ok"


def test_unknown_campaign_is_a_usage_error(store: MemoryCampaignStore) -> None:
    with pytest.raises(UsageError):
        build_report(store, 404)


def test_mismatches_rank_by_risk_in_every_format(store: MemoryCampaignStore) -> None:
    files = [wheel("benign", "1.0"), wheel("risky", "1.0")]
    started = campaigns.start(
        "risk", Selection(specs=("benign==1.0", "risky==1.0")), store=store,
        index=FakeIndex(files), dispatcher=None,
    )  # fmt: skip
    ids = {f.filename: f.attempt_id for f in store.files(started.campaign_id)}
    benign = Diagnosis(
        "benign-1.0.dist-info/METADATA", DifferenceKind.METADATA, Cause.LINE_ENDINGS,
        "only CRLF/LF line endings differ", Risk.PACKAGING,
    )  # fmt: skip
    risky = Diagnosis(
        "risky/__init__.py", DifferenceKind.CONTENT, Cause.CODE, "module differs", Risk.REVIEW
    )
    for name, diagnosis in (("benign", benign), ("risky", risky)):
        store.finish(
            ids[f"{name}-1.0-py3-none-any.whl"],
            Verdict.MISMATCH,
            differences=(Difference(diagnosis.path, diagnosis.kind),),
            diagnosis=(diagnosis,),
        )
    report = build_report(store, started.campaign_id)
    assert (report.summary.mismatch_review, report.summary.mismatch_packaging) == (1, 1)
    md = render(report, ReportFormat.MD)
    assert md.index("risky-1.0") < md.index("benign-1.0")  # review first, not by name
    assert "| review |" in md and "| packaging |" in md and "code (module differs)" in md
    data = json.loads(render(report, ReportFormat.JSON))
    risks = {f["filename"]: f["risk"] for f in data["files"]}
    assert risks == {
        "benign-1.0-py3-none-any.whl": "packaging",
        "risky-1.0-py3-none-any.whl": "review",
    }
    rows = list(csv.DictReader(io.StringIO(render(report, ReportFormat.CSV))))
    assert [r["risk"] for r in rows] == ["review", "packaging"]
    html_text = render(report, ReportFormat.HTML)
    assert html_text.index("risky-1.0") < html_text.index("benign-1.0")
