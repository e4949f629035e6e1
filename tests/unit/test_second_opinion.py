"""A second opinion from git beside a mismatch, and the git-tag route when the published
wheel holds files the sdist lacks (and only then)."""

from __future__ import annotations

from dataclasses import replace

from rebuilder.second_opinion import opinion_line, sdist_lacks, with_second_opinion
from rebuilder.source.result import GitBuild, SourceResult, SourceVerdict
from rebuilder.verdict import (
    Cause,
    Diagnosis,
    Difference,
    DifferenceKind,
    FileResult,
    Risk,
    Verdict,
)

WHEEL = "demo-1.0-py3-none-any.whl"
COMMIT = "ab" * 20
LACKED = Diagnosis(
    "demo/extra.py",
    DifferenceKind.ADDED,
    Cause.ONLY_PUBLISHED,
    "module file the sdist does not contain",
    Risk.REVIEW,
)
ORDER = Diagnosis(
    "demo-1.0.dist-info/METADATA",
    DifferenceKind.METADATA,
    Cause.METADATA_FIELD,
    "platform: ['UNKNOWN'] -> (none)",
    Risk.PACKAGING,
)


def mismatch(*diagnosis: Diagnosis) -> FileResult:
    return FileResult(
        "demo",
        "1.0",
        WHEEL,
        Verdict.MISMATCH,
        "1" * 64,
        "2" * 64,
        differences=tuple(Difference(d.path, d.kind) for d in diagnosis),
        diagnosis=diagnosis,
    )


def source(verdict: str, *, tag: str | None = "v1.0") -> SourceResult:
    return SourceResult(
        "demo",
        "1.0",
        SourceVerdict.CONSISTENT,
        repository="https://forge.invalid/demo.git",
        tag=tag,
        commit=COMMIT if tag else None,
        from_git=(GitBuild(WHEEL, verdict, "3" * 64, ("zip-timestamps@1",)),),
    )


def test_a_mismatch_gets_the_git_opinion_beside_its_verdict() -> None:
    result = with_second_opinion(mismatch(ORDER), source("reproducible"))
    assert result.verdict is Verdict.MISMATCH  # the verdict stays about the sdist route
    assert result.second_opinion is not None
    assert result.second_opinion["verdict"] == "reproducible"
    assert result.second_opinion["route"] == "sdist"
    assert opinion_line(result) == f"second opinion: reproducible from git tag v1.0 @ {COMMIT[:12]}"
    assert result.to_json()["second_opinion"]["commit"] == COMMIT


def test_files_the_sdist_lacks_make_the_git_route_the_strategy() -> None:
    result = with_second_opinion(mismatch(LACKED, ORDER), source("equivalent"))
    assert result.verdict is Verdict.EQUIVALENT
    assert result.rebuilt_sha256 == "3" * 64
    assert [str(s) for s in result.stabilizers] == ["zip-timestamps@1"]
    assert result.second_opinion is not None
    assert result.second_opinion["route"] == "git"
    assert result.second_opinion["sdist_lacks"] == ["demo/extra.py"]
    assert (result.second_opinion["tag"], result.second_opinion["commit"]) == ("v1.0", COMMIT)
    assert result.reason is not None
    assert "holds files the sdist lacks (demo/extra.py)" in result.reason


def test_the_git_route_needs_a_good_rebuild_from_git() -> None:
    result = with_second_opinion(mismatch(LACKED), source("mismatch"))
    assert result.verdict is Verdict.MISMATCH
    assert result.second_opinion is not None and result.second_opinion["route"] == "sdist"


def test_the_git_route_needs_files_proven_missing_from_the_sdist() -> None:
    in_sdist = Diagnosis(
        "demo/extra.py",
        DifferenceKind.ADDED,
        Cause.ONLY_PUBLISHED,
        "the sdist contains it as src/demo/extra.py (same bytes); the rebuild left it out",
        Risk.PACKAGING,
    )
    assert sdist_lacks(mismatch(in_sdist)) == ()
    result = with_second_opinion(mismatch(in_sdist), source("reproducible"))
    assert result.verdict is Verdict.MISMATCH


def test_without_a_traced_tag_nothing_changes_and_it_says_why() -> None:
    traced = SourceResult("demo", "1.0", SourceVerdict.NO_SOURCE, reason="no repository")
    result = with_second_opinion(mismatch(LACKED), traced)
    assert result.verdict is Verdict.MISMATCH
    assert result.second_opinion is not None
    assert result.second_opinion["verdict"] == "not checked"
    assert result.second_opinion["reason"] == "no repository"


def test_other_verdicts_get_no_opinion() -> None:
    ok = FileResult("demo", "1.0", WHEEL, Verdict.REPRODUCIBLE, "1" * 64, "1" * 64)
    assert with_second_opinion(ok, source("mismatch")) is ok


def test_text_output_has_a_why_line_ranked_by_risk_and_the_opinion() -> None:
    from cli.main import _plain_line  # noqa: PLC0415

    result = with_second_opinion(mismatch(ORDER, LACKED), source("mismatch"))
    lines = _plain_line(result).splitlines()
    assert lines[0].startswith("mismatch")
    assert lines[1].startswith("  why [review]: demo/extra.py: only-published")
    assert lines[1].index("demo/extra.py") < lines[1].index("METADATA")  # review first
    assert lines[2].startswith("  second opinion: mismatch from git tag v1.0")


def test_plain_output_ends_with_the_mismatches_ranked_by_risk() -> None:
    from cli.main import risk_ranking  # noqa: PLC0415

    benign = replace(mismatch(ORDER), filename="a-1.0-py3-none-any.whl")
    risky = replace(mismatch(LACKED), filename="z-1.0-py3-none-any.whl")
    ok = FileResult("demo", "1.0", WHEEL, Verdict.REPRODUCIBLE, "1" * 64, "1" * 64)
    text = risk_ranking([benign, ok, risky])
    assert text is not None
    assert text.splitlines()[1:] == [
        "  review    z-1.0-py3-none-any.whl",
        "  packaging a-1.0-py3-none-any.whl",
    ]
    assert risk_ranking([ok]) is None


def test_a_file_that_is_not_a_mismatch_says_its_reason_once() -> None:
    from cli.main import _plain_line  # noqa: PLC0415

    sdist = FileResult(
        "demo", "1.0", "demo-1.0.tar.gz", Verdict.UNSUPPORTED, "1" * 64, reason="the input"
    )
    assert _plain_line(sdist).splitlines() == ["unsupported   demo-1.0.tar.gz  the input"]
