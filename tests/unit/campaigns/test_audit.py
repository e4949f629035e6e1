"""``rebuilder audit``: states per pinned file and exit codes consistent with ``check``."""

from __future__ import annotations

from rebuilder.campaigns import campaign as campaigns
from rebuilder.campaigns.audit import (
    EXIT_MISMATCH,
    EXIT_OK,
    EXIT_UNCHECKED,
    AuditState,
    audit,
    audit_campaign,
    lock_selection,
)
from rebuilder.campaigns.memory import MemoryCampaignStore
from rebuilder.campaigns.selection import LockInput
from rebuilder.verdict import Cause, Diagnosis, Difference, DifferenceKind, Risk, Verdict
from reports.campaign_report import build_report, state_text
from tests.support.fakes import FakeIndex
from tests.unit.campaigns.fakes import sdist, wheel

A = wheel("a", "1.0")
B = wheel("b", "2.0")
PLATFORM = wheel("b", "2.0", tag="cp311-cp311-manylinux_2_17_x86_64")


def lock(*lines: str) -> LockInput:
    return LockInput("requirements.txt", "\n".join(lines))


def pinned(file: object, digest: str | None = None) -> str:
    assert hasattr(file, "sha256")
    return f"{file.project}=={file.version} --hash=sha256:{digest or file.sha256}"  # type: ignore[attr-defined]


def setup() -> tuple[MemoryCampaignStore, FakeIndex]:
    return MemoryCampaignStore(), FakeIndex([A, B, PLATFORM])


def test_all_verified_or_unsupported_exits_zero() -> None:
    store, index = setup()
    store.add_verdict(store.add_file(A).id, Verdict.REPRODUCIBLE)
    store.add_verdict(store.add_file(B).id, Verdict.EQUIVALENT)
    store.add_verdict(store.add_file(PLATFORM).id, Verdict.UNSUPPORTED)
    text = lock(pinned(A), f"b==2.0 --hash=sha256:{B.sha256} --hash=sha256:{PLATFORM.sha256}")
    result = audit(text, store=store, index=index)
    assert [line.state for line in result.lines] == [
        AuditState.VERIFIED,
        AuditState.UNSUPPORTED,
        AuditState.VERIFIED,
    ]
    assert result.exit_code == EXIT_OK


def test_never_rebuilt_files_are_unknown_and_exit_two() -> None:
    store, index = setup()
    store.add_verdict(store.add_file(A).id, Verdict.REPRODUCIBLE)
    result = audit(lock(pinned(A), pinned(B)), store=store, index=index)
    assert {line.filename: line.state for line in result.lines}[B.filename] is AuditState.UNKNOWN
    assert result.exit_code == EXIT_UNCHECKED


def test_a_mismatch_exits_one_even_beside_unknown_files() -> None:
    store, index = setup()
    store.add_verdict(
        store.add_file(A).id,
        Verdict.MISMATCH,
        differences=(Difference("a/__init__.py", DifferenceKind.CONTENT),),
    )
    result = audit(lock(pinned(A), pinned(B)), store=store, index=index)
    assert result.exit_code == EXIT_MISMATCH
    assert result.to_json()["counts"]["mismatch"] == 1


def test_a_lock_hash_the_index_does_not_serve_exits_one() -> None:
    store, index = setup()
    store.add_verdict(store.add_file(A).id, Verdict.REPRODUCIBLE)
    result = audit(lock(pinned(A, "e" * 64)), store=store, index=index)
    assert result.exit_code == EXIT_MISMATCH
    assert [f.kind.value for f in result.findings] == ["lock-hash"]


def test_rebuild_campaign_answers_the_audit() -> None:
    store, index = setup()
    started = campaigns.start(
        "audit", lock_selection(lock(pinned(A))), store=store, index=index, dispatcher=None
    )
    assert audit_campaign(store, started.campaign_id).exit_code == EXIT_UNCHECKED  # pending
    assert [line.state for line in audit_campaign(store, started.campaign_id).lines] == [
        AuditState.PENDING
    ]
    store.finish(started.created.queued[0], Verdict.REPRODUCIBLE)
    assert audit_campaign(store, started.campaign_id).exit_code == EXIT_OK


PACKAGING = Diagnosis(
    "a-1.0.dist-info/METADATA",
    DifferenceKind.METADATA,
    Cause.LINE_ENDINGS,
    "only CRLF/LF line endings differ",
    Risk.PACKAGING,
)
REVIEW = Diagnosis(
    "a/__init__.py", DifferenceKind.CONTENT, Cause.CODE, "module differs", Risk.REVIEW
)


def _mismatch(store: MemoryCampaignStore, *diagnosis: Diagnosis) -> None:
    store.add_verdict(
        store.add_file(A).id,
        Verdict.MISMATCH,
        differences=tuple(Difference(d.path, d.kind) for d in diagnosis),
        diagnosis=diagnosis,
    )


