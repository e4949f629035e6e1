"""A second opinion from git beside a mismatch, and the git-tag route when the published
wheel holds files the sdist lacks (and only then)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

from rebuilder.second_opinion import (
    ROUTE_EVIDENCE_FOLDER,
    judged_with_opinion,
    opinion_line,
    release_opinions,
    sdist_lacks,
    with_second_opinion,
)
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


def tree_source(verdict: str, repo_only: tuple[str, ...], evidence: str | None = None,
                sha: str = "3" * 64) -> SourceResult:  # fmt: skip
    return SourceResult(
        "demo",
        "1.0",
        SourceVerdict.CONSISTENT,
        repository="https://forge.invalid/demo.git",
        tag="v1.0",
        commit=COMMIT,
        repo_only=repo_only,
        from_git=(GitBuild(WHEEL, verdict, sha, built_from="tree"),),
        evidence=evidence,
    )


CHECKOUT_ONLY = ("ci.cfg", "docs/conf.py", "docs/index.rst", "testing/constraints.txt")


def test_a_wheel_the_checkout_reproduces_and_the_sdist_does_not_takes_the_git_route() -> None:
    """No file of the wheel is missing from the sdist (a package finder in the checkout
    picked up a folder, so only top_level.txt differs): the wheel built from the tree
    reproduces it, and the checkout holds files the sdist lacks."""
    result = with_second_opinion(mismatch(ORDER), tree_source("reproducible", CHECKOUT_ONLY))
    assert result.verdict is Verdict.REPRODUCIBLE
    assert result.second_opinion is not None
    assert result.second_opinion["route"] == "git"
    assert result.second_opinion["built_from"] == "tree"
    assert result.second_opinion["sdist_lacks"] == []
    assert result.second_opinion["checkout_only"] == ["docs/", "testing/", "ci.cfg"]
    assert result.second_opinion["checkout_only_count"] == 4
    assert result.reason is not None
    assert "the checkout holds 4 files the sdist lacks (in docs/, testing/, ci.cfg)" in (
        result.reason
    )


def test_a_tree_build_alone_is_no_git_route_without_files_the_sdist_lacks() -> None:
    result = with_second_opinion(mismatch(ORDER), tree_source("reproducible", ()))
    assert result.verdict is Verdict.MISMATCH
    assert result.second_opinion is not None and result.second_opinion["route"] == "sdist"
    mismatched = with_second_opinion(mismatch(ORDER), tree_source("mismatch", CHECKOUT_ONLY))
    assert mismatched.verdict is Verdict.MISMATCH


def test_a_release_is_traced_once_and_only_when_a_file_mismatches() -> None:
    calls: list[int] = []

    def trace() -> SourceResult:
        calls.append(1)
        return source("equivalent")

    ok = FileResult("demo", "1.0", "demo-1.0.tar.gz", Verdict.UNSUPPORTED, "1" * 64)
    files, traced = release_opinions([ok], trace)
    assert (files, traced, calls) == ([ok], None, [])
    files, traced = release_opinions([mismatch(LACKED), ok, mismatch(ORDER)], trace)
    assert calls == [1] and traced is not None
    assert [bool(f.second_opinion) for f in files] == [True, False, True]
    # no evidence folder to keep the rebuild from git in: the route is not taken
    assert [f.verdict for f in files] == [Verdict.MISMATCH, Verdict.UNSUPPORTED, Verdict.MISMATCH]


def _evidence(tmp_path: Path) -> tuple[Path, Path, str]:
    """The sdist route's evidence of the wheel and the source check's from-git folder."""
    wheel_evidence = tmp_path / "out" / WHEEL
    (wheel_evidence / "rebuilt").mkdir(parents=True)
    (wheel_evidence / "strategy.json").write_text('{"route": "sdist"}\n')
    (wheel_evidence / "build.log").write_text("sdist route log\n")
    (wheel_evidence / "differences.diff").write_text("-a\n+b\n")
    (wheel_evidence / "rebuilt" / WHEEL).write_bytes(b"from the sdist")
    source_evidence = tmp_path / "out" / "source"
    tree = source_evidence / "from-git" / "tree" / "rebuilt"
    tree.mkdir(parents=True)
    (tree / WHEEL).write_bytes(b"from the tree")
    (source_evidence / "from-git" / "strategy.json").write_text('{"route": "git"}\n')
    (source_evidence / "from-git" / "tree-wheel-build.log").write_text("tree log\n")
    return wheel_evidence, source_evidence, hashlib.sha256(b"from the tree").hexdigest()


def test_a_routed_file_keeps_the_rebuild_from_git_as_its_evidence(tmp_path: Path) -> None:
    wheel_evidence, source_evidence, sha = _evidence(tmp_path)
    sdist_route = replace(mismatch(LACKED), evidence=str(wheel_evidence))
    traced = tree_source("reproducible", CHECKOUT_ONLY, str(source_evidence), sha)
    result = judged_with_opinion(sdist_route, traced)
    assert result.verdict is Verdict.REPRODUCIBLE
    assert (wheel_evidence / "strategy.json").read_text() == '{"route": "git"}\n'
    assert (wheel_evidence / "build.log").read_text() == "tree log\n"
    assert (wheel_evidence / "rebuilt" / WHEEL).read_bytes() == b"from the tree"
    kept = wheel_evidence / ROUTE_EVIDENCE_FOLDER
    assert (kept / "strategy.json").read_text() == '{"route": "sdist"}\n'
    assert (kept / "build.log").read_text() == "sdist route log\n"
    assert (kept / "differences.diff").is_file()
    assert (kept / "rebuilt" / WHEEL).read_bytes() == b"from the sdist"
    assert not (wheel_evidence / "differences.diff").exists()
    recorded = json.loads((wheel_evidence / "result.json").read_text())
    assert recorded["verdict"] == "reproducible"
    assert recorded["second_opinion"]["route"] == "git"


def test_without_the_rebuild_from_git_in_evidence_the_route_is_not_taken(
    tmp_path: Path,
) -> None:
    wheel_evidence, source_evidence, _ = _evidence(tmp_path)
    sdist_route = replace(mismatch(LACKED), evidence=str(wheel_evidence))
    traced = tree_source("reproducible", CHECKOUT_ONLY, str(source_evidence), "9" * 64)
    result = judged_with_opinion(sdist_route, traced)
    assert result.verdict is Verdict.MISMATCH
    assert result.second_opinion is not None
    assert result.second_opinion["route"] == "sdist"
    assert "evidence is missing" in result.second_opinion["reason"]
    assert (wheel_evidence / "strategy.json").read_text() == '{"route": "sdist"}\n'