def test_a_packaging_only_mismatch_is_reported_but_fails_only_with_the_flag() -> None:
    store, index = setup()
    _mismatch(store, PACKAGING)
    store.add_verdict(store.add_file(B).id, Verdict.REPRODUCIBLE)
    text = lock(pinned(A), pinned(B))
    result = audit(text, store=store, index=index)
    assert result.exit_code == EXIT_OK
    assert result.mismatch_risks == {Risk.REVIEW: 0, Risk.PACKAGING: 1}
    line = next(x for x in result.to_json()["files"] if x["state"] == "mismatch")
    assert line["risk"] == "packaging" and "line-endings" in line["why"]
    strict = audit(text, store=store, index=index, fail_on_packaging=True)
    assert strict.exit_code == EXIT_MISMATCH


def test_a_review_mismatch_fails_the_gate() -> None:
    store, index = setup()
    _mismatch(store, PACKAGING, REVIEW)
    store.add_verdict(store.add_file(B).id, Verdict.REPRODUCIBLE)
    result = audit(lock(pinned(A), pinned(B)), store=store, index=index)
    assert result.exit_code == EXIT_MISMATCH
    assert result.mismatch_risks[Risk.REVIEW] == 1


def test_a_mismatch_without_a_diagnosis_counts_as_review() -> None:
    store, index = setup()
    store.add_verdict(
        store.add_file(A).id,
        Verdict.MISMATCH,
        differences=(Difference("a/__init__.py", DifferenceKind.CONTENT),),
    )
    store.add_verdict(store.add_file(B).id, Verdict.REPRODUCIBLE)
    result = audit(lock(pinned(A), pinned(B)), store=store, index=index)
    assert result.exit_code == EXIT_MISMATCH
    assert result.mismatch_risks[Risk.REVIEW] == 1


def test_an_edited_hash_never_shows_the_wheel_or_the_sdist_as_verified() -> None:
    # The operator's lock pins a 1.0 by its wheel's hash, edited: no file of the release
    # has it, so the index's files are judged in its place; the lock vouches for neither.
    a_sdist = sdist("a", "1.0")
    store, index = MemoryCampaignStore(), FakeIndex([A, a_sdist])
    store.add_verdict(store.add_file(A).id, Verdict.REPRODUCIBLE)
    store.add_verdict(store.add_file(a_sdist).id, Verdict.UNSUPPORTED)
    result = audit(lock(pinned(A, "e" * 64)), store=store, index=index)
    states = {line.filename: line.state for line in result.lines}
    assert states == {A.filename: AuditState.NOT_VOUCHED, a_sdist.filename: AuditState.NOT_VOUCHED}
    assert AuditState.VERIFIED not in states.values()
    wheel_line = next(line for line in result.lines if line.filename == A.filename)
    assert "verified" in (wheel_line.reason or "")  # what the fleet found is still said
    assert result.exit_code == EXIT_MISMATCH
    assert result.to_json()["counts"]["verified"] == 0


def test_a_file_pinned_by_name_with_another_hash_is_not_vouched_for() -> None:
    store, index = setup()
    store.add_verdict(store.add_file(A).id, Verdict.REPRODUCIBLE)
    store.add_verdict(store.add_file(B).id, Verdict.REPRODUCIBLE)
    text = LockInput(
        "uv.lock",
        f"""
version = 1
[[package]]
name = "a"
version = "1.0"
source = {{ registry = "http://127.0.0.1:9/simple" }}
wheels = [{{ url = "{A.url}", hash = "sha256:{"e" * 64}" }}]
[[package]]
name = "b"
version = "2.0"
source = {{ registry = "http://127.0.0.1:9/simple" }}
wheels = [{{ url = "{B.url}", hash = "sha256:{B.sha256}" }}]
""",
    )
    result = audit(text, store=store, index=index)
    states = {line.filename: line.state for line in result.lines}
    assert states == {A.filename: AuditState.NOT_VOUCHED, B.filename: AuditState.VERIFIED}
    assert result.exit_code == EXIT_MISMATCH


def test_an_audit_campaign_with_an_edited_hash_is_never_verified() -> None:
    store, index = setup()
    started = campaigns.start(
        "audit",
        lock_selection(lock(pinned(A, "e" * 64))),
        store=store,
        index=index,
        dispatcher=None,
    )
    for attempt in started.created.queued:
        store.finish(attempt, Verdict.REPRODUCIBLE)
    result = audit_campaign(store, started.campaign_id)
    assert [line.state for line in result.lines] == [AuditState.NOT_VOUCHED]
    assert result.exit_code == EXIT_MISMATCH
    report = build_report(store, started.campaign_id)
    assert report.summary.verified == 0 and report.summary.not_vouched == 1
    assert [state_text(f, report.campaign) for f in report.files] == ["not-vouched"]
